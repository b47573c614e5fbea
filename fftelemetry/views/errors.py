"""Error pages: sign in first (anonymous), 403, 404, a stale form (bad CSRF token) or a query a
page cannot use (400), 405 for a method the address does not take (a GET on a URL that only a
form's POST may use, a PUT on a page), 503 when the database cannot write,
cannot be reached, keeps conflicting or is of another generation, and 500 for anything else.

A response to an exception carries no session cookie (`set_on_exception=False` in
fftelemetry.security): what the failed request put in the session (a sign-in, a "Welcome!") is
dropped, as its database changes were."""

import logging

from pyramid.csrf import BadCSRFOrigin, BadCSRFToken
from pyramid.exceptions import PredicateMismatch
from pyramid.httpexceptions import HTTPBadRequest, HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.response import Response
from pyramid.view import (
    exception_view_config,
    forbidden_view_config,
    notfound_view_config,
)
from ZEO.Exceptions import ClientDisconnected
from ZODB.POSException import ConflictError, ReadOnlyError, StorageError
from zope.interface.interfaces import IInterface

from ..failures import (
    POSTGRESQL_ERRORS,
    POSTGRESQL_NO_ROOM,
    is_server_lost,
    lost_postgresql_server_behind,
    what_went_wrong,
    why_not_written,
)
from ..resources.generations import GenerationError
from ..scripting import lost_server
from ..security import session_cookie_name
from ..shown import LOGGED_CHARS, request_line, shown
from .accounts import safe_next

log = logging.getLogger(__name__)

ERROR_PAGE = "fftelemetry:templates/error.page"


def no_flash(queue=""):
    """An error page shows no flash messages: those of a failed request were never saved, and
    earlier ones stay in the session (not sent back) for the next page."""
    return []


def error_page(request, status, title, message, **values):
    if "user" not in values:
        try:
            values["user"] = request.identity  # maybe first loaded here (a 404 of traversal)
        except (ClientDisconnected, *POSTGRESQL_ERRORS) as exc:
            if not is_server_lost(exc):  # a server that answered (a statement timeout): as
                raise  # any other failure here, raised, and logged with its traceback
            return database_unavailable(exc, request)  # or pyramid_retry reruns the request
    values = {"page_title": title, "title": title, "message": message, "pop_flash": no_flash,
              **values}
    response = render_to_response(ERROR_PAGE, values, request=request)
    response.status = status
    return response


@forbidden_view_config()
def forbidden(exc, request):
    if request.identity is None:
        # Only a GET is worth coming back to; a POST's form is gone by then. An address too long
        # to come back to (safe_next) goes home too, not into a Location header of its length.
        came_from = safe_next(request, request.url if request.method == "GET" else None)
        return HTTPSeeOther(
            request.resource_url(request.root, "login", query={"came_from": came_from})
        )
    return error_page(
        request, 403, "Not allowed", "This page is for administrators of this installation."
    )


@notfound_view_config()
def notfound(exc, request):
    return error_page(request, 404, "Not found", "There is no page at this address.")


@exception_view_config(BadCSRFToken)
def bad_csrf_token(exc, request):
    if not session_cookie_withheld(request):
        message = "Nothing was changed. Go back, reload the page and try again."
    elif request.app_settings.secure_cookies:
        message = (
            "Nothing was changed. This site's session cookie is marked Secure "
            "(fftelemetry.secure_cookies), and this page was reached over plain HTTP, where a "
            "browser does not send it back: open the site over HTTPS, or set "
            "fftelemetry.secure_cookies = false to serve it over plain HTTP."
        )
    else:
        message = (
            "Nothing was changed. Your browser sent no session cookie with this form. If this "
            "site was opened over HTTPS in this browser, its cookie is kept to HTTPS (a cookie "
            "set over HTTPS is marked Secure) and this page was reached over plain HTTP: open "
            "the site over HTTPS. Otherwise allow cookies for this site, reload the page and "
            "try again."
        )
    return error_page(request, 400, "The form has expired", message)


def session_cookie_withheld(request):
    """Whether the form failed for want of a session cookie a browser keeps to HTTPS, on a page
    reached over plain HTTP: production.ini's Secure cookie (by the site's address, before the
    proxy is set up), or the one any HTTPS request gets, which a browser then neither sends nor
    lets plain HTTP replace. "Reload the page and try again" failed the same way every time.
    The browser's Origin says how it reached the page: behind a proxy waitress does not trust,
    request.scheme is "http" of an HTTPS page, whose cookie then went missing otherwise."""
    over_https = request.headers.get("Origin", "").startswith("https://")
    name = session_cookie_name(request.app_settings.secure_cookies)
    return request.scheme == "http" and not over_https and name not in request.cookies


