"""Accounts in the browser: register, log in and out, the wizard, preferences, and the security
around them (CSRF on every POST, sessions, who may see the admin area)."""

import cProfile
import pstats
import re
import threading
import time

import argon2
import babel
import pytest
import requests
import webtest
from pyramid_zodbconn import ZODBConnectionOpened
from webob.cookies import JSONSerializer, SignedSerializer

from fftelemetry.resources.users import User
from fftelemetry.security import SESSION_HASHALG, SESSION_KEY, SIGNED_IN_AT
from tests.conftest import SECRET, serving
from tests.functional.conftest import ADMIN_EMAIL, PASSWORD, USER_EMAIL, Site, finish_wizard
from tests.unit.test_users import CHEAP, UNDELIVERABLE


def log_in(browser, email, password=PASSWORD, came_from=None):
    url = "/login" if came_from is None else f"/login?came_from={came_from}"
    form = browser.get(url).forms["login"]
    form["email"], form["password"] = email, password
    return form.submit(status="*")


def test_first_account_is_the_admin_and_later_ones_are_not(site, admin, member):
    with site.root() as root:
        users = root["users"]
        assert len(users) == 2
        assert users[ADMIN_EMAIL].is_admin
        assert not users[USER_EMAIL].is_admin
        assert users[ADMIN_EMAIL].password_hash.startswith("$argon2id$")
        assert PASSWORD not in users[ADMIN_EMAIL].password_hash
    assert "(admin)" in admin.get("/").text
    assert "(admin)" not in member.get("/").text


def test_email_is_normalised_so_case_does_not_make_a_second_account(site, admin):
    browser = site.browser()
    form = browser.get("/register").forms["register"]
    form["email"], form["password"] = "  Owner@Example.ORG ", PASSWORD
    page = form.submit(status=400)
    assert "exists already" in page.text
    assert log_in(site.browser(), "OWNER@example.org").status_int == 303


def test_an_email_in_another_unicode_form_is_the_same_account(site):
    composed, decomposed = "jos\u00e9@example.org", "jose\u0301@example.org"  # NFC, NFD
    site.register(composed)
    browser = site.browser()
    form = browser.get("/register").forms["register"]
    form["email"], form["password"] = decomposed.upper(), PASSWORD
    assert "exists already" in form.submit(status=400).text
    for email in (decomposed, decomposed.upper(), composed.upper()):
        assert log_in(site.browser(), email).status_int == 303, email
    with site.root() as root:
        assert list(root["users"].data) == [composed]


def test_the_longest_address_signs_in_and_a_longer_one_is_refused(site):
    # 254 UTF-8 octets at most, however many characters: the session cookie holds the address
    # (twice, with the welcome), and a cookie Pyramid finds too long is a bare 500 at sign-in.
    longest = "\U0001f600" * 61 + "abc@ex.org"  # 61 characters of 4 octets, and 10
    assert len(longest.encode()) == 254
    browser = site.register(longest)
    assert longest in browser.get("/preferences").text
    assert log_in(site.browser(), longest).status_int == 303
    form = site.browser().get("/register").forms["register"]
    form["email"], form["password"] = "\U0001f600" * 247 + "@ex.org", PASSWORD
    assert "valid email address" in form.submit(status=400).text
    with site.root() as root:
        assert list(root["users"].data) == [longest]


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", PASSWORD, "valid email address"),
        ("a@b.example", "short", "at least 8 characters"),
        ("a/b@c.example", PASSWORD, "valid email address"),
        # characters nobody types, and invisible ones that make an address look like another
        ("own\x00er@example.org", PASSWORD, "valid email address"),
        ("own\x7fer@example.org", PASSWORD, "valid email address"),
        ("own\u200ber@example.org", PASSWORD, "valid email address"),  # zero-width space
        ("owner@\u202egro.elpmaxe.org", PASSWORD, "valid email address"),  # right-to-left override
    ],
)
def test_registration_refuses_bad_input_and_stores_nothing(site, email, password, message):
    browser = site.browser()
    form = browser.get("/register").forms["register"]
    form["email"], form["password"] = email, password
    page = form.submit(status=400)
    assert message in page.text
    with site.root() as root:
        assert len(root["users"]) == 0
    assert "Log out" not in page.text


def fields_tied_to_the_error(page):
    """The names of the fields that the page's error describes (aria-describedby, and marked
    aria-invalid), and the error's text."""
    error = page.html.select_one("#form-error")
    tied = [field["name"] for field in page.html.select("[aria-describedby~=form-error]")
            if field.get("aria-invalid") == "true"]
    return tied, error.get_text() if error else None


@pytest.mark.parametrize(
    ("email", "password", "field", "message"),
    [
        ("not-an-email", PASSWORD, "email", "Please enter a valid email address."),
        (ADMIN_EMAIL, PASSWORD, "email", "An account with this email address exists already."),
        ("a@b.example", "short", "password", "The password must have at least 8 characters."),
    ],
)
def test_a_refused_registration_ties_its_error_to_the_field_and_focuses_it(
    site, admin, email, password, field, message
):
    # a screen reader read the error once, as the page came, and nothing with the field
    form = site.browser().get("/register").forms["register"]
    form["email"], form["password"] = email, password
    page = form.submit(status=400)
    assert fields_tied_to_the_error(page) == ([field], message)
    assert [f["name"] for f in page.html.select("#register [autofocus]")] == [field]


def test_a_refused_login_ties_its_error_to_both_fields(site, admin):
    page = log_in(site.browser(), ADMIN_EMAIL, "wrong password")
    assert fields_tied_to_the_error(page) == (
        ["email", "password"], "Wrong email address or password."
    )
    assert fields_tied_to_the_error(site.browser().get("/login")) == ([], None)


@pytest.mark.parametrize("email", UNDELIVERABLE)
def test_an_address_no_mail_system_takes_is_refused_but_an_account_made_with_it_signs_in(
    site, email
):
    # an account registered before such addresses were refused: only registration checks them
    form = site.browser().get("/register").forms["register"]
    form["email"], form["password"] = email, PASSWORD
    assert "Please enter a valid email address." in form.submit(status=400).text
    with site.root() as root:
        assert len(root["users"]) == 0
        root["users"].add(email, User(email, CHEAP.hash(PASSWORD)))
    browser = site.browser()
    assert log_in(browser, email).status_int == 303
    assert email in browser.get("/welcome").text


def test_closed_registration_still_lets_the_first_user_in(make_site):
    site = make_site(**{"fftelemetry.allow_registration": "false"})
    site.register(ADMIN_EMAIL)
    browser = site.browser()
    page = browser.get("/register", status=403)
    assert "Registration is closed" in page.text
    assert "register" not in page.forms
    # A hand-made POST (with a valid token from another page) is refused as well.
    token = browser.get("/login").forms["login"]["csrf_token"].value
    browser.post("/register", {"email": USER_EMAIL, "password": PASSWORD, "csrf_token": token},
                 status=403)
    with site.root() as root:
        assert list(root["users"].data) == [ADMIN_EMAIL]


def register_links(page):
    return [a for a in page.html.select("a") if a.get("href", "").endswith("/register")]


def test_closed_registration_is_not_offered_once_there_is_an_administrator(make_site):
    site = make_site(**{"fftelemetry.allow_registration": "false"})
    assert register_links(site.browser().get("/")), "the first user needs the way in"
    site.register(ADMIN_EMAIL)
    for url in ("/", "/login"):
        assert register_links(site.browser().get(url)) == [], url


def test_open_registration_is_offered_on_every_page(site, admin):
    for url in ("/", "/login"):
        assert register_links(site.browser().get(url)), url


def test_the_menu_marks_log_in_and_register_on_their_own_pages(site):
    for path, name in (("/login", "Log in"), ("/register", "Register")):
        current = site.browser().get(path).html.select("[aria-current]")
        assert [(a.text, a["aria-current"]) for a in current] == [(name, "page")], path


