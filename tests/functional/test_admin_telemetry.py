"""/admin/telemetry, /admin/telemetry/view and /admin/telemetry/submissions in the browser, as
anonymous, user and admin."""

import json
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import trustme

from fftelemetry import catalog
from fftelemetry.resources import ROOT_KEY
from fftelemetry.resources.store import SubmissionResult, utcnow
from fftelemetry.scripting import close_databases, database
from fftelemetry.telemetry.sender import submit_pending
from fftelemetry.telemetry.status import format_time
from tests.conftest import STUB_UUID, Stub, serving
from tests.functional.conftest import ADMIN_EMAIL, PASSWORD
from tests.functional.test_sender import tls_serving

STATUS = "/admin/telemetry"
RECORDS = "/admin/telemetry/view"
SUBMISSIONS = "/admin/telemetry/submissions"
ACTIONS = ("submit", "delete-all", "delete-submitted")


def rows(page):
    """The records table as lists of cell texts."""
    return [
        [cell.get_text(" ", strip=True) for cell in row.find_all("td")]
        for row in page.html.select("table.records tbody tr")
    ]


def flash(page):
    return " ".join(p.get_text(" ", strip=True) for p in page.html.select(".flash p"))


def store_rows(site, which="all"):
    with site.store() as store:
        return [r.id for _, r in store.page(which, size=10_000)], store.counts()


def records_from_store(site, which="all"):
    with site.store() as store:
        return [r for _, r in store.page(which, size=10_000)]


# -- who may do what ----------------------------------------------------------------------------

PAGES = (STATUS, RECORDS, RECORDS + "/preview", RECORDS + "/export.json", SUBMISSIONS)


@pytest.mark.parametrize("url", PAGES)
def test_anonymous_is_sent_to_login(anonymous, url):
    assert "/login?came_from=" in anonymous.get(url, status=303).location


@pytest.mark.parametrize("url", PAGES)
def test_admin_sees_every_page(admin, url):
    admin.get(url, status=200)


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_refuse_anyone_but_the_admin(site, admin, member, action):
    site.seed(3, submitted=1)
    before = store_rows(site)
    # An ordinary user with a valid token of their own session: 403.
    token = member.get("/preferences").forms["preferences"]["csrf_token"].value
    page = member.post(f"{RECORDS}/{action}", {"csrf_token": token, "confirm": "yes"}, status=403)
    assert "for administrators" in page.text
    # Nobody signed in: to the login page.
    anonymous = site.browser()
    token = anonymous.get("/login").forms["login"]["csrf_token"].value
    res = anonymous.post(f"{RECORDS}/{action}", {"csrf_token": token, "confirm": "yes"}, status=303)
    assert "/login" in res.location
    assert store_rows(site) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_get_on_an_action_changes_nothing(site, admin, action):
    site.seed(3, submitted=1)
    before = store_rows(site)
    page = admin.get(f"{RECORDS}/{action}?confirm=yes", status=405)
    assert "Use the button" in page.text
    assert store_rows(site) == before


@pytest.mark.parametrize("action", ACTIONS)
def test_forged_posts_change_nothing(site, admin, action):
    site.seed(3, submitted=1)
    before = store_rows(site)
    admin.post(f"{RECORDS}/{action}", {"confirm": "yes"}, status=400)  # no token
    admin.post(f"{RECORDS}/{action}", {"confirm": "yes", "csrf_token": "guess"}, status=400)
    # A token from another session (an attacker's own) is no good either.
    other = site.browser().get("/login").forms["login"]["csrf_token"].value
    page = admin.post(f"{RECORDS}/{action}", {"confirm": "yes", "csrf_token": other}, status=400)
    assert "Nothing was changed" in page.text
    assert store_rows(site) == before


# an address, the methods it takes and what its 405 says
ONE_METHOD = [(f"{RECORDS}/{action}", "POST", "Use the button") for action in ACTIONS] + [
    ("/logout", "POST", "Use the button"),
    (f"{RECORDS}/preview", "GET, HEAD", "only read (GET)"),
    (f"{RECORDS}/export.json", "GET, HEAD", "only read (GET)"),
]


@pytest.mark.parametrize(("url", "allowed", "said"), ONE_METHOD)
def test_a_method_an_address_does_not_take_is_a_405_token_or_not(site, admin, url, allowed, said):
    """The preview and the export answered a POST (a PUT...) with the 404 page, "There is no page
    at this address"; the actions answered a PUT or DELETE without a token with the page of an
    expired form, as if the method would have done with one."""
    site.seed(3, submitted=1)
    before = store_rows(site)
    token = admin.get("/preferences").forms["preferences"]["csrf_token"].value
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        if method in allowed:
            continue
        for form in ({}, {"csrf_token": token}):
            page = admin.request(url, method=method, POST=form, status=405)
            assert page.headers["Allow"] == allowed
            assert said in page.text and "nothing was changed" in page.text
    assert store_rows(site) == before
    admin.get("/preferences", status=200)  # still signed in


# what a 405 page is headed and says, by the methods the address takes
METHOD_PAGES = [
    (f"{RECORDS}/submit", "Use the button", "This address only takes a form's POST; nothing was "
     "changed. Use the button on the page instead."),
    (f"{RECORDS}/preview", "Only to read", "This address is only read (GET); nothing was changed."),
    ("/preferences", "Use the form", "This address shows a form (GET) and takes it back filled in "
     "(POST); nothing was changed. Use the form on the page instead."),
]


@pytest.mark.parametrize(("url", "heading", "message"), METHOD_PAGES)
def test_a_405_page_is_headed_by_what_to_do_instead(admin, url, heading, message):
    # only parts of the messages were read, and no heading: "Use the form" by no test at all
    page = admin.request(url, method="PUT", status=405)
    assert page.html.h1.text == heading
    assert page.html.title.text == f"{heading} — fftelemetry"
    assert page.html.h1.find_next("p").text == message


# -- the status page ------------------------------------------------------------------------------