@exception_view_config(BadCSRFOrigin)
def bad_csrf_origin(exc, request):
    """An HTTPS form sent from a page of another origin: an attack, or a proxy that does not
    pass on the address the site was reached at."""
    return error_page(
        request,
        400,
        "The form came from another site",
        "Nothing was changed: this form was sent from a page that is not this site's. Open the "
        "site at its own address and try again. (Behind a proxy: it must pass on the host and "
        "port it was reached at, as X-Forwarded-Host and X-Forwarded-Port.)",
    )


@exception_view_config(HTTPBadRequest)
def bad_request(exc, request):
    """A query a page cannot use (`?show=bogus`, `?before=abc`): which, in the site's layout."""
    reason = str(exc.detail or "it is not understood").rstrip(".")
    if request.method in ("GET", "HEAD"):
        message = f"This address cannot be shown: {reason}."
    else:
        message = f"Nothing was changed: {reason}."
    return error_page(request, 400, "Bad request", message)


# What a 405 page says, by the methods the address takes (its Allow header).
METHOD_ANSWERS = {
    ("POST",): (
        "Use the button",
        "This address only takes a form's POST; nothing was changed. "
        "Use the button on the page instead.",
    ),
    ("GET", "HEAD"): ("Only to read", "This address is only read (GET); nothing was changed."),
    ("GET", "HEAD", "POST"): (
        "Use the form",
        "This address shows a form (GET) and takes it back filled in (POST); nothing was "
        "changed. Use the form on the page instead.",
    ),
}


def applies(context, resource):
    """Whether a view for `context` (a class or an interface) is one for `resource`."""
    if IInterface.providedBy(context):
        return context.providedBy(resource)
    return isinstance(resource, context)


def methods_taken(request):
    """The methods the views of this address are registered for (GET brings HEAD, as Pyramid's
    request_method predicate has it), or None if one of them takes any method."""
    route = request.matched_route
    route_name = None if route is None else route.name
    taken = set()
    for item in request.registry.introspector.get_category("views"):
        view = item["introspectable"]
        context = view["context"]
        if (
            view["exception_only"]
            or view["route_name"] != route_name
            or view["name"] != request.view_name
            or not (context is None or applies(context, request.context))
        ):
            continue
        methods = view["request_methods"]  # as the view was added: None, a name or several
        if methods is None:
            return None
        taken.update([methods] if isinstance(methods, str) else methods)
    if "GET" in taken:
        taken.add("HEAD")
    return tuple(sorted(taken))


# Pyramid raises PredicateMismatch, a 404, when an address has views but none whose predicates
# the request meets; it cannot tell which predicate failed (Pylons/pyramid#1526). Every view
# here names its request_method, and its predicates are checked before its permission and its
# CSRF token: a PUT, DELETE, OPTIONS or TRACE lands here, never on the page of an expired form.
@exception_view_config(PredicateMismatch)
def method_not_allowed(exc, request):
    """A method the address does not take: a 405 naming the ones it does, nothing changed."""
    taken = methods_taken(request)
    if not taken or request.method in taken:  # another predicate failed: there is no page
        return notfound(exc, request)
    listed = f"This address takes {', '.join(taken)} only; nothing was changed."
    title, message = METHOD_ANSWERS.get(taken, ("Method not allowed", listed))
    response = error_page(request, 405, title, message)
    response.allow = taken
    return response


@exception_view_config(OSError)
@exception_view_config(StorageError)
def cannot_save(exc, request):
    """The database could not write (a full disk, the PostgreSQL server's too, a lost ZEO
    server...). pyramid_tm renders this for an error raised by the commit too; the transaction
    is aborted, so nothing half-saved."""
    # any OSError lands here, and its text may quote a name that came from outside; a
    # read-only database's error has no text, and is said in words (as on the console)
    error = shown(what_went_wrong(exc), LOGGED_CHARS)
    log.error("%s not saved: %s", request_line(request), error)
    return error_page(  # the log above has the error's text, file names included
        request,
        503,
        "Not saved",
        f"The database could not store this ({why_not_written(exc)}). Nothing was changed. "
        + what_to_do(exc),
    )


for error in POSTGRESQL_NO_ROOM:  # before psycopg2's OperationalError, which it is (below)
    exception_view_config(error)(cannot_save)


