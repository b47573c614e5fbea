"""A database that cannot write (a full disk, simulated with RLIMIT_FSIZE: every write past the
limit fails with EFBIG, as a full disk's fail with ENOSPC) gives a clear page and loses nothing."""

import logging
from pathlib import Path

from pyramid.response import Response
from ZODB.POSException import ConflictError

from fftelemetry.resources import Root
from tests.conftest import file_size_limit
from tests.functional.conftest import ADMIN_EMAIL


def data_fs(site):
    return Path(site.app.registry.settings["zodbconn.uri"].removeprefix("file://"))


def submit_on_a_full_disk(site, form):
    """Submit `form` while the Data.fs cannot grow: the 503 "Not saved" page."""
    with file_size_limit(data_fs(site).stat().st_size):
        page = form.submit(status=503)
    assert "Not saved" in page.text
    return page


def test_a_write_error_at_commit_is_a_clear_page_and_loses_nothing(site, admin):
    site.seed(200)
    before = site.counts()
    form = admin.get("/preferences").forms["preferences"]
    form["language"], form["locale"] = "de", "de_AT"

    page = submit_on_a_full_disk(site, form)
    assert "File too large" in page.text and "Nothing was changed" in page.text
    assert site.counts() == before
    with site.root() as root:
        assert root["users"].get("owner@example.org").language == "en"

    # with room again the same form goes through, and everything from before is still there
    form.submit(status=303)
    with site.root() as root:
        assert root["users"].get("owner@example.org").language == "de"
    after = site.counts()
    assert after["all"] == before["all"] + 2  # language de and locale de_AT, new facts


def test_a_registration_that_could_not_be_saved_signs_nobody_in(site, admin):
    browser = site.browser()
    form = browser.get("/register").forms["register"]
    form["email"], form["password"] = "late@example.org", "long enough password"

    page = submit_on_a_full_disk(site, form)
    assert "Welcome!" not in page.text  # the failed request's session is not sent
    assert "Set-Cookie" not in page.headers
    browser.get("/preferences", status=303)
    with site.root() as root:
        assert "late@example.org" not in root["users"]


def test_a_write_to_a_read_only_database_is_logged_in_words(site, admin, make_site, caplog):
    # zodbconn.uri's read_only=true (a replica, say): ReadOnlyError has no text, and the log
    # line said "POST /preferences not saved: ReadOnlyError: ", as the console did
    replica = make_site(**{"zodbconn.uri": f"file://{data_fs(site)}?read_only=true"})
    browser = replica.browser()
    browser.set_cookie("session", admin.cookies["session"])
    form = browser.get("/preferences").forms["preferences"]
    form["language"] = "de"
    caplog.set_level(logging.INFO)
    assert "Not saved" in form.submit(status=503).text
    [logged] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert logged == "POST /preferences not saved: the database is read-only"


def test_a_read_only_database_is_not_worth_trying_again(site, admin, make_site):
    # the page said "(ReadOnlyError) ... Try again later", which would not help
    replica = make_site(**{"zodbconn.uri": f"file://{data_fs(site)}?read_only=true"})
    browser = replica.browser()
    browser.set_cookie("session", admin.cookies["session"])
    form = browser.get("/preferences").forms["preferences"]
    form["language"] = "de"
    page = form.submit(status=503)
    assert (
        "The database could not store this (the database is read-only). Nothing was changed. "
        "Trying again will not help while it is read-only; tell the administrator."
    ) in " ".join(page.html.find("main").text.split())
    assert "ReadOnlyError" not in page.text and "Try again" not in page.text


def failing_view(config):
    """`pyramid.includes` hook: /broken collects a record, then fails as a bug would;
    /conflict-once conflicts on its first attempt only, /conflict on every attempt."""

    def broken(context, request):
        request.telemetry.collect("system.users.count", 99)
        raise RuntimeError("a bug")

    def conflict(context, request):
        request.telemetry.collect("system.users.count", 98)
        if request.view_name == "conflict" or request.environ["retry.attempt"] == 0:
            raise ConflictError
        return Response("done")

    config.add_view(broken, context=Root, name="broken")
    config.add_view(conflict, context=Root, name="conflict-once")
    config.add_view(conflict, context=Root, name="conflict")


def test_a_conflict_that_is_retried_logs_no_error(make_site, caplog):
    site = make_site(**{"pyramid.includes": "tests.functional.test_faults.failing_view",
                        "retry.attempts": "3"})
    admin = site.register(ADMIN_EMAIL)
    caplog.set_level(logging.INFO)
    caplog.clear()
    assert admin.get("/conflict-once", status=200).text == "done"
    assert [(r.levelname, r.getMessage()[:30]) for r in caplog.records] == [
        ("INFO", "retrying GET /conflict-once af")
    ]


def test_conflicts_on_every_attempt_are_a_503_page_and_keep_nothing(make_site, caplog):
    site = make_site(**{"pyramid.includes": "tests.functional.test_faults.failing_view",
                        "retry.attempts": "3"})
    admin = site.register(ADMIN_EMAIL)
    before = site.counts()
    caplog.set_level(logging.INFO)
    caplog.clear()
    page = admin.get("/conflict", status=503)
    assert "Nothing was changed. Try again in a moment." in page.text
    assert site.counts() == before
    assert [r.levelname for r in caplog.records] == ["INFO", "INFO", "WARNING"]


def test_an_unexpected_error_is_a_500_page_logged_and_nothing_is_kept(make_site, caplog):
    site = make_site(**{"pyramid.includes": "tests.functional.test_faults.failing_view"})
    admin = site.register(ADMIN_EMAIL)
    before = site.counts()

    page = admin.get("/broken", status=500)

    assert "Something went wrong" in page.text and "Nothing was changed" in page.text
    assert "a bug" not in page.text and "Log out" in page.text  # the site's layout, no details
    assert site.counts() == before
    [logged] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.getMessage() == "GET /broken failed" and logged.exc_info[1].args == ("a bug",)