def test_status_page_shows_the_facts(site, admin):
    site.seed(4, submitted=3)
    at = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    with site.store() as store:
        store.log_submission(SubmissionResult(at, 3, 200, "1ebfb9f0-6c0b-11ea", None))
        installation_id, counts = store.installation_id, store.counts()
    page = admin.get(STATUS)
    text = page.text
    assert "Telemetry is <strong>enabled</strong>" in text
    assert "fftelemetry.send_telemetry in the ini file" in text
    assert "environment-only" not in text
    # the users are told by the application itself: the box names the page that tells them
    assert "Collection covers all users of this installation." in text
    assert page.html.select_one(".switch a")["href"] == "http://localhost/telemetry"
    assert "SEND_TELEMETRY=true" in text and "docker run -e SEND_TELEMETRY=true" in text
    assert installation_id in text
    assert "http://127.0.0.1:6544/submit" in text
    assert page.html.select_one("#ca-bundle") is None  # requests' own: each process's
    for which in ("all", "pending", "submitted"):
        assert page.html.select_one(f"#count-{which}").text == str(counts[which])
    assert "2026-01-05 12:00:00 UTC: sent 3" in text
    assert "1ebfb9f0-6c0b-11ea" in text
    assert "2026-01-12 12:00:00 UTC" in text  # next due: a week after the last success
    for entry in catalog.ENTRIES:
        assert entry.key in text
        assert entry.description in text
    assert page.click("See the records").status_int == 200


def test_status_page_says_how_long_submitted_records_are_kept(make_site, tmp_path):
    def retention(**settings):
        site = make_site(**settings, **{"zodbconn.uri": f"file://{tmp_path}/{len(settings)}.fs"})
        page = site.register(ADMIN_EMAIL).get(STATUS)
        return " ".join(page.html.select_one("#retention").get_text(" ").split())

    assert retention() == (
        "Submitted records are kept 90 days after they were sent, then deleted by fftelemetry "
        "cron ( fftelemetry.keep_submitted_days = 90 )."
    )
    assert retention(**{"fftelemetry.keep_submitted_days": "0"}) == (
        "Submitted records are kept until you delete them ( fftelemetry.keep_submitted_days = 0 )."
    )


def test_status_page_when_off_by_do_not_track(make_site, monkeypatch):
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    site = make_site()
    admin = site.register("owner@example.org")
    text = admin.get(STATUS).text
    assert "Telemetry is <strong>disabled</strong>" in text
    assert "DO_NOT_TRACK" in text
    assert "none yet" in text  # no installation id: nothing was ever collected
    assert "none while telemetry is off" in text
    assert "Collection covers all users" not in text
    assert "environment-only" in text  # DO_NOT_TRACK here is this process's own
    where = " ".join(admin.get(STATUS).html.select_one("#environment-only").text.split())
    assert "Set it in the .env file to give every process" in where  # not the ini: no such setting
    page = admin.get(RECORDS).forms["submit-form"].submit(status=303).follow()
    assert "Not sent: DO_NOT_TRACK is set in this server's environment" in flash(page)


def test_submit_names_a_do_not_track_in_the_env_file(make_site, tmp_path):
    (tmp_path / ".env").write_text("DO_NOT_TRACK=1\n")
    site = make_site(**{"fftelemetry.send_telemetry": "true"})
    admin = site.register("owner@example.org")
    page = admin.get(RECORDS).forms["submit-form"].submit(status=303).follow()
    assert f"Not sent: DO_NOT_TRACK is set in the .env file ({tmp_path / '.env'})" in flash(page)
    assert "Remove it to allow sending" in flash(page)


def test_status_page_warns_that_the_environment_is_this_process_only(make_site, monkeypatch):
    monkeypatch.setenv("SEND_TELEMETRY", "true")
    site = make_site(**{"fftelemetry.send_telemetry": "false"})
    page = site.register("owner@example.org").get(STATUS)
    assert "set by the SEND_TELEMETRY environment variable" in page.text
    assert "started from a crontab" in page.html.select_one("#environment-only").text


def test_status_page_shows_a_failed_submission(site, admin):
    with site.store() as store:
        store.log_submission(SubmissionResult(datetime(2026, 1, 5, tzinfo=UTC), 0, None, None,
                                              "cannot connect to http://x/submit"))
    page = admin.get(STATUS)
    assert "failed: cannot connect to http://x/submit" in page.text
    assert "due now" in page.text
    # its status cell is a dash, written as a reference: the templates' own text is ASCII (one
    # character beyond it makes the whole page slower to join and encode: docs/performance.md)
    for shown in (page, admin.get(SUBMISSIONS)):
        assert [row[2] for row in submission_rows(shown)] == ["\u2014"]
        assert shown.body.isascii(), shown.text


def test_status_page_warns_of_overdue_submissions(make_site, receiver, tmp_path):
    def warning(sent_ago, collected_ago):
        """The page's warning, on a site that sent `sent_ago` days ago (never: None) by the real
        sender on a clock set back, with a record pending since `collected_ago` days ago."""
        name = f"{sent_ago}-{collected_ago}.fs"
        site = make_site(**{"fftelemetry.telemetry_url": receiver.url,
                            "zodbconn.uri": f"file://{tmp_path}/{name}"})
        if sent_ago is not None:
            then = utcnow() - timedelta(days=sent_ago)
            with site.store() as store:
                store.add_feature("system.users.count", 1, then - timedelta(hours=1))
            settings = site.app.registry.app_settings
            assert submit_pending(database(site.app.registry), settings, now=then).ok
        with site.store() as store:
            store.add_feature("system.users.count", 2, utcnow() - timedelta(days=collected_ago))
        page = site.register(ADMIN_EMAIL).get(STATUS)
        found = page.html.select_one("#overdue")
        if found is None:
            assert "overdue" not in page.text
            return None
        assert found.name == "p" and found["role"] == "alert"
        assert set(found["class"]) == {"error", "page-error"}  # styled as the form errors are
        return " ".join(found.get_text().split())

    # overdue two days past the due time (a week after the last success; never sent: at once),
    # or past the oldest pending record's collection if that is later
    assert warning(None, 1) is None
    assert warning(8, 7) is None
    assert warning(30, 1) is None  # quiet for weeks, then a record: the next cron run sends it
    for sent_ago, collected_ago in ((None, 3), (10, 9)):
        assert re.fullmatch(
            r"Submissions overdue since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: pending records have "
            r"waited two days past their due time\. Check fftelemetry cron's output "
            rf"\({re.escape(str(tmp_path))}/cron\.log\) and that its crontab line runs\.",
            warning(sent_ago, collected_ago))
    # the log the printed cron line appends to: var/cron.log once the ini's folder has a var/
    (tmp_path / "var").mkdir()
    assert f"cron's output ({tmp_path}/var/cron.log) and" in warning(None, 4)