def test_login_wrong_password_or_unknown_email(site, admin):
    for email, password in ((ADMIN_EMAIL, "wrong password"), ("nobody@example.org", PASSWORD)):
        browser = site.browser()
        page = log_in(browser, email, password)
        assert page.status_int == 400
        assert "Wrong email address or password." in page.text
        browser.get("/preferences", status=303)  # still anonymous


def test_an_unknown_email_costs_the_argon2_work_of_a_wrong_password(site, admin, monkeypatch):
    """No probing for accounts by the time a login takes: an email no account has gets one
    argon2 hash computed, as a wrong password gets its check (the work counted, not timed)."""
    work = []
    for name in ("hash", "verify"):  # argon2's own methods, counted as they are called
        done = getattr(argon2.PasswordHasher, name)
        monkeypatch.setattr(argon2.PasswordHasher, name,
                            lambda *args, _name=name, _do=done: work.append(_name) or _do(*args))
    log_in(site.browser(), "nobody@example.org", "wrong password")
    unknown, work[:] = list(work), []
    log_in(site.browser(), ADMIN_EMAIL, "wrong password")
    assert (unknown, work) == (["hash"], ["verify"])


def test_anonymous_admin_page_goes_to_login_and_back(site, admin):
    browser = site.browser()
    res = browser.get("/admin/telemetry", status=303)
    assert res.location.startswith("http://localhost/login?came_from=")
    form = res.follow().forms["login"]
    form["email"], form["password"] = ADMIN_EMAIL, PASSWORD
    back = form.submit(status=303)
    assert back.location == "http://localhost/admin/telemetry"
    assert "Telemetry is" in back.follow(status=200).text


def test_login_never_redirects_to_another_site(site, admin):
    res = log_in(site.browser(), ADMIN_EMAIL, came_from="http://evil.example/steal")
    assert res.location == "http://localhost/"
    res = log_in(site.browser(), ADMIN_EMAIL, came_from="//evil.example/steal")
    assert res.location == "http://localhost/"
    res = log_in(site.browser(), ADMIN_EMAIL, came_from="/\\evil.example/steal")
    assert res.location == "http://localhost/"
    res = log_in(site.browser(), ADMIN_EMAIL, came_from="/%0d%0aSet-Cookie:%20x=1")
    assert res.location == "http://localhost/" and "x=1" not in res.headers.get("Set-Cookie")
    res = log_in(site.browser(), ADMIN_EMAIL, came_from="/%E6%97%A5%E6%9C%AC")  # /日本
    assert res.location == "http://localhost/"
    # the same sent in the form itself, not through the login page's address
    for came_from in ("/日本", "/\r\nSet-Cookie: x=1", "//evil.example/steal"):
        browser = site.browser()
        token = browser.get("/login").forms["login"]["csrf_token"].value
        res = browser.post("/login", {"email": ADMIN_EMAIL, "password": PASSWORD,
                                      "csrf_token": token, "came_from": came_from}, status=303)
        assert res.location == "http://localhost/"


# RFC 3986's characters of a URI reference, its "#" once: a Location header holds no others raw
URI_CHARACTER = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})"
URI_REFERENCE = re.compile(f"{URI_CHARACTER}*(?:#{URI_CHARACTER}*)?")


@pytest.mark.parametrize(
    ("came_from", "location"),
    [
        ("/%20/evil", "http://localhost/%20/evil"),  # a raw space: "/ /evil"
        ("http://localhost/%5Cevil", "http://localhost/%5Cevil"),  # a backslash past the host
        ("/%22%3C%3E%5E%60%7B%7C%7D%5B%5D", "http://localhost/%22%3C%3E%5E%60%7B%7C%7D%5B%5D"),
        ("/%25zz", "http://localhost/%25zz"),  # a "%" that starts no escape
        ("/view%3Fa%3Db%20c%23d%23e", "http://localhost/view?a=b%20c#d%23e"),  # a second "#"
        ("/a%2520b", "http://localhost/a%20b"),  # what is escaped already stays as it is
        ("/%09/evil", "http://localhost/"),  # a tab, a DEL, non-ASCII: home, as before
        ("/%7F/evil", "http://localhost/"),
        ("/%C3%A9", "http://localhost/"),
        ("/%5Cevil.example", "http://localhost/"),  # "/\\": "//" to a browser
        ("/" + "%20" * 200, "http://localhost/"),  # past 500 characters once escaped
    ],
)
def test_a_came_from_a_uri_may_not_hold_raw_is_escaped_in_the_location(site, admin, came_from,
                                                                         location):
    """The address after signing in is the Location header, which holds a URI reference: "/ /"
    was one with a raw space (on this site still, but not a URI)."""
    res = log_in(site.browser(), ADMIN_EMAIL, came_from=came_from)
    assert res.status_int == 303 and res.headers["Location"] == location
    assert URI_REFERENCE.fullmatch(location)


def test_a_came_from_whose_dot_segments_leave_the_app_goes_home(site, admin):
    """Under a path prefix, "/../x" was http://localhost/app/../x: inside the app by its text,
    http://localhost/x once a browser removed the dot segments."""
    res = log_in(browser_at(site, "127.0.0.1", SCRIPT_NAME="/app"), ADMIN_EMAIL, came_from="/../x")
    assert res.headers["Location"] == "http://localhost/app/"
    res = log_in(browser_at(site, "127.0.0.1", SCRIPT_NAME="/app"), ADMIN_EMAIL,
                 came_from="/x/../y")
    assert res.headers["Location"] == "http://localhost/app/y"



@pytest.mark.parametrize(
    ("came_from", "location"),
    [
        ("/%252e%252e/x", "http://localhost/app/"),  # "%2e%2e": ".." to a browser
        ("/%252E./x", "http://localhost/app/"),
        ("/.%252e", "http://localhost/app/"),
        ("/x/%252e%252e/y", "http://localhost/app/y"),  # inside the app still
        ("/x?a=%252e%252e", "http://localhost/app/x?a=.."),  # the same query, to the app
        ("/x/%25252e%25252e/y", "http://localhost/app/x/%252e%252e/y"),  # "%2e" as text
    ],
)
def test_a_came_from_whose_encoded_dot_segments_leave_the_app_goes_home(site, admin, came_from,
                                                                         location):
    """A browser takes "%2e" for "." in a dot segment (the URL Standard), which urllib3 leaves
    as it is: "/app/%2e%2e/x" was inside the app by its text, http://localhost/x to a browser."""
    res = log_in(browser_at(site, "127.0.0.1", SCRIPT_NAME="/app"), ADMIN_EMAIL,
                 came_from=came_from)
    assert res.headers["Location"] == location

def test_a_came_from_too_long_for_a_location_header_goes_home(site, admin):
    """A came_from of 100 KB was a Location header of 100 KB after signing in (three times
    that escaped, to the wizard), which a front proxy answers with a 502."""
    # README's limit, written out: the module's constant, read here, moved the test with it
    longest = "/" + "x" * (500 - len("http://localhost/"))  # host included
    assert log_in(site.browser(), ADMIN_EMAIL, came_from=longest).location.endswith(longest)
    for too_long in (longest + "x", "/" + "x" * 100_000):
        res = log_in(site.browser(), ADMIN_EMAIL, came_from=too_long)
        assert res.location == "http://localhost/"
    site.register(USER_EMAIL, wizard=None)
    res = log_in(site.browser(), USER_EMAIL, came_from="/" + "x" * 100_000)
    assert res.location == "http://localhost/welcome?came_from=http%3A%2F%2Flocalhost%2F"
    # nor does the address of a page that asks to sign in first become one that long
    res = site.browser().get("/admin/telemetry?show=" + "x" * 100_000, status=303)
    assert res.location == "http://localhost/login?came_from=http%3A%2F%2Flocalhost%2F"


