"""The receiver's views: POST /submit and the JSON counts; every error is answered in JSON too,
so a sender (or its operator reading the log line) always gets a reason it can parse."""

import logging

from pyramid.httpexceptions import HTTPBadRequest
from pyramid.view import exception_view_config, notfound_view_config, view_config
from ZEO.Exceptions import ClientDisconnected, ServerException
from ZODB.POSException import ConflictError

from ..failures import (
    POSTGRESQL_ERRORS,
    POSTGRESQL_NO_ROOM,
    is_no_room,
    lost_postgresql_server_behind,
    what_went_wrong,
    why_not_written,
)
from ..resources.generations import GenerationError
from ..resources.store import utcnow
from ..scripting import lost_server
from ..shown import LOGGED_CHARS, quoted, request_line, shown
from ..telemetry.sender import records_word
from .resources import Receiver
from .validation import Invalid, check_content_type, parse_batch

log = logging.getLogger(__name__)
SHOWN = 100  # characters of an unknown address (and of its method) a 404 repeats


@view_config(context=Receiver, name="submit", request_method="POST", renderer="json")
def submit(context, request):
    limit = request.registry.settings["receiver.max_body_bytes"]
    try:
        check_content_type(request.headers.get("Content-Type"))
        # The body is read already (pyramid_retry makes it seekable before any view runs), so
        # what bounds the memory is waitress's max_request_body_size in receiver.ini; this is
        # the receiver's own, smaller limit, the same for a Content-Length and a chunked body.
        body = request.body
        if len(body) > limit:
            raise Invalid(f"the body is larger than {limit} bytes", status=413)
        records = parse_batch(body, request.registry.settings["receiver.max_records"])
    except Invalid as exc:
        request.response.status_int = exc.status
        return exc.as_json()
    batch_uuid = context.accept(records, utcnow())
    new, sent = context.batches[batch_uuid].new_records, records_word(len(records))
    line = f"{request_line(request)}: stored batch {batch_uuid}, {sent}, {new} new"
    # once stored: not for an attempt whose commit conflicted (rerun) or failed (an error view)
    request.tm.get().addAfterCommitHook(lambda committed: committed and log.info(line))
    return {"uuid": batch_uuid}


@view_config(context=Receiver, name="submit", renderer="json")
def submit_takes_post(context, request):
    request.response.status_int = 405
    request.response.allow = ("POST",)
    return {"error": "POST a JSON array of records to /submit"}


@view_config(context=Receiver, request_method="GET", renderer="json")
@view_config(context=Receiver, name="stats", request_method="GET", renderer="json")
def stats(context, request):
    return context.stats()


# No request_method, as submit_takes_post: Pyramid tries the view with more predicates first,
# so this one gets only the methods `stats` does not take (they were a 404, "nothing here").
@view_config(context=Receiver, renderer="json")
@view_config(context=Receiver, name="stats", renderer="json")
def stats_take_get(context, request):
    request.response.status_int = 405
    # Pyramid's request_method="GET" takes HEAD too (WebOb answers it without the body)
    request.response.allow = ("GET", "HEAD")
    return {"error": f"GET /{request.view_name} for the counts; POST batches to /submit"}


@notfound_view_config(renderer="json")
def not_found(request):
    request.response.status_int = 404
    # an answer is not as big as the request line is long (waitress takes 60 KB of it): each
    # is cut as every value is, with its length, and unquoted, as a log's request line is
    method, path = quoted(request.method, SHOWN, mark=""), quoted(request.path, SHOWN, mark="")
    return {"error": f"nothing here: {method} {path}; POST batches to /submit"}


@exception_view_config(HTTPBadRequest, renderer="json")
def bad_request(exc, request):
    request.response.status_int = 400
    return {"error": exc.detail}


# Error views: pyramid_tm aborts (nothing of the batch is stored), and the sender keeps its
# records pending for the next try. retryable_error=False: a conflict that pyramid_retry will
# rerun (batches are stored one at a time, so only another process on the same database can
# cause one) is none of their business.
@exception_view_config(ConflictError, retryable_error=False, renderer="json")
def still_conflicting(exc, request):
    lost = lost_postgresql_server_behind(exc)  # RelStorage's conflict for a commit that waited
    if lost is not None:  # for a lock as its server went: that lost server's answer
        return database_unavailable(lost, request)
    log.warning("%s gave up: conflicting writes on every attempt", request_line(request))
    request.response.status_int = 503
    return {"error": "the receiver is busy; nothing was stored, send the batch again later"}


@exception_view_config(GenerationError, renderer="json")
def database_of_another_generation(exc, request):
    """Another process (a newer receiver) has evolved the database since this one started."""
    log.error("%s refused: %s", request_line(request), exc)
    request.response.status_int = 503
    return {"error": f"nothing was stored: {exc}"}


@exception_view_config(ClientDisconnected, renderer="json")
def database_unavailable(exc, request):
    """The database's server cannot be reached: ZEO's, or RelStorage's PostgreSQL server. One
    line in the log. As for the app's pages (fftelemetry.views.errors), a ZEO server's request
    is not rerun while the server is away: each rerun waited its wait_timeout again (in a load,
    or a failed commit's abort), holding every other batch behind it (one at a time) for
    retry.attempts waits, as long as a sender waits for an answer (30 s). One that fails as the
    server comes back is rerun. psycopg2's OperationalError of a server that answered (a
    statement timeout, a deadlock) is no lost server: the generic 500, with its traceback.
    One lost in the commit's second phase (in_second_phase) may have stored the batch: the
    answer says so, and it is not rerun (a batch sent again is counted once all the same)."""
    lost = lost_server(exc, request)
    if lost is None:
        return failed(exc, request)
    lost.log_if_last(log, "nothing was stored")
    request.response.status_int = 503
    request.response.retry_after = 30
    if lost.saved_or_not:
        return {
            "error": "the receiver's database server went away as the batch was being stored: "
            "it may have been stored or not; send the batch again later (its records are "
            "counted once)"
        }
    return {
        "error": "the receiver's database cannot be reached; nothing was stored, send the "
        "batch again later"
    }


for error in POSTGRESQL_ERRORS:  # as stacked decorators would; none without the postgresql extra
    exception_view_config(error, renderer="json")(database_unavailable)


# ZEO's client raises its server's OSError as a ServerException (failures.server_os_error)
@exception_view_config(OSError, renderer="json")
@exception_view_config(ServerException, renderer="json")
def no_room(exc, request):
    """A write the disk refused (full, a file size limit, a quota: is_no_room), here or on the
    ZEO or PostgreSQL server: one line, no traceback, as the app's "Not saved" page has, since
    it is no bug.
    507 Insufficient Storage (RFC 4918); the sender keeps the batch pending, as for any answer
    but a 200, and sends it again on its next run. Any other OSError is the generic 500's."""
    if not is_no_room(exc):
        return failed(exc, request)
    error = shown(what_went_wrong(exc), LOGGED_CHARS)
    log.warning("%s not stored, no room: %s", request_line(request), error)
    request.response.status_int = 507
    return {
        "error": f"the receiver has no room to store the batch ({why_not_written(exc)}); nothing "
        "was stored, send the batch again later"
    }


for error in POSTGRESQL_NO_ROOM:  # before psycopg2's OperationalError, which it is
    exception_view_config(error, renderer="json")(no_room)


@exception_view_config(Exception, retryable_error=False, renderer="json")
def failed(exc, request):
    """A bug or a storage failure."""
    log.error("%s failed", request_line(request), exc_info=exc)
    request.response.status_int = 500
    return {"error": "the receiver failed; nothing was stored, send the batch again later"}