def test_status_page_says_when_cron_finds_telemetry_off_while_it_is_on_here(
        make_site, receiver, tmp_path, write_ini, run_cli):
    """SEND_TELEMETRY given to pserve alone: the real `fftelemetry cron`, reading the ini and
    finding telemetry off, sends nothing, so the page says so until a submission succeeds; the
    page of a web server where telemetry is off says nothing of it. (The app and the command
    take turns with the database file, as they cannot share it without ZEO.)"""
    def page(site):
        browser = site.browser()
        form = browser.get("/login").forms["login"]
        form["email"], form["password"] = ADMIN_EMAIL, PASSWORD
        form.submit(status=303)
        return browser, browser.get(STATUS)

    site = make_site(**{"fftelemetry.telemetry_url": receiver.url})
    site.register(ADMIN_EMAIL)  # collects: pending, never sent
    close_databases(site.app.registry)
    cron = write_ini("cron.ini", **{"fftelemetry.send_telemetry": None})  # the default: off
    assert run_cli("cron", cron).returncode == 0

    site = make_site(**{"fftelemetry.send_telemetry": "false"})  # off here too: nothing said
    status = page(site)[1]
    assert status.html.select_one(".switch.off") is not None
    assert "telemetry off at" not in status.text
    close_databases(site.app.registry)

    site = make_site(**{"fftelemetry.telemetry_url": receiver.url})
    admin, status = page(site)
    found = status.html.select_one("#cron-off")
    assert found is not None, status.text
    assert found.name == "p" and found["role"] == "alert"
    with site.store() as store:
        ran = format_time(store.cron_ran_off_at)
    assert " ".join(found.get_text().split()) == (
        f"fftelemetry cron found telemetry off at {ran}, and no submission has succeeded "
        "since. cron reads its own environment, the .env file and the ini file, not this web "
        "server's environment, and sends nothing while it finds telemetry off: a value given "
        "to this server alone does not reach it. This goes with the first successful "
        "submission.")
    assert "Sent " in flash(submit_now(admin))
    assert "telemetry off at" not in admin.get(STATUS).text


def submission_rows(page):
    """The submissions table as lists of cell texts, an error's to its first parenthesis."""
    return [[cell.get_text(strip=True).split(" (")[0] for cell in row.find_all("td")]
            for row in page.html.select("[aria-labelledby=submissions-heading] tbody tr")]


def test_every_submission_the_log_keeps_can_be_seen(make_site, closed_port_url):
    """The status page lists the newest ten and links to the rest; the submission log's page
    lists as many as fftelemetry.submission_log_size keeps: here 12, an old success and eleven
    failed presses, then the press that drops the success."""
    site = make_site(**{"fftelemetry.telemetry_url": closed_port_url,
                        "fftelemetry.submission_log_size": "12"})
    admin = site.register(ADMIN_EMAIL)
    with site.store() as store:
        store.log_submission(SubmissionResult(datetime(2026, 1, 5, tzinfo=UTC), 3, 200,
                                              "1ebfb9f0-6c0b-11ea", None))
    for _ in range(9):
        submit_now(admin)
    status = admin.get(STATUS)
    assert len(submission_rows(status)) == 10
    assert status.html.select_one("#older-submissions") is None  # all ten kept are shown

    for _ in range(2):
        submit_now(admin)
    status = admin.get(STATUS)
    failed = ["0", "—", f"cannot connect to {closed_port_url}/submit"]
    assert [row[1:] for row in submission_rows(status)] == [failed] * 10
    older = status.html.select_one("#older-submissions")
    assert " ".join(older.get_text().split()) == (
        "The newest 10 of the 12 submissions kept: see all 12")
    log = status.click("see all 12")
    assert log.request.path == SUBMISSIONS
    assert " ".join(log.html.select_one("#kept").get_text().split()) == (
        "12 submissions kept, newest first. The log keeps the last 12 "
        "(fftelemetry.submission_log_size), by fftelemetry cron or \"Submit pending records "
        "now\", and drops older ones.")
    assert [row[1:] for row in submission_rows(log)] == [failed] * 11 + [
        ["3", "200", "1ebfb9f0-6c0b-11ea"]]
    assert submission_rows(log)[-1][0] == "2026-01-05 00:00:00 UTC"

    submit_now(admin)  # the thirteenth: the oldest goes
    assert [row[1:] for row in submission_rows(admin.get(SUBMISSIONS))] == [failed] * 12
    # read-only: no form but the menu's, and none of the records page's actions under it
    assert list(log.forms) == [0, "logout"]
    for action in (*ACTIONS, "preview", "export.json"):
        admin.get(f"{SUBMISSIONS}/{action}", status=404)
    assert log.click("Back to the telemetry status").request.path == STATUS + "/"


def test_a_lowered_log_size_shows_at_once(make_site):
    """A log kept by a larger fftelemetry.submission_log_size is trimmed when the next submission
    is logged; the pages show the setting's number, the newest, at once, and write nothing."""
    site = make_site(**{"fftelemetry.submission_log_size": "12"})
    admin = site.register(ADMIN_EMAIL)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    with site.store() as store:
        for i in range(20):  # kept by the default 50
            at = start + timedelta(minutes=i)
            store.log_submission(SubmissionResult(at, 0, 503, None, f"refused {i}"))
    status = admin.get(STATUS)
    assert " ".join(status.html.select_one("#older-submissions").get_text().split()) == (
        "The newest 10 of the 12 submissions kept: see all 12")
    log = admin.get(SUBMISSIONS)
    assert " ".join(log.html.select_one("#kept").get_text().split()).startswith(
        "12 submissions kept, newest first. The log keeps the last 12 ")
    assert [row[3] for row in submission_rows(log)] == [
        f"refused {i}" for i in reversed(range(8, 20))]
    with site.store() as store:
        assert store.submissions_kept() == 20  # a GET writes nothing


