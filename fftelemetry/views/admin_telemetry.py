"""The admin area's telemetry pages: the status page, the records page and its actions.

Every action that changes something is a POST with a CSRF token (Firefly III's were GET links a
prefetch could trigger) and redirects back with a flash saying what actually happened.
"""

import functools
import json
import re
import threading

from pyramid.httpexceptions import HTTPBadRequest, HTTPSeeOther
from pyramid.renderers import render
from pyramid.response import Response
from pyramid.view import view_config
from pyramid_zodbconn import get_connection
from ZEO.Exceptions import ClientDisconnected

from .. import catalog
from ..failures import READ_ONLY
from ..resources import Admin, RecordsView, SubmissionsView, TelemetryAdmin, telemetry_store_in
from ..resources.store import ALL, FILTERS, KEY_MAX, KEY_MIN, PENDING, SUBMITTED
from ..scripting import is_read_only, own_connection, zeo_server_away
from ..telemetry.deleting import deleted_all, deleted_submitted
from ..telemetry.sender import encode, ended, next_batch, record_noun, submit_pending
from ..telemetry.status import format_time as when
from ..telemetry.status import status_facts, submission_log
from .errors import database_unavailable_page

SHORT_VALUE = 60  # characters shown before a value folds into <details>
EXPORT_CHUNK = 1000
# As the page's own links write a key: int() would take " 7", "+7", "1_000" and other scripts'
# digits too.
WHOLE_NUMBER = re.compile(r"-?[0-9]+")

SOURCES = {
    "environment": "the SEND_TELEMETRY environment variable",
    ".env": "SEND_TELEMETRY in the .env file",
    "ini": "fftelemetry.send_telemetry in the ini file",
    "default": "the default: off unless you switch it on",
    "DO_NOT_TRACK": "DO_NOT_TRACK, which turns it off whatever else is set",
}


