"""The receiver: a small Pyramid app of its own that accepts telemetry batches (`receiver.ini`).

POST /submit takes a JSON array of records, validates every field against the same catalog the
sending side collects by, stores the batch and answers `200 {"uuid": "<uuid4>"}`. GET / (or
/stats) shows counts. No sessions, no templates: JSON in, JSON out.
"""

import threading

from pyramid.config import Configurator
from pyramid.events import ContextFound, NewRequest
from pyramid.renderers import JSON

from .. import open_database, require_database
from ..request import no_subpath, reject_undecodable_address
from ..shutdown import close_on_exit
from .resources import GENERATIONS, root_factory

DEFAULT_MAX_RECORDS = 2000
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def _positive_int(settings, name, default):
    raw = str(settings.get(name, "") or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"fftelemetry receiver: {name}={raw!r} is not a number") from None
    if value < 1:
        raise SystemExit(f"fftelemetry receiver: {name}={raw!r} must be at least 1")
    return value


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


def main(global_config, **settings):
    require_database(settings, "fftelemetry receiver")
    settings.setdefault("tm.manager_hook", "pyramid_tm.explicit_manager")
    settings.setdefault("retry.attempts", "3")
    settings["receiver.max_records"] = _positive_int(
        settings, "receiver.max_records", DEFAULT_MAX_RECORDS
    )
    settings["receiver.max_body_bytes"] = _positive_int(
        settings, "receiver.max_body_bytes", DEFAULT_MAX_BODY_BYTES
    )
    with Configurator(settings=settings, root_factory=root_factory) as config:
        config.include("pyramid_retry")
        config.include("pyramid_tm")
        config.add_tween(
            "fftelemetry.receiver.one_batch_at_a_time", over="pyramid_tm.tm_tween_factory"
        )
        open_database(config, global_config, GENERATIONS, "fftelemetry receiver")
        close_on_exit(config.registry)
        # Compact JSON, so the sender's log line reads `{"uuid":"..."}`.
        config.add_renderer("json", JSON(separators=(",", ":")))
        config.add_subscriber(reject_undecodable_address, NewRequest)
        config.add_subscriber(no_subpath, ContextFound)
        config.scan(".views")
    return config.make_wsgi_app()