def test_the_submission_log_says_when_it_is_empty(admin):
    page = admin.get(SUBMISSIONS)
    assert page.html.select_one("table") is None
    assert "No submissions yet." in page.text
    assert "0 submissions kept" in page.html.select_one("#kept").text


# -- the records page -----------------------------------------------------------------------------


def test_records_page_matches_the_store(site, admin):
    site.seed(6, submitted=3)
    for which in ("all", "pending", "submitted"):
        page = admin.get(RECORDS, {"show": which})
        records = records_from_store(site, which)
        counts = site.counts()
        assert " ".join(page.html.select_one("#counts").get_text().split()).startswith(
            f"{counts['all']} records collected: {counts['pending']} pending, "
            f"{counts['submitted']} submitted."
        )
        shown = rows(page)
        assert [row[4] for row in shown] == [str(r.value) for r in records]
        assert [row[3] for row in shown] == [r.key for r in records]
        for row, record in zip(shown, records, strict=True):
            if record.submitted_at is None:
                assert row[1] == "not yet submitted" and row[5] == ""
            else:
                assert row[5] == record.submission_uuid == "receiver-uuid-1"
        assert len(shown) == counts[which]


def test_one_record_is_said_in_the_singular(site, admin):
    with site.store() as store:
        store.delete_all()  # what signing up collected
    site.seed(1, submitted=1)
    page = admin.get(RECORDS)
    assert " ".join(page.html.select_one("#counts").get_text().split()).startswith(
        "1 record collected: 0 pending, 1 submitted."
    )
    confirms = {form["id"]: form["data-confirm"] for form in page.html.select("form[data-confirm]")}
    assert confirms == {
        "delete-submitted-form": "Delete the 1 submitted record?",
        "delete-all-form": "Delete the 1 record?",
    }
    labels = [" ".join(label.get_text().split()) for label in page.html.select("form label")]
    assert "Yes, delete the 1 submitted record" in labels
    assert "Yes, delete the 1 record" in labels


def test_a_batch_of_one_is_said_in_the_singular(make_site):
    site = make_site(**{"fftelemetry.batch_size": "1"})
    page = site.register(ADMIN_EMAIL).get(RECORDS)
    assert "(JSON, the oldest 1 pending record)" in " ".join(page.text.split())


def test_records_are_paged_newest_first_with_keyset_links(site, admin):
    site.seed(250, submitted=40)
    expected = [str(r.value) for r in records_from_store(site)]
    assert len(expected) == 254
    page, seen, pages = admin.get(RECORDS), [], []
    while True:
        pages.append(page)
        seen += [row[4] for row in rows(page)]
        if not page.html.select_one("a[rel=next]"):
            break
        page = page.click("Older")
    assert seen == expected
    assert [len(rows(p)) for p in pages] == [100, 100, 54]
    assert not pages[0].html.select_one("a[rel=prev]")
    # The way back: Newer from the last page is the middle page again, Newest the first.
    assert rows(pages[2].click("Newer")) == rows(pages[1])
    assert rows(pages[2].click("Newest")) == rows(pages[0])
    assert rows(pages[1].click("Newer")) == rows(pages[0])


def test_the_pages_navigation_is_there_only_when_there_are_other_pages(site, admin):
    """A navigation landmark with no link in it: a screen reader's user who jumps to it finds
    nothing there."""
    def pages_nav(page):
        """The links of each navigation named Pages."""
        navs = page.html.select("nav[aria-label=Pages]")
        return [[a.text for a in nav.select("a")] for nav in navs]

    assert pages_nav(admin.get(RECORDS)) == []  # the wizard's few records: one page
    assert pages_nav(admin.get(RECORDS, {"show": "submitted"})) == []  # none at all
    site.seed(150)
    first = admin.get(RECORDS)
    assert pages_nav(first) == [["Older"]]
    assert pages_nav(first.click("Older")) == [["Newest", "Newer"]]
    assert pages_nav(admin.get(RECORDS, {"before": "1"})) == [["Newest"]]  # past the end


def test_paging_keeps_the_filter(site, admin):
    site.seed(150, submitted=120)
    first = admin.get(RECORDS, {"show": "submitted"})
    older = first.click("Older")
    assert [len(rows(first)), len(rows(older))] == [100, 20]
    assert all(row[1] != "not yet submitted" for row in rows(first) + rows(older))


@pytest.mark.parametrize(
    "query",
    [{"show": "everything"}, {"before": "x"}, {"after": "1.5"}, {"before": "9" * 30},
     {"after": str(-(2**63) - 1)}, {"after": str(2**63)}],
)
def test_bad_query_is_400(admin, query):
    page = admin.get(RECORDS, query, status=400)
    assert page.html.select_one("header nav a.brand"), "in the site's layout"
    assert "This address cannot be shown: " in page.html.select_one("main").text
    if "show" in query:  # the export takes the filter only
        export = admin.get(f"{RECORDS}/export.json", query, status=400)
        assert "This address cannot be shown: " in export.text


def test_a_bad_query_says_what_is_wrong(admin):
    page = admin.get(RECORDS, {"show": "everything"}, status=400)
    assert page.html.h1.text == "Bad request"
    assert "show must be one of all, pending, submitted." in page.text


@pytest.mark.parametrize("name", ["before", "after"])
def test_a_key_is_ascii_digits_of_any_length(admin, name):
    """As the page's links write a key. int() read " 7", "+7", "1_000" and other scripts'
    digits as numbers, and refused more than 4,300 digits as "not a whole number"."""
    for loose in (" 7", "+7", "1_000", "\uff11\uff12", "\u0665"):
        page = admin.get(RECORDS, {name: loose}, status=400)
        assert f"This address cannot be shown: {name} must be a whole number." in page.text
    for long in ("9" * 5000, "-" + "1" * 4301, "1" + "0" * 19):
        page = admin.get(RECORDS, {name: long}, status=400)
        assert f"This address cannot be shown: {name} is out of range." in page.text


@pytest.mark.parametrize("before", ["1", str(-(2**63))])  # the least: a 500 (below it, no key)
def test_an_empty_page_offers_the_way_back(site, admin, before):
    page = admin.get(RECORDS, {"before": before})
    assert "No records here." in page.text
    assert len(rows(page.click("Newest"))) == site.counts()["all"]


