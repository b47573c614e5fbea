"""Every page through axe-core, the accessibility engine, inside the real browser (Debian's
headless Chromium, as in test_browser.py), against WCAG 2.1's level A and AA rules: signed out
(a login refused, then too many attempts), a member, an administrator with records and
submissions (pages of them, overdue, a failure), telemetry off on a read-only database, and the
error pages (400, 403, 404, 503). axe-core is vendored in tests/e2e/axe/ (npm's axe-core, its
licences beside it; README.md there says how to update it): nothing is downloaded as the test
runs."""

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from fftelemetry.resources.store import PAGE_SIZE, SubmissionResult, utcnow
from fftelemetry.scripting import close_databases, request_environment
from tests.conftest import serving
from tests.e2e.test_browser import EMAIL, PASSWORD, chromium, fill, press, submit

pytestmark = pytest.mark.slow

AXE = Path(__file__).resolve().parent / "axe" / "axe.min.js"
# axe-core 4.14.1's axe.min.js as npm ships it (the package's sri-history.json has the same
# digest): a changed or cut copy fails here, not as a puzzling audit
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
MEMBER = "member@example.org"

# axe.run answers through a promise: execute_async_script's last argument is the callback.
# What axe could not decide ("incomplete": a colour over an image, say) fails too, as "needs
# review": left alone it would pass unseen.
RUN_AXE = """
var done = arguments[arguments.length - 1];
function found(kind) {
  return function (rule) {
    return {kind: kind, id: rule.id, help: rule.help, nodes: rule.nodes.map(function (node) {
      return node.target.join(" ") + " " + node.html.slice(0, 100) + ": "
        + node.failureSummary.replace(/\\s+/g, " ");
    })};
  };
}
axe.run(document, {runOnly: {type: "tag", values: arguments[0]},
                   resultTypes: ["violations", "incomplete"]}).then(function (results) {
  done(results.violations.map(found("violation"))
       .concat(results.incomplete.map(found("needs review"))));
}, function (error) { done([{kind: "error", id: "axe.run", help: String(error), nodes: []}]); });
"""


class Audit:
    """axe-core run on the page the browser is on, what it found kept by the page's name."""

    def __init__(self, browser):
        self.browser = browser
        self.axe = AXE.read_text()
        self.pages = []
        self.found = {}

    def __call__(self, name):
        # WebDriver's scripts are the browser's own: the page's Content-Security-Policy, which
        # allows no inline script, has no say over them
        self.browser.execute_script(self.axe)
        self.pages.append(name)
        found = self.browser.execute_async_script(RUN_AXE, WCAG_21_AA)
        if found:
            self.found[name] = found

    def report(self):
        lines = []
        for name, found in self.found.items():
            lines.append(f"{name}:")
            for rule in found:
                lines.append(f"  {rule['kind']} {rule['id']}: {rule['help']}")
                lines += [f"    {node}" for node in rule["nodes"]]
        return "\n".join(lines)


def test_axe_core_is_the_copy_npm_ships():
    assert hashlib.sha256(AXE.read_bytes()).hexdigest() == AXE_SHA256
    assert AXE.read_text().startswith("/*! axe v4.14.1\n")
    assert (AXE.parent / "LICENSE").read_text().startswith("Mozilla Public License, version 2.0")


@pytest.fixture
def browser():
    driver = chromium()
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def test_every_page_passes_axe(browser, make_app, receiver):
    audit = Audit(browser)
    app = make_app(
        **{"fftelemetry.password_profile": "cheapest", "fftelemetry.telemetry_url": receiver.url}
    )
    with serving(app) as base:
        for name, path in [("login", "/login"), ("register", "/register"),
                           ("about telemetry, signed out", "/telemetry"),
                           ("404, signed out", "/nothing")]:
            browser.get(base + path)
            audit(name)
        browser.get(f"{base}/login")
        submit(browser, fill(browser, "login", email=EMAIL, password="wrong password"))
        audit("login, refused")
        for _ in range(5):  # fftelemetry.login_attempts' 5 failures, then a sixth attempt
            submit(browser, fill(browser, "login", email=EMAIL, password="wrong password"))
        assert "Too many login attempts" in browser.find_element("id", "form-error").text
        audit("login, too many attempts (429)")

        # the first account: the administrator
        browser.get(f"{base}/register")
        submit(browser, fill(browser, "register", email=EMAIL, password=PASSWORD))
        audit("new-user wizard")
        submit(browser, fill(browser, "preferences", language="nl", locale="nl_BE"))
        audit("home, after the wizard")
        for name, path in [
            ("preferences", "/preferences"), ("about telemetry", "/telemetry"),
            ("status", "/admin/telemetry"),
            ("submission log, empty", "/admin/telemetry/submissions"),
            ("400, a filter the records page has not", "/admin/telemetry/view?show=x"),
            ("records, pending", "/admin/telemetry/view"),
        ]:
            browser.get(base + path)
            audit(name)
        submit(browser, browser.find_element("id", "submit-form"))
        assert "0 pending, 4 submitted" in browser.find_element("id", "counts").text
        audit("records, submitted, with the flash message")
        browser.get(f"{base}/admin/telemetry/view?show=submitted")
        audit("records, filtered")

        # more than a page of records, three days old (overdue), one with a value too long to
        # show whole; a failed submission
        with request_environment(app.registry) as env:
            store = env["root"]["admin"]["telemetry"].store
            then = utcnow() - timedelta(days=3)
            for i in range(PAGE_SIZE):
                store.add_feature("system.users.count", 1000 + i, then)
            store.add_feature("config.default_language", "x" * 200, then)
            store.log_submission(SubmissionResult(utcnow(), 0, 503, None, "refused"))
        for name, path in [("status, overdue, a failed submission", "/admin/telemetry"),
                           ("submission log", "/admin/telemetry/submissions"),
                           ("records, pages, a long value", "/admin/telemetry/view")]:
            browser.get(base + path)
            audit(name)
        press(browser, browser.find_element("css selector", "a[rel=next]"))
        audit("records, an older page")

        # the second account: a member
        press(browser, browser.find_element("css selector", "#logout button"))
        browser.get(f"{base}/register")
        submit(browser, fill(browser, "register", email=EMAIL, password=PASSWORD))
        audit("register, refused (the address is taken)")
        submit(browser, fill(browser, "register", email=MEMBER, password=PASSWORD))
        submit(browser, fill(browser, "preferences", language="de", locale="de_DE"))
        for name, path in [("member's home", "/"), ("member's preferences", "/preferences"),
                           ("403, a member on an admin page", "/admin/telemetry")]:
            browser.get(base + path)
            audit(name)
    close_databases(app.registry)  # a file:// FileStorage allows one writer

    # The same Data.fs read-only (a replica), telemetry off; signed in still (a cookie is for
    # 127.0.0.1, whatever the port). Saving there is the 503 "Not saved".
    data_fs = app.registry.settings["zodbconn.uri"]
    replica = make_app(**{"fftelemetry.password_profile": "cheapest",
                          "fftelemetry.send_telemetry": "false",
                          "zodbconn.uri": f"{data_fs}?read_only=true"})
    with serving(replica) as base:
        browser.get(f"{base}/telemetry")
        audit("about telemetry, off")
        browser.get(f"{base}/preferences")
        submit(browser, browser.find_element("id", "preferences"))
        assert browser.title.startswith("Not saved")
        audit("503, a read-only database")

    assert len(audit.pages) == 26
    if audit.found:  # the report alone: pytest's repr of the dict would repeat it, unreadably
        pytest.fail("axe-core (WCAG 2.1 A and AA) found:\n" + audit.report(), pytrace=False)
