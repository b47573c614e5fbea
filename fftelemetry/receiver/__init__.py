"""The receiver: a small Pyramid app of its own that accepts telemetry batches (`receiver.ini`).

POST /submit takes a JSON array of records, validates every field against the same catalog the
sending side collects by, stores the batch and answers `200 {"uuid": "<uuid4>"}`. GET / (or
/stats) shows counts. No sessions, no templates: JSON in, JSON out.
"""

import json
import threading

from pyramid.config import Configurator
from pyramid.events import ContextFound, NewRequest, NewResponse
from pyramid.renderers import JSON

from ..library_logs import quiet_lost_servers
from ..opening import open_database, require_database
from ..request import no_subpath, reject_undecodable_address
from ..settings import MAX_RETRY_ATTEMPTS, RETRY_ATTEMPTS, SettingsError, parse_number
from ..shown import shown
from ..shutdown import close_on_exit
from .resources import GENERATIONS, root_factory

PROGRAM = "fftelemetry receiver"  # the start of each line it stops with

# (default, least, most), read as the app reads its numbers: a most an operator could want (the
# sender's batch_size is at most 10,000 records; waitress's max_request_body_size in receiver.ini
# is what bounds the memory a body takes, 2 MiB there).
LIMITS = {
    "receiver.max_records": (2000, 1, 100_000),
    "receiver.max_body_bytes": (1024 * 1024, 1, 256 * 1024 * 1024),
    # pyramid_retry's, which asserted 0 away in a traceback
    RETRY_ATTEMPTS: (3, 1, MAX_RETRY_ATTEMPTS),
}


def one_batch_at_a_time(handler, registry):
    """A tween over pyramid_tm: the POSTs (batches) of this app store one at a time. Any two
    batches committed at once conflict, whatever their records (each appends past the last
    record, in the same last bucket of `records`: see Receiver), so all but one were rerun by
    pyramid_retry, and one rerun as the next batch came in lost again, until a busy sender got a
    503. One process owns the FileStorage, so a lock taken before the transaction begins keeps
    batches from ever conflicting; it costs no parallelism (parsing and storing hold the GIL,
    and waitress has read the body before the app runs)."""
    lock = threading.Lock()  # one per app: made when the app is

    def tween(request):
        if request.method != "POST":
            return handler(request)
        with lock:
            return handler(request)

    return tween


# What browsers are told of every answer, an error's too: each is the JSON it says it is, never
# sniffed as a page (a 404 repeats the address it was asked for) nor loaded as another site's
# script or stylesheet; opened all the same, it may load and run nothing, and be framed by no
# site (X-Frame-Options for browsers that predate frame-ancestors).
JSON_ONLY = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}


def json_only(event):
    """A NewResponse subscriber: JSON_ONLY on every answer."""
    event.response.headers.update(JSON_ONLY)


def readable_json(value, **options):
    """Compact JSON (no line breaks) in UTF-8, RFC 8259's: the "…" that marks a value cut in an
    error reads so in the sender's log line, where json's ensure_ascii wrote it \\u2026. What a
    terminal would act on (a C1 control, a right-to-left override, a lone surrogate, which UTF-8
    has no bytes for) keeps its escape: a curl of the answer shows it, not runs it."""
    text = json.dumps(value, ensure_ascii=False, **options)
    if not text.isprintable():  # only a string holds such a character: its escape is JSON too
        text = "".join(ch if ch.isprintable() else json.dumps(ch)[1:-1] for ch in text)
    return text.encode()


def main(global_config, **settings):
    require_database(settings, PROGRAM)
    settings.setdefault("tm.manager_hook", "pyramid_tm.explicit_manager")
    for name, bounds in LIMITS.items():
        try:
            settings[name] = parse_number(name, settings.get(name), *bounds)
        except SettingsError as exc:
            raise SystemExit(f"{PROGRAM}: {shown(exc)}") from None
    quiet_lost_servers()
    with Configurator(settings=settings, root_factory=root_factory) as config:
        config.include("pyramid_retry")
        config.include("pyramid_tm")
        config.add_tween(
            "fftelemetry.receiver.one_batch_at_a_time", over="pyramid_tm.tm_tween_factory"
        )
        open_database(config, global_config, GENERATIONS, PROGRAM)
        close_on_exit(config.registry)
        # Compact, so the sender's log line reads `{"uuid":"..."}`
        config.add_renderer("json", JSON(serializer=readable_json, separators=(",", ":")))
        config.add_subscriber(reject_undecodable_address, NewRequest)
        config.add_subscriber(no_subpath, ContextFound)
        config.add_subscriber(json_only, NewResponse)
        config.scan(".views")
    return config.make_wsgi_app()