def test_nothing_is_newer_than_the_greatest_key(site, admin):
    site.seed(3)
    page = admin.get(RECORDS, {"after": str(2**63 - 1)})  # the greatest: a 500 above it
    assert "No records here." in page.text
    assert len(rows(page.click("Newest"))) == site.counts()["all"]


def test_long_values_fold_and_everything_is_escaped(site, admin):
    # Values the catalog would refuse can't be collected; write one straight into the store, as
    # an older version's record might be, to prove the page escapes and folds whatever it shows.
    nasty = "<script>alert(1)</script>" + "x" * 80
    with site.store() as store:
        store.add_feature("system.os.version", nasty)
    page = admin.get(RECORDS)
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    details = page.html.select_one("table.records details")
    assert details.summary.get_text().endswith("…")
    assert len(details.summary.get_text()) < len(nasty)
    assert nasty in details.get_text()


# -- delete ---------------------------------------------------------------------------------------


def test_delete_all_needs_the_box_ticked(site, admin):
    site.seed(5, submitted=2)
    before = store_rows(site)
    form = admin.get(RECORDS).forms["delete-all-form"]
    page = form.submit(status=303).follow()
    assert "Nothing deleted: tick the box" in flash(page)
    assert store_rows(site) == before


def test_delete_all_deletes_everything_and_forgets_what_was_sent(site, admin):
    site.seed(5, submitted=2)
    total = site.counts()["all"]
    form = admin.get(RECORDS).forms["delete-all-form"]
    form["confirm"] = True
    page = form.submit(status=303).follow()
    assert f"Deleted {total} records, pending and submitted" in flash(page)
    assert site.counts() == {"all": 0, "pending": 0, "submitted": 0}
    assert rows(page) == []
    with site.store() as store:  # a fresh start: a known fact is new again
        assert store.add_feature("system.users.count", 1000) is not None


def test_delete_submitted_deletes_exactly_the_submitted(site, admin):
    site.seed(5, submitted=3)
    pending_before, _ = store_rows(site, "pending")
    form = admin.get(RECORDS).forms["delete-submitted-form"]
    form["confirm"] = True
    page = form.submit(status=303).follow()
    counts = site.counts()
    assert counts == {"all": len(pending_before), "pending": len(pending_before), "submitted": 0}
    assert "Deleted 3 records already submitted; 6 records still pending." in flash(page)
    assert store_rows(site, "pending")[0] == pending_before
    # The oldest three were users.count=1 and the wizard's language and locale: deleted, yet
    # still known, so they are not collected (and sent) again.
    assert ["system.users.count", "1"] not in [row[3:5] for row in rows(page)]
    with site.store() as store:
        assert store.add_feature("system.users.count", 1) is None
        assert store.add_feature("user.preferences.language", "en") is None


def test_nothing_to_delete_is_not_offered(site, admin):
    page = admin.get(RECORDS)  # the records of the admin's registration, none submitted
    assert "delete-submitted-form" not in page.forms and "delete-all-form" in page.forms
    assert "No submitted records to delete." in page.text
    page.forms["delete-all-form"]["confirm"] = True
    page = page.forms["delete-all-form"].submit().follow()
    assert "delete-all-form" not in page.forms and site.counts()["all"] == 0


@pytest.mark.parametrize(("form_id", "which"), [("delete-all-form", "all"),
                                                ("delete-submitted-form", "submitted")])
def test_records_that_came_after_the_page_are_not_deleted_unseen(site, admin, form_id, which):
    site.seed(5, submitted=2)
    form = admin.get(RECORDS).forms[form_id]
    form["confirm"] = True
    site.seed(1, start=2000, submitted=1)  # a registration, a cron run: while the admin reads
    before, now = store_rows(site), site.counts()[which]
    page = form.submit(status=303).follow()
    assert f"Nothing deleted: the records changed since the page was shown (now {now})" in flash(
        page
    )
    assert store_rows(site) == before
    assert page.forms[form_id]["shown"].value == str(now)  # the new count, to confirm


# -- submit ---------------------------------------------------------------------------------------


def test_submit_is_refused_while_telemetry_is_off(make_site):
    site = make_site(**{"fftelemetry.send_telemetry": "false"})
    admin = site.register("owner@example.org")
    site.seed(3)
    page = admin.get(RECORDS)
    assert "Telemetry is off: sending is refused." in page.text
    page = page.forms["submit-form"].submit(status=303).follow()
    assert "Not sent: telemetry is off" in flash(page)
    assert site.counts() == {"all": 3, "pending": 3, "submitted": 0}
    with site.store() as store:
        assert store.last_submission() is None


def test_status_page_while_off_says_what_becomes_of_the_pending_records(make_site):
    # they are not sent while off, and go with the first submission once it is on again
    site = make_site(**{"fftelemetry.send_telemetry": "false"})
    admin = site.register("owner@example.org")
    assert admin.get(STATUS).html.select_one("#pending-while-off") is None  # none pending
    site.seed(3, submitted=1)
    said = " ".join(admin.get(STATUS).html.select_one("#pending-while-off").text.split())
    assert said == (
        "The records collected while it was on and still pending (2) stay here, unsent. They go "
        "with the first submission after telemetry is switched on again, however old they are: "
        "to have them never sent, delete them first (Delete all records on the records page)."
    )
    data_fs = site.app.registry.settings["zodbconn.uri"]
    close_databases(site.app.registry)  # a file:// FileStorage allows one writer
    receiver = Stub()
    with serving(receiver) as url:  # switched on again: the first press sends them
        on = make_site(**{"fftelemetry.send_telemetry": "true", "zodbconn.uri": data_fs,
                          "fftelemetry.telemetry_url": url})
        browser = on.browser()
        browser.set_cookie("session", admin.cookies["session"])
        submit_now(browser)
    [(_, body)] = receiver.requests
    assert [record["value"] for record in json.loads(body)] == [1001, 1002]


