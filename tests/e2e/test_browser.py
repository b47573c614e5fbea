"""A person in a real browser (Debian's headless Chromium, driven by Selenium through Debian's
chromedriver; never a downloaded browser): register the first account, finish the wizard, open
the telemetry pages, submit the records to the real receiver, delete what was submitted; and
every page on a 375 px phone, a long flash message on a 320 px one. Screenshots of each page
land in test-output/browser/."""

import shutil
from pathlib import Path

import pytest

from tests.conftest import serving

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
EMAIL, PASSWORD = "owner@example.org", "correct horse battery"


def chromium(phone_width=None):
    """Headless Chromium, at 1280 px wide or as a phone `phone_width` px wide (a window cannot
    be narrower than 500 px: a phone is emulated)."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "NO CHROMIUM HERE: the browser test did not run. "
            "Install Debian's chromium and chromium-driver (.ci/run does)."
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # see console_errors
    if phone_width:
        metrics = {"width": phone_width, "height": 800, "pixelRatio": 1}
        options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    return driver


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def phone():
    driver = chromium(phone_width=375)
    yield driver
    driver.quit()


def shoot(driver, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, max(1000, height + 100))
    assert driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def fill(driver, form_id, **fields):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    form = driver.find_element(By.ID, form_id)
    for name, value in fields.items():
        field = form.find_element(By.NAME, name)
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)
    return form


def press(driver, button):
    """Click a button that loads a new page, and wait until that page is there; returns what
    the page asked first, if it did (and says yes), else None."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old_page = driver.find_element("tag name", "html")
    button.click()
    asked = None
    if expected_conditions.alert_is_present()(driver):
        asked = driver.switch_to.alert.text
        driver.switch_to.alert.accept()  # the page asks before it deletes
    wait = WebDriverWait(driver, 10)
    wait.until(lambda _: gone(old_page))
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
    return asked