def what_to_do(exc):
    """A read-only database (zodbconn.uri's read_only=true, a replica) stays so: "try again
    later" would send the reader round in circles."""
    if isinstance(exc, ReadOnlyError):
        return "Trying again will not help while it is read-only; tell the administrator."
    return "Try again later; if it keeps happening, tell the administrator."


@exception_view_config(ClientDisconnected)
def database_unavailable(exc, request):
    """The database server cannot be reached: ZEO's (stopped, restarting), or RelStorage's
    PostgreSQL server (which RelStorage has tried once to connect to again).

    A ZEO load has waited for it up to the URI's `wait_timeout` already (a commit fails at
    once). pyramid_retry would rerun the request `retry.attempts` times (ClientDisconnected is a
    TransientError, which pyramid_tm marks retryable), each load waiting again: a worker thread
    held for minutes. So while the server is away this attempt is the last; once it is back (it
    came back during this attempt) pyramid_retry reruns the request as for a conflict.
    psycopg2's errors are not retried. The page is drawn without the database (no signed-in
    user); `/health` is answered in plain text and not logged, as when its root is cached.
    psycopg2's OperationalError of a server that answered (a statement timeout, a deadlock) is
    no lost server: the generic 500, with its traceback.

    A server lost in the commit's second phase (in_second_phase) may have saved the change: the
    page says so, not "Nothing was changed", and the request is not rerun, which would do it a
    second time."""
    lost = lost_server(exc, request)
    if lost is None:
        return failed(exc, request)
    if is_health_check(request):  # traversal failed: the root could not be loaded
        return unavailable_in_plain_text()
    lost.log_if_last(log, "nothing was changed")
    if lost.saved_or_not:
        message = (
            "The database server went away as this change was being saved: it may have been "
            "saved or not. Look before doing it again; if the server cannot be reached, try in "
            "a minute, and if it keeps happening, tell the administrator."
        )
    else:
        message = (
            "The database server cannot be reached right now. Nothing was changed. "
            "Try again in a minute; if it keeps happening, tell the administrator."
        )
    return database_unavailable_page(request, message)


def database_unavailable_page(request, message):
    """The lost database server's 503 page, drawn without the database (no signed-in user)."""
    response = error_page(request, 503, "Database unavailable", message, user=None)
    response.retry_after = 30
    return response


for error in POSTGRESQL_ERRORS:  # as stacked decorators would; none without the postgresql extra
    exception_view_config(error)(database_unavailable)


def is_health_check(request):
    return request.path_info == "/health" and request.method in ("GET", "HEAD")


def unavailable_in_plain_text():
    """/health's answer while the database server cannot be reached."""
    response = Response("Database unavailable\n", status=503, content_type="text/plain")
    response.retry_after = 30
    return response


@exception_view_config(GenerationError)
def database_of_another_generation(exc, request):
    """Another process (a newer version) has evolved the database since this one started: the
    root says so before anything is written. Drawn without the database (no signed-in user)."""
    log.error("%s refused: %s", request_line(request), exc)
    return error_page(
        request,
        503,
        "Database of another version",
        f"Nothing was changed: {exc}.",
        user=None,
    )


# retryable_error=False (pyramid_retry's predicate): a conflict that will be retried is not
# this view's business; pyramid_retry reruns the request and logs one line (retries.py).
@exception_view_config(ConflictError, retryable_error=False)
def still_conflicting(exc, request):
    """Conflicts on every attempt: others kept writing the same objects. Nothing was saved.
    RelStorage's conflict for a commit that waited for a lock as its server went (the last
    attempt's, or with retry.attempts = 1) is that lost server's page."""
    lost = lost_postgresql_server_behind(exc)
    if lost is not None:
        return database_unavailable(lost, request)
    log.warning("%s gave up: conflicting writes on every attempt", request_line(request))
    return error_page(
        request,
        503,
        "Busy",
        "Others were changing the same data at the same moment, every time we tried. "
        "Nothing was changed. Try again in a moment.",
    )


@exception_view_config(Exception, retryable_error=False)
def failed(exc, request):
    """A bug: the traceback goes to the log, the visitor gets a page in the site's own layout.
    pyramid_tm aborts the transaction, so nothing half-done is stored."""
    log.error("%s failed", request_line(request), exc_info=exc)
    return error_page(
        request,
        500,
        "Something went wrong",
        "Nothing was changed. The error was logged for the administrator.",
    )
