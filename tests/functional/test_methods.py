"""Every address of the app answers the methods it takes, and any other with a 405 whose Allow
header names them: a sweep of bad requests found pages that answered a PUT, DELETE or OPTIONS
with the page of an expired form (400) without a token, and with one drew the page (200),
doing nothing (`PUT /preferences` with a language: nothing saved)."""

import tempfile
from pathlib import Path

import pytest
from pyramid.httpexceptions import default_exceptionresponse_view

from fftelemetry import main
from fftelemetry.resources import Admin, RecordsView, Root, SubmissionsView, TelemetryAdmin
from fftelemetry.scripting import close_databases, database
from tests.conftest import app_settings
from tests.functional.conftest import PASSWORD

# Where each context of a view is: a view for a context not here fails the collection.
PLACES = {
    Root: "/",
    Admin: "/admin/",
    TelemetryAdmin: "/admin/telemetry/",
    RecordsView: "/admin/telemetry/view/",
    SubmissionsView: "/admin/telemetry/submissions/",
}
A_FILE = "style.css"  # a route's subpath: a file of fftelemetry/static


def addresses():
    """Every address the app has a view at, from its own registrations (its introspector): a
    new one is tested without being listed here."""
    with tempfile.TemporaryDirectory() as tmp:
        app = main({"here": tmp}, **app_settings(Path(tmp)))
        close_databases(app.registry)
    introspector, found = app.registry.introspector, set()
    for item in introspector.get_category("views"):
        view = item["introspectable"]
        if view["exception_only"] or view["callable"] is default_exceptionresponse_view:
            continue  # Pyramid's own view of an exception as a context: no address
        if view["route_name"] is not None:
            pattern = introspector.get("routes", view["route_name"])["pattern"]
            found.add("/" + pattern.lstrip("/").replace("*subpath", A_FILE))
        else:
            found.add(PLACES[view["context"]] + view["name"])
    return sorted(found)


ADDRESSES = addresses()
# No address takes these; GET, HEAD and POST are tried too, where an address does not take them.
OTHER_METHODS = ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW")
# What a form here would change, if a method that changes nothing acted on it.
CHANGES = {
    "language": "de",
    "locale": "de_DE",
    "email": "new@example.org",
    "password": PASSWORD,
    "confirm": "yes",
    "shown": "3",
}


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")  # WebTest's lint, on BREW
@pytest.mark.parametrize("who", ["anonymous", "admin"])
@pytest.mark.parametrize("path", ADDRESSES)
def test_a_method_an_address_does_not_take_is_a_405_naming_those_it_does(site, admin, who, path):
    site.seed(3, submitted=1)
    browser = admin if who == "admin" else site.browser()
    token = browser.get("/login").forms["login"]["csrf_token"].value
    before = database(site.app.registry).lastTransaction(), dict(browser.cookies)

    def refused(method):
        """The 405s of `method`, with no form and with a form and a good token; their Allow."""
        allows = set()
        for form in ({}, {**CHANGES, "csrf_token": token}):
            answer = browser.request(path, method=method, POST=form, expect_errors=True)
            assert answer.status_int == 405, (method, form, answer.status)
            assert "Set-Cookie" not in answer.headers, method
            assert "expired" not in answer.text, method  # never the stale form's page
            allows.add(answer.headers["Allow"])
        return allows

    allows = set().union(*(refused(method) for method in OTHER_METHODS))
    assert len(allows) == 1, allows  # one truth per address
    taken = allows.pop().split(", ")
    assert set(taken) <= {"GET", "HEAD", "POST"} and taken == sorted(taken)
    assert ("GET" in taken) == ("HEAD" in taken)  # HEAD wherever GET
    for method in {"GET", "HEAD", "POST"} - set(taken):
        assert refused(method) == {", ".join(taken)}
    # nothing was written, nor the session changed
    assert (database(site.app.registry).lastTransaction(), dict(browser.cookies)) == before

    # Allow is the truth: each method it names is served (a POST without its token: refused,
    # not a 405), and HEAD as GET is
    statuses = {}
    for method in taken:
        answer = browser.request(path, method=method, expect_errors=True)
        assert answer.status_int != 405, (method, answer.status)
        statuses[method] = answer.status_int
    assert statuses.get("HEAD") == statuses.get("GET")