def test_submit_reports_an_unreachable_receiver(make_site, closed_port_url):
    site = make_site(**{"fftelemetry.telemetry_url": closed_port_url})
    admin = site.register("owner@example.org")
    before = site.counts()
    page = admin.get(RECORDS).forms["submit-form"].submit(status=303).follow()
    assert f"Nothing was sent: cannot connect to {closed_port_url}/submit" in flash(page)
    assert page.html.select_one(".flash .error")
    assert site.counts() == before


def test_a_long_refusal_in_any_script_is_told_in_the_flash(make_site):
    # The receiver's reason goes into the flash, so into the session cookie, which Pyramid
    # refuses to send past 4 KB: 300 characters of U+1F600, each 12 bytes as \\ud83d\\ude00
    # in JSON, made "submit now" a bare 500 (and the admin never saw why).
    reason = "\U0001f600" * 1000
    stub = Stub(status="400 Bad Request", body=json.dumps({"error": reason}).encode())
    with serving(stub) as url:
        site = make_site(**{"fftelemetry.telemetry_url": url})
        admin = site.register("owner@example.org")
        page = admin.get(RECORDS).forms["submit-form"].submit(status=303).follow()
    said = flash(page)
    assert said.startswith("Nothing was sent: the receiver answered HTTP 400: \U0001f600")
    assert "… (1,000 characters). The records stay pending for the next try." in said


# -- flash messages: queued in the session cookie until a page shows them ---------------------


def cookie_size(answer):
    """The bytes of the session cookie a browser counts against its 4 KB: name and value."""
    return len(answer.headers["Set-Cookie"].split(";")[0])


def test_actions_pressed_again_and_again_keep_the_newest_messages(site, admin):
    # A client that POSTs without loading the page the redirect leads to left every message in
    # the cookie; past 4 KB Pyramid refused to send it: waitress's bare 500.
    token = admin.get(RECORDS).forms["delete-all-form"]["csrf_token"].value
    for value in range(60):
        site.seed(1, start=1000 + value)  # the count the message names: unlike the one before
        answer = admin.post(f"{RECORDS}/delete-all",
                            {"csrf_token": token, "confirm": "yes", "shown": "0"}, status=303)
        assert cookie_size(answer) < 4096
    total = site.counts()["all"]
    page = admin.get(RECORDS, status=200)  # still signed in: not sent to the login page
    assert ADMIN_EMAIL in page.text
    said = [p.get_text(" ", strip=True) for p in page.html.select(".flash p")]
    assert said == [f"Nothing deleted: the records changed since the page was shown (now {n}). "
                    "Check them and confirm again." for n in range(total - 2, total + 1)]
    page.forms["delete-all-form"]["confirm"] = True  # the token is still the session's
    assert "This is a fresh start" in flash(page.forms["delete-all-form"].submit().follow())


def test_a_message_the_same_as_the_one_before_is_kept_once(site, admin):
    token = admin.get(RECORDS).forms["delete-all-form"]["csrf_token"].value
    for _ in range(5):
        admin.post(f"{RECORDS}/delete-all", {"csrf_token": token}, status=303)
    assert admin.get(RECORDS).text.count("Nothing deleted: tick the box") == 1


def test_long_messages_that_do_not_fit_the_cookie_lose_the_oldest(make_site):
    # Three refusals of 300 escaped characters of U+1F600 each are over 4 KB of UTF-8: the
    # newest messages stay, as many as fit, the sign-in with them.
    stub = Stub(status="400 Bad Request")
    with serving(stub) as url:
        site = make_site(**{"fftelemetry.telemetry_url": url})
        admin = site.register(ADMIN_EMAIL)
        token = admin.get(RECORDS).forms["submit-form"]["csrf_token"].value
        for press in "123":
            stub.body = json.dumps({"error": press + "\U0001f600" * 1000}).encode()
            answer = admin.post(f"{RECORDS}/submit", {"csrf_token": token}, status=303)
            assert cookie_size(answer) < 4096
    said = flash(admin.get(RECORDS, status=200))
    assert "HTTP 400: 3\U0001f600" in said and "HTTP 400: 2\U0001f600" in said
    assert "HTTP 400: 1" not in said and ADMIN_EMAIL in admin.get(STATUS, status=200).text


def test_a_message_too_big_for_the_cookie_on_its_own_is_shown_cut(make_site, closed_port_url):
    # A failure names the receiver's address, which may be as long as the operator made it:
    # 1,950 characters of U+1F600 (start-up takes 2,000 in all) are 7.8 KB of UTF-8, and the
    # message, dropped whole to make the cookie fit, told the admin nothing at all.
    url = closed_port_url + "/" + "\U0001f600" * 1950
    site = make_site(**{"fftelemetry.telemetry_url": url})
    admin = site.register(ADMIN_EMAIL)
    answer = admin.get(RECORDS).forms["submit-form"].submit(status=303)
    assert cookie_size(answer) < 4096
    said = flash(answer.follow(status=200))  # still signed in: not sent to the login page
    assert said.startswith(f"Nothing was sent: cannot connect to {closed_port_url}/\U0001f600")
    assert said.endswith("\U0001f600…") and len(said) < 1000


def test_submit_sends_everything_pending(make_site, receiver):
    site = make_site(**{"fftelemetry.telemetry_url": receiver.url,
                        "fftelemetry.batch_size": "3"})
    admin = site.register("owner@example.org")
    site.seed(3)
    total = site.counts()["pending"]
    page = admin.get(RECORDS).forms["submit-form"].submit(status=303).follow()
    assert f"Sent {total} records; the receiver's reference is" in flash(page)
    assert site.counts() == {"all": total, "pending": 0, "submitted": total}
    uuids = {row[5] for row in rows(page)}
    assert len(uuids) == -(-total // 3) and "" not in uuids  # each batch has its reference
    again = admin.get(RECORDS).forms["submit-form"].submit().follow()
    assert "Nothing to send" in flash(again)


def test_submit_trusts_the_receivers_ca_the_setting_names(make_site, receiver, tmp_path,
                                                          monkeypatch):
    # "submit now" reads the setting as cron does: the web server's environment need not
    # repeat REQUESTS_CA_BUNDLE
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "our-ca.pem"))
    with tls_serving(receiver.app, ca.issue_cert("127.0.0.1")) as url:
        site = make_site(**{"fftelemetry.telemetry_url": url,
                            "fftelemetry.telemetry_ca_bundle": "our-ca.pem"})
        admin = site.register("owner@example.org")
        total = site.counts()["pending"]
        page = submit_now(admin)
    assert f"Sent {total} records; the receiver's reference is" in flash(page)
    assert site.counts() == {"all": total, "pending": 0, "submitted": total}
    assert receiver.stats()["records"] == total