def gone(element):
    """Whether the element's document has been replaced. Chromium says so either as a stale
    element or, mid-navigation, as "Node with given id does not belong to the document"."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False


def submit(driver, form):
    return press(driver, form.find_element("css selector", "button[type=submit], button"))


def console_errors(driver):
    """What the page's console said at level SEVERE: a script error, a blocked resource, a
    violation of the Content-Security-Policy."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def text(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def test_an_administrator_in_a_browser(browser, make_app, receiver):
    from selenium.webdriver.common.by import By

    app = make_app(
        **{"fftelemetry.password_profile": "cheapest", "fftelemetry.telemetry_url": receiver.url}
    )
    with serving(app) as base:
        browser.get(f"{base}/register")
        submit(browser, fill(browser, "register", email=EMAIL, password=PASSWORD))
        assert "/welcome" in browser.current_url
        submit(browser, fill(browser, "preferences", language="nl", locale="nl_BE"))
        assert "you are all set" in text(browser)

        browser.get(f"{base}/admin/telemetry")
        page = text(browser)
        assert "enabled" in page.lower()
        assert "system.users.count" in page  # the catalog table
        shoot(browser, "01-status")

        press(browser, browser.find_element(By.PARTIAL_LINK_TEXT, "records"))
        assert browser.current_url.startswith(f"{base}/admin/telemetry/view")
        page = text(browser)
        assert "4 records collected: 4 pending, 0 submitted" in page
        for key in ("system.users.count", "user.preferences.language", "user.preferences.locale",
                    "config.default_language"):
            assert key in page
        assert "nl_BE" in page
        shoot(browser, "02-records-pending")

        submit(browser, browser.find_element(By.ID, "submit-form"))
        page = text(browser)
        assert "4 records collected: 0 pending, 4 submitted" in page
        batches = receiver.read(lambda root: list(root.batches.keys()))
        assert len(batches) == 1 and batches[0] in page  # the receiver's uuid, on every row
        assert page.count(batches[0]) == 1 + 4  # the flash message, then each row
        assert receiver.stats()["records"] == 4
        shoot(browser, "03-records-submitted")
        assert browser.execute_script(CUT_MID_WORD) == []

        form = browser.find_element(By.ID, "delete-submitted-form")
        form.find_element(By.NAME, "confirm").click()
        assert submit(browser, form) == "Delete the 4 submitted records?"
        page = text(browser)
        assert "0 records collected: 0 pending, 0 submitted" in page
        assert "4" in page and "deleted" in page.lower()
        shoot(browser, "04-after-delete-submitted")

        browser.get(f"{base}/admin/telemetry")
        assert receiver.read(lambda root: batches[0] in root.batches)
        note = browser.find_element(By.ID, "deleted-in-file").text
        assert note.startswith("still in the database file until the next fftelemetry pack")
        shoot(browser, "05-status-after")

        browser.get(f"{base}/admin/telemetry/submissions")
        page = text(browser)
        assert "1 submission kept" in page and batches[0] in page
        shoot(browser, "06-submissions")
        assert console_errors(browser) == []
    for name in ("01-status", "02-records-pending", "03-records-submitted", "06-submissions"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000


def test_every_page_fits_a_phone(phone, make_app, receiver):
    """375 px wide: nothing makes the page scroll sideways (a wide table scrolls in its box)."""
    app = make_app(**{"fftelemetry.password_profile": "cheapest"})
    with serving(app) as base:
        phone.get(f"{base}/register")
        submit(phone, fill(phone, "register", email=EMAIL, password=PASSWORD))
        submit(phone, fill(phone, "preferences", language="nl", locale="nl_BE"))
        for name, path in [
            ("home", "/"), ("preferences", "/preferences"), ("status", "/admin/telemetry"),
            ("records", "/admin/telemetry/view"), ("bad-query", "/admin/telemetry/view?show=x"),
            ("not-found", "/nothing"), ("about-telemetry", "/telemetry"),
            ("submissions", "/admin/telemetry/submissions"),
        ]:
            phone.get(base + path)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            assert phone.save_screenshot(str(SCREENSHOTS / f"phone-{name}.png"))
            width = phone.execute_script("return document.documentElement.scrollWidth")
            assert width <= 375, f"{path} is {width} px wide on a 375 px phone"
            assert phone.execute_script(KEYBOARD_CANNOT_SCROLL) == [], path
            assert phone.execute_script(CUT_MID_WORD) == [], path


def test_a_message_naming_a_long_address_fits_a_phone(make_app, closed_port_url):
    """320 px wide: a flash message with a word longer than the screen (a failure naming a
    TELEMETRY_URL whose path is 80 letters, no place to break a line) wraps inside its box; it
    widened the page, and the admin scrolled sideways to read why nothing was sent."""
    url = f"{closed_port_url}/{'abcdefghij' * 8}"  # /submit is added to it
    app = make_app(**{"fftelemetry.password_profile": "cheapest",
                      "fftelemetry.telemetry_url": url})
    phone = chromium(phone_width=320)
    try:
        with serving(app) as base:
            phone.get(f"{base}/register")
            submit(phone, fill(phone, "register", email=EMAIL, password=PASSWORD))
            phone.get(f"{base}/admin/telemetry/view")
            submit(phone, phone.find_element("id", "submit-form"))
            assert f"Nothing was sent: cannot connect to {url}" in text(phone)
            width = phone.execute_script("return document.documentElement.scrollWidth")
            assert width <= 320, f"the page is {width} px wide on a 320 px phone"
    finally:
        phone.quit()


# What scrolls sideways and cannot be reached with the keyboard: neither focusable itself nor
# holding anything focusable (axe-core's rule "scrollable-region-focusable", WCAG 2.1.1).
KEYBOARD_CANNOT_SCROLL = """
var focusable = "a[href], button, input, select, textarea, summary, [tabindex]";
return Array.from(document.querySelectorAll("body *")).filter(function (el) {
  var overflow = getComputedStyle(el).overflowX;
  return (overflow === "auto" || overflow === "scroll") && el.scrollWidth > el.clientWidth
    && !(el.tabIndex >= 0 && el.matches(focusable)) && !el.querySelector(focusable);
}).map(function (el) { return el.outerHTML.slice(0, 80); });
"""


# Keys and record types broken over two lines ("featur|e", "config.default_langu|age"): text
# on more than one line has more than one box. Returns the text of each, and fails if a page
# that should have keys has none to check.
CUT_MID_WORD = """
var words = document.querySelectorAll("table.catalog code, table.records code.key, td.type");
if (document.querySelector("table.records, table.catalog") && !words.length) return ["none"];
return Array.from(words).filter(function (el) {
  var range = document.createRange();
  range.selectNodeContents(el);
  return range.getClientRects().length > 1;
}).map(function (el) { return el.textContent; });
"""