def shown(value):
    """A record's value as text, and whether it is long enough to fold away."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text, len(text) > SHORT_VALUE


@functools.cache
def catalog_table():
    """The catalog as an HTML table. It is fixed for the life of the process, so it is rendered
    once rather than on every view of the status page (about a tenth of the page's cost)."""
    return render("fftelemetry:templates/catalog_table.pt", {"catalog": catalog.ENTRIES})


def submission_rows(runs):
    """The cells of the submission log's table (submissions_table.pt), a tuple a run. Its row
    then looks up four names where it looked up `run` six times, five of its attributes and
    `when`: each a Python call or two in Chameleon, ~5 k instructions a row less."""
    return [
        (when(run.at), run.sent, run.status, run.uuid if run.error is None else run.error)
        for run in runs
    ]


@view_config(context=Admin, request_method="GET")
def admin_area(context, request):
    """`/admin`: the admin area has one section so far, so it opens there."""
    return HTTPSeeOther(request.resource_url(context["telemetry"]))


@view_config(
    context=TelemetryAdmin,
    request_method="GET",
    renderer="fftelemetry:templates/telemetry_status.page",
)
def status(context, request):
    settings = request.app_settings
    facts = status_facts(
        context.store, settings, read_only=is_read_only(get_connection(request).db())
    )
    return {
        "page_title": "Telemetry",
        "facts": facts,
        "source": SOURCES.get(settings.send_telemetry_source, settings.send_telemetry_source),
        "env_file": settings.env_file,
        "set_in_environment": settings.switch_in_environment,
        "do_not_track": settings.send_telemetry_source == "DO_NOT_TRACK",
        "catalog_table": catalog_table(),
        "when": when,
        "submission_rows": submission_rows(facts.submissions),
    }


@view_config(
    context=SubmissionsView,
    request_method="GET",
    renderer="fftelemetry:templates/telemetry_submissions.page",
)
def submissions(context, request):
    """Every submission the log keeps: the status page lists the newest few."""
    settings = request.app_settings
    runs = submission_log(context.store, settings)[0]
    return {
        "page_title": "Submission log",
        "runs": runs,
        "submission_rows": submission_rows(runs),
        "log_size": settings.submission_log_size,
        "status_url": request.resource_url(context.__parent__),
    }


# -- the records page -----------------------------------------------------------------------


def sequence_param(request, name):
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return None
    if not WHOLE_NUMBER.fullmatch(raw):
        raise HTTPBadRequest(f"{name} must be a whole number")
    # The trees' keys are 64-bit, 19 digits at most; int() refuses more than 4,300.
    if len(raw.removeprefix("-")) > 19 or not KEY_MIN <= int(raw) <= KEY_MAX:
        raise HTTPBadRequest(f"{name} is out of range")
    return int(raw)


def filter_param(request):
    which = request.GET.get("show", ALL)
    if which not in FILTERS:
        raise HTTPBadRequest(f"show must be one of {', '.join(FILTERS)}")
    return which


@view_config(
    context=RecordsView,
    request_method="GET",
    renderer="fftelemetry:templates/telemetry_records.page",
)
def records(context, request):
    store, which = context.store, filter_param(request)
    after, before = sequence_param(request, "after"), sequence_param(request, "before")
    page = store.page_above(which, after) if after is not None else store.page(which, before=before)

    def url(**query):
        return request.resource_url(context, query={"show": which, **query})

    newer = older = None
    if page:
        first, last = page[0][0], page[-1][0]
        newer = url(after=first) if store.has_newer(which, first) else None
        older = url(before=last) if store.has_older(which, last) else None
    return {
        "page_title": "Telemetry records",
        "counts": store.counts(),
        "which": which,
        "filters": [(name, url(show=name)) for name in FILTERS],
        "page": [record for _, record in page],
        # Away from the newest page, or on an empty page past either end.
        "newest_url": url() if newer or (not page and (after, before) != (None, None)) else None,
        "newer_url": newer,
        "older_url": older,
        "enabled": request.app_settings.send_telemetry,
        "batch_size": request.app_settings.batch_size,
        "when": when,
        "shown": shown,
        "noun": record_noun,
    }


def back_to_records(request, context):
    return HTTPSeeOther(request.resource_url(context))


# -- actions --------------------------------------------------------------------------------


ALREADY_RUNNING = (
    "A submission is already running on this server; this press sent nothing more. Its result "
    "will be in the submission log on the status page when it ends."
)


NOT_SENT_READ_ONLY = (
    f"Not sent: {READ_ONLY}, so the records sent could not be marked as sent, and would be sent "
    "again at every press. Send them from the site on the writable database (its daily "
    "fftelemetry cron does)."
)


@view_config(context=RecordsView, name="submit", request_method="POST")
def submit(context, request):
    """Send pending records now. The sender commits in transactions of its own, so this view
    writes nothing to the database itself; the redirect lets the next GET see the result.

    One at a time in this app: a second press (or a second admin) would send the same pending
    batches again in parallel, holding another worker thread and more of the database's
    connections for as long, only for the receiver to drop them as duplicates. So it does not
    wait either: it says so and returns. A run in another process (cron's) is not excluded; two
    runs at once are correct anyway (see the sender), this only avoids the waste.

    With the ZEO server away it sends nothing: the 503 page at once, as for any request that
    meets it (what it sent it could not mark, after a wait for the server). A server lost during
    the run is a 503 page too, with the run's own words: how many records it sent and marked, and
    what became of the rest. "Nothing was changed" would not be true of the records marked, nor
    of the receiver, and the records page it would redirect to needs the lost server."""
    settings = request.app_settings
    running = request.registry.submission_running
    db = get_connection(request).db()
    if not settings.send_telemetry:  # the sender refuses too; this says why in plain words
        request.session.flash(f"Not sent: {why_off(settings)}", "error")
    elif zeo_server_away(request.registry):
        raise ClientDisconnected("the ZEO server is away")  # fftelemetry.views.errors' 503
    elif is_read_only(db):  # a replica: what it sent it could not mark, and would send again
        request.session.flash(NOT_SENT_READ_ONLY, "error")
    elif not running.acquire(blocking=False):
        request.session.flash(ALREADY_RUNNING, "info")
    else:
        try:  # released whatever happens: a request pyramid_retry reruns must find it free
            outcome = submit_pending(db, settings)
        finally:
            running.release()
        if outcome.server_lost:
            return database_unavailable_page(request, lost_during_submission(outcome))
        request.session.flash(outcome.message(), "info" if outcome.ok else "error")
    return back_to_records(request, context)


NEXT_TRY = (
    "the next fftelemetry cron run, or press \"Submit pending records now\" again once the "
    "server is back; if it keeps happening, tell the administrator."
)


def lost_during_submission(outcome):
    """The 503 page's words for a run that lost the database server: what it sent and marked,
    and what is left to do. A run that sent everything lost it only as it ended (the log of the
    run, or its connection's closing abort): nothing is left to send again."""
    if outcome.ok:
        return (
            f"The database server went away as the submission ended. {outcome.message()} "
            "Nothing is left to send again; the submission log on the status page may not show "
            "this submission."
        )
    if not outcome.sent and not outcome.marked_or_not:
        # Nothing marked: one statement, where the run's message and this page's each said what
        # was sent and what stays pending
        if outcome.batch_may_be_received:  # acknowledged but not marked, or cut in flight
            what = "A batch was sent but not marked as sent: the database server went away"
        else:  # the POST failed; the run's end met the lost server
            what = f"Nothing was sent: {ended(outcome.error)} The database server went away too"
        return (
            f"{what} ({outcome.server_lost}), so all the records stay pending and go with "
            f"{NEXT_TRY}"
        )
    return (
        f"The database server went away during the submission. {outcome.message()} What is "
        f"still pending goes with {NEXT_TRY}"
    )


def why_off(settings):
    if settings.send_telemetry_source != "DO_NOT_TRACK":
        return "telemetry is off. Set SEND_TELEMETRY=true to allow sending."
    where = (
        "this server's environment"
        if settings.switch_in_environment
        else f"the .env file ({settings.env_file})"
    )
    return (
        f"DO_NOT_TRACK is set in {where}, which turns telemetry off whatever else is set. "
        "Remove it to allow sending."
    )


def confirmed(request, count):
    """The box ticked, for as many records as there are: the form says how many the page
    showed, and records that came since (a registration, a cron run) were not agreed to."""
    if request.POST.get("confirm") != "yes":
        request.session.flash("Nothing deleted: tick the box to confirm first.", "error")
        return False
    if request.POST.get("shown") != str(count):
        request.session.flash(
            f"Nothing deleted: the records changed since the page was shown (now {count}). "
            "Check them and confirm again.",
            "error",
        )
        return False
    return True


@view_config(context=RecordsView, name="delete-all", request_method="POST")
def delete_all(context, request):
    if confirmed(request, context.store.counts()[ALL]):
        request.session.flash(deleted_all(context.store.delete_all()), "info")
    return back_to_records(request, context)


@view_config(context=RecordsView, name="delete-submitted", request_method="POST")
def delete_submitted(context, request):
    if confirmed(request, context.store.counts()[SUBMITTED]):
        deleted = context.store.delete_submitted()
        pending = context.store.counts()[PENDING]
        request.session.flash(deleted_submitted(deleted, pending), "info")
    return back_to_records(request, context)


# -- JSON -------------------------------------------------------------------------------------


@view_config(context=RecordsView, name="preview", request_method="GET")
def preview(context, request):
    """The body the next POST to the receiver would carry: the oldest batch of pending records,
    serialised by the sender's own encoder."""
    batch, _ = next_batch(context.store, request.app_settings.batch_size)
    body = encode([record for _, record in batch])
    return Response(body, content_type="application/json", charset="utf-8")


def exported(record):
    return dict(
        record.payload(),
        submitted_at=record.submitted_at.isoformat() if record.submitted_at else None,
        submission_uuid=record.submission_uuid,
    )


def export_chunks(db, which):
    """Every record as a JSON array, newest first, a keyset page at a time. It runs after the
    request has ended, so it reads on a connection of its own (one consistent snapshot)."""
    with own_connection(db) as (_, conn):
        store = telemetry_store_in(conn.root())
        yield b"["
        separator, before = "\n", None
        while page := store.page(which, before=before, size=EXPORT_CHUNK):
            for _, record in page:
                yield (separator + json.dumps(exported(record))).encode()
                separator = ",\n"
            before = page[-1][0]
            conn.cacheGC()  # memory stays flat however many records there are
        yield b"\n]\n"


@view_config(context=RecordsView, name="export.json", request_method="GET")
def export(context, request):
    which = filter_param(request)
    response = Response(content_type="application/json", charset="utf-8")
    response.app_iter = export_chunks(get_connection(request).db(), which)
    response.content_disposition = f'attachment; filename="fftelemetry-{which}-records.json"'
    return response


def includeme(config):
    # Per app, not per module: two apps in one process (the tests) must not share it.
    config.registry.submission_running = threading.Lock()