def test_status_page_names_the_receivers_cas_the_setting_names(make_site, tmp_path):
    (tmp_path / "our-ca.pem").write_text("PEM\n")
    site = make_site(**{"fftelemetry.telemetry_ca_bundle": "our-ca.pem"})
    page = site.register("owner@example.org").get(STATUS)
    said = page.html.select_one("#ca-bundle")
    assert said.find_previous("dt").text == "Receiver's CAs"
    assert " ".join(said.text.split()) == (
        f"{tmp_path / 'our-ca.pem'} (fftelemetry.telemetry_ca_bundle)"
    )


def submit_now(browser):
    return browser.get(RECORDS).forms["submit-form"].submit(status=303).follow()


def submitting(browser):
    """submit_now(browser) in a thread of its own: (thread, pages), the page there once it ends."""
    pages = []
    thread = threading.Thread(target=lambda: pages.append(submit_now(browser)), daemon=True)
    thread.start()
    return thread, pages


def signed_in(site, email):
    """Another browser, signed in as `email` (a second admin's, or a second window's)."""
    browser = site.browser()
    form = browser.get("/login").forms["login"]
    form["email"], form["password"] = email, PASSWORD
    form.submit(status=303)
    return browser


class HeldStub(Stub):
    """A Stub that holds every answer until `release` is set; `posts` counts the requests that
    came, answered or not, and `arrived` is set by the first."""

    def __init__(self):
        super().__init__()
        self.posts, self.arrived, self.release = 0, threading.Event(), threading.Event()

    def __call__(self, environ, start_response):
        self.posts += 1
        self.arrived.set()
        self.release.wait(30)  # not for ever: a failing test still ends
        return super().__call__(environ, start_response)


ALREADY_RUNNING = "A submission is already running on this server; this press sent nothing more."


def test_a_press_while_a_submission_runs_sends_nothing_and_does_not_wait(make_site):
    receiver = HeldStub()
    with serving(receiver) as url:
        site = make_site(**{"fftelemetry.telemetry_url": url})
        admin = site.register(ADMIN_EMAIL)
        other = signed_in(site, ADMIN_EMAIL)
        site.seed(3)
        pending = site.counts()["pending"]
        try:
            first, first_pages = submitting(admin)
            assert receiver.arrived.wait(10), "the first press posts its batch"
            second, second_pages = submitting(other)
            second.join(10)
            assert not second.is_alive(), "the second press must not wait for the first"
            assert first.is_alive() and receiver.posts == 1  # the first still held; no second
            assert ALREADY_RUNNING in flash(second_pages[0])
            assert second_pages[0].html.select_one(".flash .info")  # news, not an error
            assert site.counts()["pending"] == pending
        finally:
            receiver.release.set()
        first.join(10)
        assert f"Sent {pending} records; the receiver's reference is {STUB_UUID}." in flash(
            first_pages[0]
        )
        assert site.counts() == {"all": pending, "pending": 0, "submitted": pending}
        assert len(receiver.requests) == 1

        site.seed(2, start=2000)  # over: the next press runs as ever
        assert "Sent 2 records" in flash(submit_now(other))
        assert len(receiver.requests) == 2


def test_a_failed_submission_does_not_hold_up_the_next_press(make_site, closed_port_url):
    site = make_site(**{"fftelemetry.telemetry_url": closed_port_url})
    admin = site.register(ADMIN_EMAIL)
    failed = f"Nothing was sent: cannot connect to {closed_port_url}/submit"
    assert failed in flash(submit_now(admin))
    assert failed in flash(submit_now(admin))  # tried again, not "already running"


def test_a_press_on_a_read_only_database_sends_nothing(make_site):
    # it sent the pending records, failed to mark them, and sent them again at every press
    receiver = Stub()
    with serving(receiver) as url:
        site = make_site(**{"fftelemetry.telemetry_url": url})
        admin = site.register(ADMIN_EMAIL)
        data_fs = site.app.registry.settings["zodbconn.uri"]
        close_databases(site.app.registry)  # a file:// FileStorage allows one writer
        replica = make_site(**{"fftelemetry.telemetry_url": url,
                               "zodbconn.uri": f"{data_fs}?read_only=true"})
        browser = replica.browser()
        browser.set_cookie("session", admin.cookies["session"])
        page = submit_now(browser)
        assert flash(page) == (
            "Not sent: the database is read-only, so the records sent could not be marked as "
            "sent, and would be sent again at every press. Send them from the site on the "
            "writable database (its daily fftelemetry cron does)."
        )
        assert page.html.select_one(".flash .error")
        assert receiver.requests == []
        assert replica.counts()["pending"] > 0


def test_status_page_on_a_read_only_database_says_so_and_where_cron_runs(make_site):
    # it named this server's folder's cron.log for an overdue submission, where no cron runs
    site = make_site()
    admin = site.register(ADMIN_EMAIL)
    with site.store() as store:
        store.add_feature("system.users.count", 2, utcnow() - timedelta(days=3))  # overdue
    assert admin.get(STATUS).html.select_one("#read-only") is None
    data_fs = site.app.registry.settings["zodbconn.uri"]
    close_databases(site.app.registry)  # a file:// FileStorage allows one writer
    browser = make_site(**{"zodbconn.uri": f"{data_fs}?read_only=true"}).browser()
    browser.set_cookie("session", admin.cookies["session"])
    page = browser.get(STATUS)
    assert " ".join(page.html.select_one("#read-only").get_text().split()) == (
        "read-only (a replica): sending, deleting and packing are done with the writable "
        "database's config (its fftelemetry cron and fftelemetry pack), not from here."
    )
    assert "Check fftelemetry cron's output (where the writable database's config runs it: this " \
        "one is read-only (a replica), and cron does not run on it) and that its crontab line " \
        "runs." in " ".join(page.html.select_one("#overdue").get_text().split())