def test_admin_opens_the_telemetry_section(admin, anonymous):
    assert admin.get("/admin", status=303).location == "http://localhost/admin/telemetry/"
    assert "/login?came_from=" in anonymous.get("/admin", status=303).location


def test_non_admin_gets_403_on_every_admin_page(member):
    for url in ("/admin", "/admin/telemetry", "/admin/telemetry/view",
                "/admin/telemetry/view/preview", "/admin/telemetry/view/export.json",
                "/admin/telemetry/submissions"):
        page = member.get(url, status=403)
        assert page.html.h1.text == "Not allowed", url
        assert "This page is for administrators of this installation." in page.text


def test_login_without_csrf_token_is_refused(site, admin):
    browser = site.browser()
    page = browser.post("/login", {"email": ADMIN_EMAIL, "password": PASSWORD}, status=400)
    assert "The form has expired" in page.text
    browser.get("/preferences", status=303)


def test_register_without_csrf_token_creates_nothing(site):
    site.browser().post("/register", {"email": ADMIN_EMAIL, "password": PASSWORD}, status=400)
    with site.root() as root:
        assert len(root["users"]) == 0


def multipart(**fields):
    return "".join(
        f'--b\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ) + "--b--\r\n"


NOT_UTF8 = "the form is not valid UTF-8"


@pytest.mark.parametrize(
    ("content_type", "email", "reason"),
    [
        # WebOb raised an exception of its own for another charset: a 500 and a traceback
        ("application/x-www-form-urlencoded; charset=latin-1", "jos%E9@example.org",
         "the form is not sent as UTF-8"),
        # and read bytes that are not UTF-8 as U+FFFD: an account nobody typed
        ("application/x-www-form-urlencoded", "jos%E9@example.org", NOT_UTF8),
        ("application/x-www-form-urlencoded", "%ED%A0%80@example.org", NOT_UTF8),  # a surrogate
        ("multipart/form-data; boundary=b", "jos\xe9@example.org", NOT_UTF8),
        # a POST without a Content-Type: WebOb parses its body as a form all the same
        (None, "jos%E9@example.org", NOT_UTF8),
    ],
)
def test_a_form_that_is_not_utf8_is_a_400_and_creates_nothing(site, caplog, content_type, email,
                                                              reason):
    browser = site.browser()
    fields = {
        "email": email,
        "password": PASSWORD,
        "csrf_token": browser.get("/register").forms["register"]["csrf_token"].value,
    }
    if content_type and content_type.startswith("multipart"):
        body = multipart(**fields)
    else:
        body = "&".join(f"{name}={value}" for name, value in fields.items())
    page = browser.request("/register", method="POST", body=body.encode("latin-1"),
                           content_type=content_type, status=400)
    assert f"Nothing was changed: {reason}." in page.text
    with site.root() as root:
        assert len(root["users"]) == 0
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


@pytest.mark.parametrize("content_type", [None, "text/plain; charset=latin-1"])
def test_a_body_that_is_no_form_is_not_read_as_one(site, caplog, content_type):
    # Only a form is checked for UTF-8: a page asked for with some other body still answers
    page = site.browser().request("/login", method="GET", body=b"jos\xe9",
                                  content_type=content_type, status=200)
    assert "Log in" in page.text
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary="])
def test_a_multipart_form_without_a_boundary_is_a_400(site, caplog, content_type):
    browser = site.browser()
    token = browser.get("/register").forms["register"]["csrf_token"].value
    body = multipart(email="jose@example.org", password=PASSWORD, csrf_token=token)
    page = browser.request("/register", method="POST", body=body.encode(),
                           content_type=content_type, status=400)  # WebOb's ValueError: a 500
    assert "Nothing was changed: the form cannot be read." in page.text
    with site.root() as root:
        assert len(root["users"]) == 0
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


def test_a_file_sent_in_a_form_is_a_400(site, caplog):
    # No form here takes a file; WebOb hands a view a FieldStorage for one: a 500 and a traceback
    browser = site.browser()
    token = browser.get("/register").forms["register"]["csrf_token"].value
    body = multipart(password=PASSWORD, csrf_token=token).replace(
        "--b--", '--b\r\nContent-Disposition: form-data; name="email"; filename="x"\r\n\r\n'
        "jose@example.org\r\n--b--"
    )
    page = browser.request("/register", method="POST", body=body.encode(),
                           content_type="multipart/form-data; boundary=b", status=400)
    assert "Nothing was changed: the form cannot be read." in page.text
    with site.root() as root:
        assert len(root["users"]) == 0
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


def test_a_multipart_form_in_utf8_is_taken(site):
    browser = site.browser()
    token = browser.get("/register").forms["register"]["csrf_token"].value
    # A multipart value is not %-encoded: a password with "%E9" in it is taken as typed
    password = f"{PASSWORD} 100%E9+"
    body = multipart(email="josé@example.org", password=password, csrf_token=token)
    browser.request("/register", method="POST", body=body.encode(),
                    content_type="multipart/form-data; boundary=b", status=303)
    with site.root() as root:
        assert list(root["users"].data) == ["josé@example.org"]
    assert log_in(site.browser(), "josé@example.org", password).status_int == 303


def test_logout_is_a_post_and_get_changes_nothing(site, admin):
    page = admin.get("/logout", status=405)
    assert "Use the button" in page.text
    assert page.headers["Allow"] == "POST"
    admin.get("/preferences", status=200)  # still signed in
    home = admin.get("/")
    out = home.forms["logout"].submit(status=303).follow()
    assert "You are logged out." in out.text
    admin.get("/preferences", status=303)


def test_logout_starts_a_new_session_with_a_new_csrf_token(site, admin):
    """Nothing of the signed-in session outlives the log-out in this browser: its CSRF token,
    which the next person at it would otherwise post with, is not the one of the log-out's page."""
    home = admin.get("/")
    before = home.forms["logout"]["csrf_token"].value
    home.forms["logout"].submit(status=303)
    after = admin.get("/login").forms["login"]["csrf_token"].value
    assert after != before


def copy_of(site, browser):
    """Another browser holding the same session cookie, as someone who copied it would."""
    other = site.browser()
    for name, value in browser.cookies.items():
        other.set_cookie(name, value)
    return other


def log_out(browser):
    browser.get("/").forms["logout"].submit(status=303)


def test_logout_ends_a_copied_session_cookie(site, admin):
    copy = copy_of(site, admin)
    copy.get("/admin/telemetry", status=200)
    log_out(admin)
    assert "/login?came_from=" in copy.get("/admin/telemetry", status=303).location
    copy.get("/preferences", status=303)
    log_in(admin, ADMIN_EMAIL)
    admin.get("/admin/telemetry", status=200)
    copy.get("/admin/telemetry", status=303)  # a new sign-in does not bring the old one back


def test_logout_signs_the_account_out_everywhere_and_no_one_else(site, admin, member):
    laptop = site.browser()
    log_in(laptop, ADMIN_EMAIL)
    laptop.get("/admin/telemetry", status=200)
    log_out(admin)
    login = laptop.get("/admin/telemetry", status=303).follow()
    assert f"Your sign-in as {ADMIN_EMAIL} has ended" in login.text
    assert "has ended" not in admin.get("/login").text  # logged out here: nothing to explain
    assert "has ended" not in site.browser().get("/login").text
    member.get("/preferences", status=200)


def session_cookie(state, hashalg=SESSION_HASHALG, idle_seconds=0):
    """A session cookie holding `state`, signed as the application signs them (Pyramid's
    SignedCookieSessionFactory format: signed JSON of renewed, created, state), last used
    `idle_seconds` ago."""
    signer = SignedSerializer(SECRET, "fftelemetry.session.", hashalg, JSONSerializer())
    now = time.time()
    return signer.dumps((now - idle_seconds, now - idle_seconds, state)).decode()


def earlier_versions_session_cookie(email):
    """The session cookie an earlier version gave at sign-in: the email only, no session key."""
    return session_cookie({"userid": email})


def test_an_account_stored_without_a_session_key_is_signed_in_by_no_old_cookie(site, admin):
    with site.root() as root:
        del root["users"][ADMIN_EMAIL].session_key  # as a development version stored it
    old = site.browser()
    old.set_cookie("session", earlier_versions_session_cookie(ADMIN_EMAIL))
    assert "/login?came_from=" in old.get("/admin/telemetry", status=303).location
    admin.get("/admin/telemetry", status=303)
    log_in(admin, ADMIN_EMAIL)  # the next sign-in gives the account a key
    admin.get("/admin/telemetry", status=200)
    old.get("/admin/telemetry", status=303)
    with site.root() as root:
        assert root["users"][ADMIN_EMAIL].session_key is not None


def signed_in_hours_ago(site, email, hours, idle_seconds=0):
    """A browser whose session signed `email` in `hours` ago, and was last used `idle_seconds`
    ago (busy until now, by default)."""
    with site.root() as root:
        key = root["users"][email].session_key
    browser = site.browser()
    signed_in_at = int(time.time() - hours * 3600)
    state = {"userid": email, SESSION_KEY: key, SIGNED_IN_AT: signed_in_at}
    browser.set_cookie("session", session_cookie(state, idle_seconds=idle_seconds))
    return browser


@pytest.fixture
def stopped_clock(monkeypatch):
    """The wall clock (time.time) stopped at a whole second, for the cookies these tests make
    and the app that reads them alike: an age to the second is then the age the app sees, not
    one a slow machine adds to between the two."""
    now = float(int(time.time()))
    monkeypatch.setattr(time, "time", lambda: now)


def test_a_sign_in_lasts_a_week_however_busy_its_session(site, admin):
    signed_in_hours_ago(site, ADMIN_EMAIL, 167).get("/admin/telemetry", status=200)
    week_old = signed_in_hours_ago(site, ADMIN_EMAIL, 169)
    login = week_old.get("/admin/telemetry", status=303).follow()
    assert f"Your sign-in as {ADMIN_EMAIL} has ended" in login.text
    assert login.forms["login"]["email"].value == ADMIN_EMAIL
    log_in(week_old, ADMIN_EMAIL)
    week_old.get("/admin/telemetry", status=200)


def test_a_sign_in_ends_at_its_lifetime_to_the_second(site, admin, stopped_clock):
    # an hour counted a second long or short would be ~3 minutes off over the week
    signed_in_hours_ago(site, ADMIN_EMAIL, 168).get("/admin/telemetry", status=200)
    signed_in_hours_ago(site, ADMIN_EMAIL, 168 + 1 / 3600).get("/admin/telemetry", status=303)


def test_a_session_unused_for_eight_hours_ends(site, admin, stopped_clock):
    eight_hours = 8 * 3600
    signed_in_hours_ago(site, ADMIN_EMAIL, 8, idle_seconds=eight_hours).get(
        "/admin/telemetry", status=200
    )
    signed_in_hours_ago(site, ADMIN_EMAIL, 8, idle_seconds=eight_hours + 1).get(
        "/admin/telemetry", status=303
    )


def test_a_sign_in_that_has_not_ended_is_not_said_to_have(site, admin):
    # the login page of a browser still signed in (another account's login, say)
    page = admin.get("/login", status=200)
    assert "has ended" not in page.text
    assert page.forms["login"]["email"].value == ""


def test_a_sign_in_time_ahead_of_the_clock_is_allowed_a_few_minutes(site, admin):
    signed_in_hours_ago(site, ADMIN_EMAIL, -0.05).get("/admin/telemetry", status=200)  # 3 min
    signed_in_hours_ago(site, ADMIN_EMAIL, -1).get("/admin/telemetry", status=303)


def test_the_sign_in_lifetime_is_a_setting(make_site):
    site = make_site(**{"fftelemetry.session_lifetime_hours": "2"})
    site.register(ADMIN_EMAIL)
    signed_in_hours_ago(site, ADMIN_EMAIL, 1).get("/admin/telemetry", status=200)
    signed_in_hours_ago(site, ADMIN_EMAIL, 3).get("/admin/telemetry", status=303)


def test_a_session_that_kept_no_sign_in_time_signs_in_again(site, admin):
    with site.root() as root:
        key = root["users"][ADMIN_EMAIL].session_key
    old = site.browser()
    old.set_cookie(
        "session", session_cookie({"userid": ADMIN_EMAIL, SESSION_KEY: key})
    )
    old.get("/admin/telemetry", status=303)
    admin.get("/admin/telemetry", status=200)


def with_session_key(site, email, key):
    """A browser whose session, signed in just now, holds `key` as its session key."""
    state = {"userid": email, SESSION_KEY: key, SIGNED_IN_AT: int(time.time())}
    browser = site.browser()
    browser.set_cookie("session", session_cookie(state))
    return browser


# Values of the session key that no sign-in wrote, made from the account's key
ODD_SESSION_KEYS = {
    "none": lambda key: None,
    "a number": lambda key: 12345,
    "true": lambda key: True,
    "the key in a list": lambda key: [key],
    "the key as an object's name": lambda key: {key: 1},
    "empty": lambda key: "",
    "one character short": lambda key: key[:-1],
    "a non-ASCII character after it": lambda key: key + "\u00e9",
    "a non-ASCII character in its last place": lambda key: key[:-1] + "\u00e9",
    "a lone surrogate in its last place": lambda key: key[:-1] + "\udcff",
}


@pytest.mark.parametrize("odd", ODD_SESSION_KEYS.values(), ids=ODD_SESSION_KEYS.keys())
def test_a_session_key_of_another_shape_fails_closed(site, admin, odd):
    """The key is compared in constant time (hmac.compare_digest, which takes a str of ASCII
    only): a value no sign-in wrote, in a cookie signed all the same (an older version's, a
    bug's), signs nobody in and is no error page."""
    with site.root() as root:
        key = root["users"][ADMIN_EMAIL].session_key
    with_session_key(site, ADMIN_EMAIL, key).get("/admin/telemetry", status=200)
    browser = with_session_key(site, ADMIN_EMAIL, odd(key))
    assert "/login?came_from=" in browser.get("/admin/telemetry", status=303).location
    browser.get("/preferences", status=303)


def test_a_cookie_signed_as_before_0_1_0_signs_in_again_once(site, admin):
    """Until 0.1.0 the cookie was signed with SHA-512 and kept its names long: such a cookie,
    valid then, is dropped (its user signs in again), not an error."""
    with site.root() as root:
        key = root["users"][ADMIN_EMAIL].session_key
    state = {"auth.userid": ADMIN_EMAIL, "account.session_key": key,
             "account.signed_in_at": int(time.time())}
    old = site.browser()
    old.set_cookie("session", session_cookie(state, hashalg="sha512"))
    assert "/login?came_from=" in old.get("/admin/telemetry", status=303).location
    log_in(old, ADMIN_EMAIL)
    old.get("/admin/telemetry", status=200)


def test_a_signed_in_session_cookie_is_short(admin):
    """Every request sends it and WebOb's parse of it costs ~800 instructions a character: a
    32-byte HMAC and short names (the email, the session key, the CSRF token and three times)."""
    page = admin.get("/admin/telemetry")
    token = page.forms["logout"]["csrf_token"].value
    assert len(token) == 32
    cookie = admin.cookies["session"]
    assert len(cookie) < 300, cookie  # 367 characters before, for this email


def test_logout_without_token_does_nothing(admin):
    admin.post("/logout", status=400)
    admin.get("/preferences", status=200)


def test_a_login_starts_a_new_csrf_token(site, admin):
    browser = site.browser()
    before = browser.get("/login").forms["login"]["csrf_token"].value
    log_in(browser, ADMIN_EMAIL)
    after = browser.get("/preferences").forms["preferences"]["csrf_token"].value
    assert before != after


def test_a_sign_in_starts_a_session_that_holds_nothing_of_the_one_before(site, admin, member):
    """A message left unread for the account signed in before (its action's page in another
    tab, not followed) is not shown to the account signed in next in this browser."""
    login = admin.get("/login").forms["login"]  # opened first, in a tab of its own
    admin.get("/admin/telemetry/view").forms["delete-all-form"].submit(status=303)
    login["email"], login["password"] = USER_EMAIL, PASSWORD
    home = login.submit(status=303).follow()
    assert USER_EMAIL in home.text  # signed in
    assert "Nothing deleted" not in home.text
    # the control: unread, the admin's own next page shows it
    again = site.browser()
    log_in(again, ADMIN_EMAIL)
    again.get("/admin/telemetry/view").forms["delete-all-form"].submit(status=303)
    assert "Nothing deleted: tick the box" in again.get("/").text


def test_session_cookie_is_httponly_and_samesite(site):
    res = site.browser().get("/login")
    cookie = res.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "secure" not in cookie.lower()  # development serves plain HTTP
    assert cookie.startswith("session=")  # not __Host-, which a browser keeps only Secure


def test_an_https_form_from_another_site_is_refused_with_its_own_page(make_site):
    site = make_site()
    https = {"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"}
    browser = webtest.TestApp(site.app, extra_environ=https)
    form = browser.get("/register").forms["register"]
    form["email"], form["password"] = ADMIN_EMAIL, PASSWORD
    page = form.submit(headers={"Origin": "https://evil.example"}, status=400)
    assert "The form came from another site" in page.text and "Nothing was changed" in page.text
    assert "as X-Forwarded-Host and X-Forwarded-Port" in page.text  # a proxy's usual omission
    with site.root() as root:
        assert len(root["users"]) == 0


HTTPS = {"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"}


def https_admin(site):
    """A browser over HTTPS signed in as the administrator, who registers with it."""
    browser = webtest.TestApp(site.app, extra_environ=HTTPS)
    page = browser.get("/register")
    form = page.forms["register"]
    form["email"], form["password"] = ADMIN_EMAIL, PASSWORD
    signed_in = form.submit(headers={"Origin": "https://localhost"}, status=303)
    return browser, page.headers["Set-Cookie"], signed_in.headers["Set-Cookie"]


def test_session_cookie_is_secure_and_bound_to_the_host_when_configured(make_site):
    """__Host-: a browser keeps it only Secure, for Path=/ and no Domain, so no sibling site
    under the same domain can set a cookie that shadows it."""
    site = make_site(**{"fftelemetry.secure_cookies": "true"})
    browser, first, signed_in = https_admin(site)
    for cookie in first, signed_in:
        assert cookie.startswith("__Host-session=")
        assert "; secure" in cookie.lower() and "; Path=/;" in cookie
        assert "domain" not in cookie.lower()
    browser.get("/welcome", status=200)
    assert list(browser.cookies) == ["__Host-session"]


def test_a_cookie_of_the_other_name_signs_nobody_in(make_site):
    """Turning fftelemetry.secure_cookies on or off renames the cookie: its sessions end."""
    site = make_site(**{"fftelemetry.secure_cookies": "true"})
    admin, _, _ = https_admin(site)
    renamed = webtest.TestApp(site.app, extra_environ=HTTPS)
    renamed.set_cookie("session", admin.cookies["__Host-session"])
    renamed.get("/welcome", status=303)
    admin.get("/welcome", status=200)


def test_a_session_cookie_sent_over_https_is_secure_without_the_setting(make_site):
    """An ini that leaves secure_cookies out (a copy of development.ini behind a TLS proxy): the
    cookie, the sign-in's too, went without Secure, so the browser's first http:// request (the
    one the proxy redirects) sent it in the clear."""
    site = make_site()
    site.register(ADMIN_EMAIL)
    https = {"wsgi.url_scheme": "https", "HTTP_HOST": "localhost"}
    browser = webtest.TestApp(site.app, extra_environ=https)
    page = browser.get("/login")
    assert "; secure" in page.headers["Set-Cookie"].lower()
    # its name as over HTTP: a browser that holds it keeps plain HTTP from replacing it
    assert page.headers["Set-Cookie"].startswith("session=")
    form = page.forms["login"]
    form["email"], form["password"] = ADMIN_EMAIL, PASSWORD
    signed_in = form.submit(headers={"Origin": "https://localhost"}, status=303)
    assert "; secure" in signed_in.headers["Set-Cookie"].lower()
    browser.get("/admin/telemetry", status=200)


def test_a_secure_cookie_over_plain_http_is_named_as_why_a_form_fails(make_site):
    # production.ini's Secure cookie, the site reached over plain HTTP (by its address, before
    # the proxy): the browser keeps the cookie to itself, and "reload the page and try again"
    # failed the same way every time
    site = make_site(**{"fftelemetry.secure_cookies": "true"})
    form = site.browser().get("/register").forms["register"]  # http://localhost
    form["email"], form["password"] = ADMIN_EMAIL, PASSWORD
    page = form.submit(status=400)
    assert "reached over plain HTTP" in page.text and "open the site over HTTPS" in page.text
    with site.root() as root:
        assert len(root["users"]) == 0
    # over HTTPS the cookie comes back, and a form that expired says only that
    browser = webtest.TestApp(site.app, extra_environ={"wsgi.url_scheme": "https"})
    form = browser.get("/register").forms["register"]
    form["csrf_token"] = "stale"
    page = form.submit(headers={"Origin": "https://localhost"}, status=400)
    assert "reload the page and try again" in page.text and "plain HTTP" not in page.text


def test_a_form_behind_an_untrusted_proxy_with_its_host_cookie_is_not_said_to_be_plain_http(
        make_site):
    # waitress not told to trust the proxy, a browser sending no Origin: request.scheme is "http"
    # of a page the browser has over HTTPS, and it sent its __Host-session cookie, so the form
    # only expired
    site = make_site(**{"fftelemetry.secure_cookies": "true"})
    over_https = webtest.TestApp(site.app, extra_environ=HTTPS)
    over_https.get("/register")
    behind_proxy = site.browser()  # http://localhost
    behind_proxy.set_cookie("__Host-session", over_https.cookies["__Host-session"])
    form = {"csrf_token": "stale", "email": ADMIN_EMAIL, "password": PASSWORD}
    page = behind_proxy.post("/register", form, status=400)
    assert "reload the page and try again" in page.text and "plain HTTP" not in page.text


def test_a_form_sent_over_plain_http_without_a_session_cookie_names_https(make_site):
    # the setting off, the site opened over HTTPS before (its cookie then Secure, which a browser
    # neither sends over plain HTTP nor lets plain HTTP replace): "reload the page and try again"
    # failed the same way every time. WebTest's cookie jar lets HTTP replace it, so the browser's
    # side is played by sending the form without the cookie.
    site = make_site()
    browser = site.browser()
    form = browser.get("/register").forms["register"]  # http://localhost
    form["email"], form["password"] = ADMIN_EMAIL, PASSWORD
    browser.reset()
    page = form.submit(status=400)
    assert "open the site over HTTPS" in page.text and "allow cookies" in page.text
    assert "secure_cookies" not in page.text
    with site.root() as root:
        assert len(root["users"]) == 0


def test_a_form_of_an_https_page_behind_an_untrusted_proxy_is_not_said_to_be_plain_http(
        make_site):
    # waitress not told to trust the proxy: request.scheme is "http" of a page the browser has
    # over HTTPS (its Origin says so), so its Secure cookie is sent; without one (cookies
    # blocked) the page said it was reached over plain HTTP, and to turn secure_cookies off
    site = make_site(**{"fftelemetry.secure_cookies": "true"})
    browser = site.browser()
    form = browser.get("/register").forms["register"]
    form["email"], form["password"] = ADMIN_EMAIL, PASSWORD
    browser.reset()
    page = form.submit(headers={"Origin": "https://fftelemetry.example"}, status=400)
    assert "reload the page and try again" in page.text
    assert "plain HTTP" not in page.text and "secure_cookies" not in page.text
    with site.root() as root:
        assert len(root["users"]) == 0


def test_new_user_is_sent_to_the_wizard_until_it_is_finished(site, admin):
    site.register(USER_EMAIL, wizard=None)
    browser = site.browser()
    res = log_in(browser, USER_EMAIL, came_from="/preferences")
    assert res.location.startswith("http://localhost/welcome?came_from=")
    page = res.follow()
    done = page.forms["preferences"].submit(status=303)
    assert done.location == "http://localhost/preferences"
    # Finished: the next login goes straight where it was going, /welcome to preferences.
    browser = site.browser()
    assert log_in(browser, USER_EMAIL, came_from="/preferences").location.endswith("/preferences")
    assert browser.get("/welcome", status=303).location.endswith("/preferences")


def test_the_wizard_finishes_where_the_login_was_going(site, admin):
    # not /preferences, where the preferences page's own form goes too: the wizard's page posts
    # to /welcome, with the came_from, and thanks the user there
    site.register(USER_EMAIL, wizard=None)
    page = log_in(site.browser(), USER_EMAIL, came_from="/telemetry").follow()
    assert (page.html.title.text, page.html.h1.text) == ("Welcome \u2014 fftelemetry", "Welcome")
    done = page.forms["preferences"].submit(status=303)
    assert done.location == "http://localhost/telemetry"
    assert "Thank you, you are all set." in done.follow().text


def test_account_pages_need_a_login(anonymous):
    for url in ("/welcome", "/preferences"):
        assert "/login?came_from=" in anonymous.get(url, status=303).location


def test_preferences_are_saved(site, member):
    form = member.get("/preferences").forms["preferences"]
    form["language"], form["locale"] = "nl", "nl_BE"
    page = form.submit(status=303).follow()
    assert "Your preferences are saved." in page.text
    assert page.forms["preferences"]["locale"].value == "nl_BE"
    with site.root() as root:
        user = root["users"][USER_EMAIL]
        assert (user.language, user.locale) == ("nl", "nl_BE")


def test_the_preferences_lists_are_made_once_not_on_every_view(site, member, monkeypatch):
    """The languages and the ~230 locales, each named by Babel, are the same for the life of the
    process: made once, not on every view of /preferences and /welcome (they were ~80% of the
    page's cost, ~2.5 of ~3 ms in process)."""
    member.get("/preferences")  # they may be made here, once
    parsed = []
    parse = babel.Locale.parse
    monkeypatch.setattr(babel.Locale, "parse", lambda *args: parsed.append(args) or parse(*args))
    page = member.get("/preferences")
    assert parsed == []
    options = page.forms["preferences"]["locale"].options
    assert len(options) > 200 and ("en_GB", False, "English (United Kingdom)") in options


def test_each_language_is_named_in_its_own_language_and_marked_so(site, member):
    """The page is English; "Deutsch" or "français" read with English sounds is gibberish to a
    screen reader's user (WCAG 3.1.2, language of parts), so each name carries its lang."""
    for url in ("/preferences", "/welcome"):
        browser = member if url == "/preferences" else site.register("new@example.org", wizard=None)
        options = browser.get(url).html.select("select[name=language] option")
        assert len(options) == 8
        assert [o["lang"] for o in options] == [o["value"] for o in options]
        assert [o.text for o in options if o["lang"] == "de"] == ["Deutsch"]


@pytest.mark.parametrize(("field", "value"), [("language", "xx"), ("locale", "en_XX"),
                                              ("language", "<b>en</b>")])
def test_preferences_outside_the_lists_are_refused(site, member, field, value):
    form = member.get("/preferences").forms["preferences"]
    form[field].force_value(value)
    page = form.submit(status=400)
    assert fields_tied_to_the_error(page) == ([field], f"Please choose a {field} from the list.")
    with site.root() as root:
        user = root["users"][USER_EMAIL]
        assert (user.language, user.locale) == ("en", "equal")


def test_wizard_refuses_bad_values_and_stays_unfinished(site, admin):
    browser = site.register(USER_EMAIL, wizard=None)
    form = browser.get("/welcome").forms["preferences"]
    form["locale"].force_value("tlh_QO")
    form.submit(status=400)
    with site.root() as root:
        assert not root["users"][USER_EMAIL].welcomed
    finish_wizard(browser.get("/welcome"), "de", "de_AT")
    with site.root() as root:
        user = root["users"][USER_EMAIL]
        assert user.welcomed
        assert (user.language, user.locale) == ("de", "de_AT")


def test_unknown_pages_are_404_pages(admin):
    page = admin.get("/no-such-page", status=404)
    assert "There is no page at this address." in page.text
    admin.get("/users", status=404)
    admin.get(f"/users/{ADMIN_EMAIL}", status=404)


def test_an_error_page_keeps_the_message_waiting_for_the_next_page(member):
    """A message saved for the next page (a flash) is not shown by an error page opened in
    between, and not lost: the page after shows it, once (fftelemetry/views/errors.py)."""
    form = member.get("/preferences").forms["preferences"]
    saved = form.submit(status=303)
    for path, status in (("/no-such-page", 404), ("/admin/telemetry", 403)):
        page = member.get(path, status=status)
        assert page.html.select(".flash p") == [], path
        assert "Set-Cookie" not in page.headers, path
    assert "Your preferences are saved." in saved.follow().text
    assert "Your preferences are saved." not in member.get("/preferences").text


@pytest.mark.parametrize(
    "url",
    ["/%ff", "/login/%ff", "/static/%ff", "/login?came_from=%ff", "/admin/telemetry/view?show=%ff"],
)
def test_an_address_that_is_not_utf8_is_a_plain_400(anonymous, url):
    page = anonymous.get(url, status=400)  # not a 500 (and a traceback) for a request anyone sends
    assert "the address is not valid UTF-8" in page.text
    assert page.html.select_one("header nav a.brand"), "in the site's layout"


@pytest.mark.parametrize("foreign", ['other="\\377"', "other=b\\351", 'other="\\\x80"'])
def test_a_cookie_that_is_not_utf8_is_ignored_and_the_session_still_read(site, admin, foreign):
    # WebOb unquotes \377 to the byte 0xff and then failed on every cookie, the session's too
    session = admin.cookies["session"]
    cookie = {"HTTP_COOKIE": f"{foreign}; session={session}; lang=fr"}
    page = site.browser().get("/", extra_environ=cookie, status=200)
    assert f"{ADMIN_EMAIL} (admin)" in page.text, "still signed in"
    assert site.browser().get("/nope", extra_environ=cookie, status=404)
    page = site.browser().get("/login", extra_environ={"HTTP_COOKIE": foreign}, status=200)
    assert "login" in page.forms


def calls_to_serve(browser, cookie):
    """How many function calls (Python's and C's, as cProfile counts them: no clock) serving a
    page takes with that Cookie header."""
    profile = cProfile.Profile()
    page = profile.runcall(browser.get, "/", extra_environ={"HTTP_COOKIE": cookie}, status=200)
    return page, pstats.Stats(profile).total_calls


def test_a_cookie_that_is_not_utf8_among_thousands_costs_work_in_proportion(site, admin):
    # Each cookie set again one by one rewrote the whole header: the 40,000 that fit in
    # waitress's 256 KB held a worker 204 s for one request anyone can send.
    browser, session = site.browser(), admin.cookies["session"]

    def cookies(count):
        many = "; ".join(f"c{i}=v{i}" for i in range(count))
        return f'other="\\377"; {many}; session={session}'

    calls_to_serve(browser, cookies(10))  # the page's first rendering, out of the count
    page, once = calls_to_serve(browser, cookies(1000))
    assert f"{ADMIN_EMAIL} (admin)" in page.text, "still signed in"
    _, twice = calls_to_serve(browser, cookies(2000))
    assert twice < 2.5 * once, "twice the cookies, twice the work at most (it was four times)"


@pytest.mark.parametrize(
    "url",
    ["/preferences/foo", "/login/x", "/admin/telemetry/x", "/admin/telemetry/view/preview/x",
     "/admin/telemetry/view/export.json/x", "/admin/telemetry/submissions/x"],
)
def test_a_page_with_more_after_its_name_is_not_found(admin, url):
    page = admin.get(url, status=404)
    assert "There is no page at this address." in page.text


def test_the_icon_is_where_browsers_look_for_it(anonymous):
    icon = anonymous.get("/favicon.ico", status=200)
    assert icon.content_type == "image/svg+xml" and icon.body.startswith(b"<svg")


def test_static_files_and_the_icon_open_no_database_connection(site, admin, anonymous):
    """A stylesheet, script or icon is no part of the persistent tree: serving one takes no
    connection from the pool and no look at the root (a page does, as the control shows)."""
    opened = []
    site.app.registry.registerHandler(
        lambda event: opened.append(event.request.path), (ZODBConnectionOpened,)
    )
    for browser in (admin, anonymous):
        for path in ("/static/style.css", "/static/confirm.js", "/static/favicon.svg",
                     "/favicon.ico"):
            browser.get(path, status=200)
    assert opened == []
    admin.get("/preferences")
    assert opened == ["/preferences"]


def test_stylesheet_is_public(anonymous):
    res = anonymous.get("/static/style.css", status=200)
    assert "body" in res.text


def test_every_response_tells_the_browser_its_policy(site, admin, anonymous):
    from fftelemetry.security import BROWSER_POLICY

    responses = [
        admin.get("/admin/telemetry"), admin.get("/nothing", status=404),
        anonymous.get("/static/style.css"), anonymous.get("/admin/telemetry", status=303),
        admin.get("/admin/telemetry/view/export.json"),
    ]
    for response in responses:
        for name, value in BROWSER_POLICY.items():
            assert response.headers.getall(name) == [value], (response.request.path, name)
    # what the policy must say, written out here: a weakened policy fails this test
    directives = BROWSER_POLICY["Content-Security-Policy"].split(";")
    csp = dict(directive.strip().split(" ", 1) for directive in directives)
    assert csp == {
        "default-src": "'self'", "object-src": "'none'", "base-uri": "'none'",
        "form-action": "'self'", "frame-ancestors": "'none'",
    }
    assert BROWSER_POLICY["X-Frame-Options"] == "DENY"
    assert BROWSER_POLICY["X-Content-Type-Options"] == "nosniff"
    assert BROWSER_POLICY["Referrer-Policy"] == "same-origin"


def test_no_page_is_kept_by_a_cache_but_static_files_are(site, admin, member, anonymous):
    # A page holds a CSRF token and, for an admin, records: neither a shared proxy nor the
    # browser (the back button after logging out) may keep one.
    pages = [
        admin.get("/admin/telemetry"), admin.get("/admin/telemetry/view"),
        admin.get("/admin/telemetry/view/preview"), admin.get("/admin/telemetry/view/export.json"),
        admin.get("/admin/telemetry/submissions"), admin.get("/preferences"),
        anonymous.get("/login"), anonymous.get("/"),
        admin.get("/nothing", status=404), member.get("/admin/telemetry", status=403),
        admin.get("/logout", status=405), anonymous.get("/admin/telemetry", status=303),
        anonymous.get("/static/nothing.css", status=404),
    ]
    for page in pages:
        assert page.headers.getall("Cache-Control") == ["no-store"], page.request.path
    for path in ("/static/style.css", "/favicon.ico"):
        assert anonymous.get(path).headers["Cache-Control"] == "max-age=3600"


# Login throttling (fftelemetry.throttle): 5 failed logins for one email from one address, then a
# 429 until a minute after the first of them, as Firefly III (Laravel) does.

ATTACKER = "203.0.113.5"


def browser_at(site, address, **environ):
    return webtest.TestApp(site.app, extra_environ={"REMOTE_ADDR": address, **environ})


def fail_logins(browser, count, email=ADMIN_EMAIL):
    for _ in range(count):
        page = log_in(browser, email, "wrong password")
        assert page.status_int == 400 and "Wrong email address or password." in page.text


def assert_throttled(page, window=60, email=ADMIN_EMAIL):
    assert page.status_int == 429
    wait = int(page.headers["Retry-After"])
    assert 1 <= wait <= window
    unit = "second" if wait == 1 else "seconds"
    assert f"Too many login attempts. Please try again in {wait} {unit}." in page.text
    assert page.forms["login"]["email"].value == email  # the form again, as it was sent


def test_five_failed_logins_lock_the_right_password_out_too(site, admin):
    browser = browser_at(site, ATTACKER)
    fail_logins(browser, 5)
    assert_throttled(log_in(browser, ADMIN_EMAIL))  # the right password, not even checked
    browser.get("/preferences", status=303)  # not signed in
    # the form's email is normalised as the login's is: another spelling is the same key
    assert_throttled(log_in(browser, " Owner@EXAMPLE.org"), email=" Owner@EXAMPLE.org")


def test_the_too_many_attempts_error_describes_the_email_field_but_marks_nothing_invalid(
    site, admin
):
    """The email takes the focus, so a screen reader reads the 429's error with it, as it reads a
    wrong password's; the email may be right, so it is not marked aria-invalid."""
    browser = browser_at(site, ATTACKER)
    fail_logins(browser, 5)
    page = log_in(browser, ADMIN_EMAIL)
    assert_throttled(page)
    described = page.html.select("#login [aria-describedby~=form-error]")
    assert [(field["name"], field.has_attr("autofocus")) for field in described] == [
        ("email", True)
    ]
    assert fields_tied_to_the_error(page)[0] == []  # none aria-invalid


def test_another_address_or_email_is_not_locked_out(site, admin, member):
    fail_logins(browser_at(site, ATTACKER), 5)
    assert_throttled(log_in(browser_at(site, ATTACKER), ADMIN_EMAIL))
    # the owner, elsewhere, still gets in: failing on purpose cannot lock an account's owner out
    owner = browser_at(site, "198.51.100.7")
    assert log_in(owner, ADMIN_EMAIL).status_int == 303
    owner.get("/admin/telemetry", status=200)
    # another account from the same address too
    assert log_in(browser_at(site, ATTACKER), USER_EMAIL).status_int == 303


def test_a_forged_forwarded_for_header_does_not_escape_the_lock(site, admin):
    """Without trusted_proxy, waitress passes X-Forwarded-For on as sent; WebOb's client_addr
    believes it, so each guess could name an address of its own."""
    fail_logins(browser_at(site, ATTACKER), 5)
    forged = browser_at(site, ATTACKER, HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert_throttled(log_in(forged, ADMIN_EMAIL))


def test_the_right_password_works_once_the_window_is_over(make_site):
    site = make_site(**{"fftelemetry.login_attempts": "2",
                        "fftelemetry.login_window_seconds": "2"})
    site.register(ADMIN_EMAIL)
    browser = browser_at(site, ATTACKER)
    fail_logins(browser, 2)
    page = log_in(browser, ADMIN_EMAIL)
    assert_throttled(page, window=2)
    time.sleep(int(page.headers["Retry-After"]) + 0.1)
    assert log_in(browser, ADMIN_EMAIL).status_int == 303
    browser.get("/admin/telemetry", status=200)


def test_a_successful_login_clears_the_failures(site, admin):
    browser = browser_at(site, ATTACKER)
    fail_logins(browser, 4)
    assert log_in(browser, ADMIN_EMAIL).status_int == 303
    browser = browser_at(site, ATTACKER)
    fail_logins(browser, 4)  # 8 in the window, but 4 since the success
    assert log_in(browser, ADMIN_EMAIL).status_int == 303
    browser = browser_at(site, ATTACKER)
    fail_logins(browser, 5)  # the control: 5 in a row do lock it
    assert_throttled(log_in(browser, ADMIN_EMAIL))


def test_an_address_cycling_emails_is_locked_out_of_every_email(site, admin):
    browser = browser_at(site, ATTACKER)
    for n in range(20):  # 4 times login_attempts, at emails of its own making
        fail_logins(browser, 1, f"guess{n}@example.org")
    assert_throttled(log_in(browser, ADMIN_EMAIL))  # an email it never tried
    assert log_in(browser_at(site, "198.51.100.7"), ADMIN_EMAIL).status_int == 303


def test_the_throttle_keeps_a_bounded_number_of_keys_none_that_locks_dropped(site, admin):
    throttle = site.app.registry.login_throttle
    assert throttle.max_keys == 10_000
    throttle.max_keys = 9  # as 10,000, in fewer requests
    fail_logins(browser_at(site, ATTACKER), 5)
    for n in range(10):  # cycling emails and addresses, to push the locked key out
        fail_logins(browser_at(site, f"192.0.2.{n}"), 1, f"guess{n}@example.org")
        assert len(throttle) <= 9
    assert len(throttle) == 9
    assert_throttled(log_in(browser_at(site, ATTACKER), ADMIN_EMAIL))


def test_an_email_guessed_from_many_addresses_is_slowed_but_the_owner_gets_in(site, admin):
    for n in range(4):
        fail_logins(browser_at(site, f"192.0.2.{n}"), 5)  # 20: 4 times login_attempts
    newcomer = browser_at(site, "192.0.2.99")
    fail_logins(newcomer, 1)
    assert_throttled(log_in(newcomer, ADMIN_EMAIL))  # one guess an address, not five
    owner = browser_at(site, "198.51.100.7")
    assert log_in(owner, ADMIN_EMAIL).status_int == 303
    owner.get("/admin/telemetry", status=200)


def test_an_ipv6_client_is_counted_by_its_64_whose_addresses_it_cannot_cycle(site, admin):
    for n in range(1, 6):
        fail_logins(browser_at(site, f"2001:db8:1:2::{n}"), 1)
    assert_throttled(log_in(browser_at(site, "2001:db8:1:2:ffff::6"), ADMIN_EMAIL))
    assert log_in(browser_at(site, "2001:db8:1:3::1"), ADMIN_EMAIL).status_int == 303


def test_a_60kb_email_is_kept_as_a_short_key(site, admin):
    fail_logins(browser_at(site, ATTACKER), 1, "x" * 60_000 + "@example.org")
    keys = set(site.app.registry.login_throttle._failures)
    [email] = [key[1] for key in keys if key[0] == "email"]
    assert len(email) <= 255
    assert keys == {("pair", email, ATTACKER), ("address", ATTACKER), ("email", email)}


def test_guesses_sent_at_once_get_no_more_attempts_than_one_after_another(make_app):
    """Served by waitress's worker threads, guesses sent together were each let through before
    any had failed: a guess more per thread. Real argon2 (a default profile's hash takes that
    long), so every guess is still being checked when the others come in."""
    site = Site(make_app(**{"fftelemetry.login_attempts": "2"}))
    site.register(ADMIN_EMAIL)
    with serving(site.app) as url:
        forms = []
        for _ in range(8):
            session = requests.Session()
            page = session.get(url + "/login", timeout=10).text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
            forms.append((session, {"csrf_token": token, "email": ADMIN_EMAIL,
                                    "password": "wrong password"}))
        start, statuses = threading.Barrier(len(forms)), []

        def guess(session, form):
            start.wait()
            statuses.append(session.post(url + "/login", data=form, timeout=30).status_code)

        guessers = [threading.Thread(target=guess, args=form) for form in forms]
        for thread in guessers:
            thread.start()
        for thread in guessers:
            thread.join()
    assert sorted(statuses) == [400, 400] + [429] * 6


# What the throttle tells the operator: one WARNING line when a lock or a slowing begins, or the
# store fills, never one per refused request (a guesser would write the log).

def throttle_lines(caplog):
    return [record.getMessage() for record in caplog.records
            if record.name == "fftelemetry.throttle" and record.levelname == "WARNING"]


def test_an_address_locked_out_of_every_account_is_logged_once(site, admin, caplog):
    browser = browser_at(site, ATTACKER)
    fail_logins(browser, 5)
    assert_throttled(log_in(browser, ADMIN_EMAIL))  # one email from one address: a mistyping
    for n in range(15):
        fail_logins(browser, 1, f"guess{n}@example.org")
    assert throttle_lines(caplog) == []
    for email in (ADMIN_EMAIL, USER_EMAIL, "guess0@example.org", ADMIN_EMAIL):
        assert_throttled(log_in(browser, email), email=email)
    [line] = throttle_lines(caplog)
    assert line.startswith(f"login: {ATTACKER} is locked out of every account for ")
    assert line.endswith(f" s (20 attempts across accounts within 60 s); refused at "
                         f"'{ADMIN_EMAIL}'")


def test_an_email_slowed_is_logged_once_naming_it_in_full(site, admin, caplog):
    for n in range(4):
        fail_logins(browser_at(site, f"192.0.2.{n}"), 5)
    assert throttle_lines(caplog) == []
    newcomer = browser_at(site, "2001:db8:1:2::7")
    fail_logins(newcomer, 1)
    for _ in range(3):
        assert_throttled(log_in(newcomer, ADMIN_EMAIL))
    fail_logins(browser_at(site, "192.0.2.99"), 1)
    assert_throttled(log_in(browser_at(site, "192.0.2.99"), ADMIN_EMAIL))
    [line] = throttle_lines(caplog)
    assert line.startswith(f"login: '{ADMIN_EMAIL}' is slowed to 1 attempt an address for ")
    assert line.endswith(" s (20 attempts at it from several addresses within 60 s); this one "
                         "from 2001:db8:1:2::/64")


def test_an_email_in_a_log_line_is_escaped(site, admin, caplog):
    email = "x\nFAKE LOG LINE\x1b[2J@example.org"
    browser = browser_at(site, ATTACKER)
    for n in range(20):
        fail_logins(browser, 1, f"guess{n}@example.org")
    assert_throttled(log_in(browser, email), email=email)
    [line] = throttle_lines(caplog)
    assert line.endswith("refused at 'x\\nfake log line\\x1b[2j@example.org'")  # normalised


def test_a_full_throttle_store_is_logged_once_a_window(make_site, caplog):
    site = make_site(**{"fftelemetry.login_attempts": "1"})
    site.register(ADMIN_EMAIL)
    site.app.registry.login_throttle.max_keys = 3  # as 10,000, in fewer requests
    fail_logins(browser_at(site, ATTACKER), 1)  # its pair is used up: it is never dropped
    for n in range(4):
        assert_throttled(log_in(browser_at(site, f"192.0.2.{n}"), USER_EMAIL), email=USER_EMAIL)
    [line] = throttle_lines(caplog)
    assert line.startswith("login: all 3 keys of the login throttle refuse or slow a guesser: "
                           "/login refuses every address and email not yet counted for up to ")
    assert line.endswith(f" s; refused 192.0.2.0 at '{USER_EMAIL}'")