def set_generation(site, generation):
    """What another version's start does to the database this running app shares (over ZEO)."""
    with database(site.app.registry).transaction() as conn:
        conn.root()[ROOT_KEY].generation = generation


def test_a_submission_that_raises_does_not_hold_up_the_next_press(make_site):
    """A failure above is an outcome; this one is an exception out of the sender: another
    version evolves the database while the first batch is on its way, so marking it is refused
    (a 503). The press after that must not find the submission still running."""
    receiver = HeldStub()
    with serving(receiver) as url:
        site = make_site(**{"fftelemetry.telemetry_url": url})
        admin = site.register(ADMIN_EMAIL)
        form = admin.get(RECORDS).forms["submit-form"]
        pages = []
        first = threading.Thread(target=lambda: pages.append(form.submit(status=503)))
        first.start()
        try:
            assert receiver.arrived.wait(10), "the press posts its batch"
            set_generation(site, 2)
        finally:
            receiver.release.set()
        first.join(10)
        assert "Database of another version" in pages[0].text

        set_generation(site, 1)  # that version is gone again: this one may write
        pending = site.counts()["pending"]
        assert pending > 0  # sent, not marked: sent again
        assert f"Sent {pending} records" in flash(submit_now(admin))


# -- preview and export ---------------------------------------------------------------------------


def test_preview_is_the_next_batch_exactly(make_site):
    site = make_site(**{"fftelemetry.batch_size": "3"})
    admin = site.register("owner@example.org")  # 4 records: users.count and the wizard's 3
    site.seed(4, submitted=2)
    with site.store() as store:
        batch = [r.payload() for _, r in store.pending_batch(3)]
    res = admin.get(RECORDS + "/preview")
    assert res.content_type == "application/json"
    assert res.text == json.dumps(batch, separators=(",", ":"))
    assert len(res.json) == 3
    assert all(set(item) == {"id", "installation_id", "collected_at", "type", "key", "value"}
               for item in res.json)
    assert site.counts()["pending"] == 6  # looking changed nothing


def test_preview_leaves_out_what_this_version_may_not_send(make_site):
    site = make_site(**{"fftelemetry.batch_size": "2"})
    admin = site.register("owner@example.org")
    with site.store() as store:
        store.delete_all()
        store.add_feature("system.command.executed", "migrate")  # as an older version stored it
        kept = store.add_feature("system.users.count", 7)
    assert [item["id"] for item in admin.get(RECORDS + "/preview").json] == [kept.id]
    assert site.counts()["pending"] == 2


def test_export_has_every_record(site, admin):
    site.seed(1200, submitted=100)  # more than one chunk of the stream
    records = records_from_store(site)
    res = admin.get(RECORDS + "/export.json")
    assert res.content_type == "application/json"
    assert "attachment" in res.headers["Content-Disposition"]
    exported = res.json
    assert [item["id"] for item in exported] == [r.id for r in records]
    submitted = [item for item in exported if item["submitted_at"]]
    assert len(submitted) == 100
    assert {item["submission_uuid"] for item in submitted} == {"receiver-uuid-1"}
    pending = admin.get(RECORDS + "/export.json", {"show": "pending"}).json
    assert len(pending) == site.counts()["pending"]
    assert all(item["submitted_at"] is None for item in pending)


def test_export_of_nothing_is_an_empty_array(make_site):
    site = make_site(**{"fftelemetry.send_telemetry": "false"})
    admin = site.register("owner@example.org")
    assert admin.get(RECORDS + "/export.json").json == []


def test_where_you_are_and_what_went_wrong_are_told_to_screen_readers(site, admin):
    page = admin.get(RECORDS, {"show": "pending"})
    assert [a.text for a in page.html.select("[aria-current]")] == ["Records", "pending"]
    page = page.forms["delete-all-form"].submit(status=303).follow()  # the box not ticked
    [alert] = page.html.select("[role=alert] p")
    assert "Nothing deleted: tick the box" in alert.text
    assert page.html.select("[role=status] p") == []


def test_the_menu_marks_its_page_reached_with_a_trailing_slash(admin):
    """Links and redirects made by resource_url end in a slash: /admin's redirect, the
    submission log's link back, an action's redirect to the records page."""
    reached = [
        (admin.get("/admin").follow(), "Telemetry"),
        (admin.get(SUBMISSIONS).click("Back to the telemetry status"), "Telemetry"),
        (admin.get(RECORDS).forms["delete-all-form"].submit(status=303).follow(), "Records"),
    ]
    for page, name in reached:
        assert page.request.path.endswith("/")
        current = page.html.select("nav[aria-label=Main] [aria-current]")
        assert [(a.text, a["aria-current"]) for a in current] == [(name, "page")], page.request.path


def test_every_section_has_its_heading_inside(site, admin):
    """A section is headed by its own heading, inside it; a heading before it heads nothing.
    (The records page has sections; the status page, so far, only headings and their content.)"""
    for url in (STATUS, RECORDS):
        sections = admin.get(url).html.select("main section")
        assert [section.find().name for section in sections] == ["h2"] * len(sections), url
    assert sections, "the records page has its sections"


def test_a_table_box_that_scrolls_sideways_can_be_scrolled_with_the_keyboard(site, admin):
    """On a phone the wide tables scroll in their box (.scroll). A box with nothing focusable in
    it could be scrolled with a mouse or a finger only: each takes the focus itself, and is a
    region named by its heading, for a screen reader to say what got the focus."""
    with site.store() as store:
        store.log_submission(SubmissionResult(datetime(2026, 1, 5, tzinfo=UTC), 0, None, None,
                                              "cannot connect to http://x/submit"))
    for url, names in [(STATUS, ["Recent submissions", "What this version can collect"]),
                       (RECORDS, ["Telemetry records"])]:
        page = admin.get(url).html
        boxes = page.select(".scroll")
        assert [box.get("tabindex") for box in boxes] == ["0"] * len(names), url
        assert [box.get("role") for box in boxes] == ["region"] * len(names), url
        labels = [page.find(id=box["aria-labelledby"]) for box in boxes]
        assert [label.get_text(strip=True) for label in labels] == names, url
