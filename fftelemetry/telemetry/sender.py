"""Sending pending records to the receiver: the one code path behind `fftelemetry cron` and the
admin's "submit now" button.

A batch is read and its transaction ended *before* the POST, and marked submitted in a new
transaction *after* the receiver's acknowledgement. A crash in between leaves the batch pending, so
it is sent again; the receiver keys records by their id and stores each once. So the worst case is
a duplicate POST, never a record marked sent that the receiver did not acknowledge.

Retries: urllib3 retries connection errors only (nothing has reached the receiver yet). A POST that
was sent is never retried within a run, although it would be harmless (the record ids make it
idempotent): a receiver that is slow or failing is better left alone until the next run (the next
daily cron, or the next click) than hammered.
"""

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry
from ZODB.POSException import ConflictError

from .. import __version__, catalog
from ..failures import CANNOT_WRITE, why_not_written
from ..resources import telemetry_store_in
from ..resources.store import SubmissionResult, utcnow
from ..scripting import own_connection

log = logging.getLogger(__name__)


def _not_a_retry_notice(record):
    # urllib3 warns on each connection retry; our one WARNING line after the last try says it.
    return not record.getMessage().startswith("Retrying (")


logging.getLogger("urllib3.connectionpool").addFilter(_not_a_retry_notice)

# What a commit can fail with, retries spent: the next run re-sends (the receiver counts each
# record once).
NOT_WRITTEN = (ConflictError, *CANNOT_WRITE)
LOGGED_BODY_CHARS = 300
CONNECT_RETRIES = 2
TRANSACTION_ATTEMPTS = 3
TELEMETRY_OFF = "telemetry is off"
# Records sent between two flushes of the connection's cache: often enough to bound memory,
# rarely enough that reloading the trees' inner nodes costs nothing worth measuring.
FLUSH_CACHE_EVERY = 10_000


@dataclass(frozen=True)
class Outcome:
    sent: int
    status: int | None
    uuid: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None

    def message(self) -> str:
        if self.error == TELEMETRY_OFF:
            return "Telemetry is off: nothing was sent."
        if self.ok and not self.sent:
            return "Nothing to send: there are no pending records."
        if self.ok:
            return f"Sent {records_word(self.sent)}; the receiver's reference is {self.uuid}."
        if not self.sent:
            # a batch the receiver acknowledged (it has a uuid) but that could not be marked
            nothing = "Nothing was sent" if self.uuid is None else "Nothing was marked as sent"
            return f"{nothing}: {self.error}. The records stay pending for the next try."
        return (
            f"Sent {records_word(self.sent)}, then the submission failed: {self.error}. "
            "The other records stay pending for the next try."
        )


def records_word(count):
    return f"{count} record" if count == 1 else f"{count} records"


class SubmissionFailed(Exception):
    """An expected failure of one POST; its message is one line for the operator."""

    def __init__(self, reason, status=None):
        super().__init__(reason)
        self.status = status


def submit_pending(db, settings, *, now=None) -> Outcome:
    """Send every pending record, oldest first, one POST and one transaction per batch; stop at
    the first failure, and keep the run in the submission log unless there was nothing to send
    (and nothing to set right).
    Never sends anything while telemetry is off."""
    if not settings.send_telemetry:
        return Outcome(sent=0, status=None, uuid=None, error=TELEMETRY_OFF)
    now = now or utcnow()
    with own_connection(db) as (tm, conn):
        outcome = _send_batches(conn, tm, settings, now)
        _log_run(tm, conn, settings, outcome, now)
    return outcome


def _send_batches(conn, tm, settings, now):
    """POST batch after batch, pipelined: while the receiver works on one batch, the batch before
    it is marked here and the one after it read and encoded. (In turn, the two sides managed
    16,500 records/s through the real receiver.) Still one POST and one transaction a batch, each
    marked only after its own acknowledgement, oldest first; the first failure stops the run, and
    a batch acknowledged but not marked is simply re-sent next time (the receiver counts it once).
    """
    sent, status, batch_uuid = 0, None, None
    with make_session() as session, ThreadPoolExecutor(1, "telemetry-post") as poster:

        def prepare(after=None):
            batch, refused = _read_batch(conn, tm, settings.batch_size, after)
            if refused:
                _discard(tm, conn, refused)
            return batch, encode([record for _, record in batch])

        batch, body = prepare()
        in_flight = poster.submit(_post, session, settings, body) if batch else None
        following, following_body = prepare(after=batch[-1][0]) if batch else ([], None)
        while in_flight is not None:
            try:
                status, batch_uuid = in_flight.result()
            except SubmissionFailed as exc:
                log.warning("Telemetry submission failed: %s; the records stay pending.", exc)
                return Outcome(sent=sent, status=exc.status, uuid=None, error=str(exc))
            next_in_flight = None
            if following:
                next_in_flight = poster.submit(_post, session, settings, following_body)
            try:
                _mark(tm, conn, [seq for seq, _ in batch], batch_uuid, now)
            except NOT_WRITTEN as exc:
                reason = (
                    f"a batch was sent but could not be marked ({why_not_written(exc)}); "
                    "it will be re-sent"
                )
                log.warning("Telemetry submission failed: %s.", reason)
                return Outcome(sent=sent, status=status, uuid=batch_uuid, error=reason)
            sent += len(batch)
            if sent // FLUSH_CACHE_EVERY > (sent - len(batch)) // FLUSH_CACHE_EVERY:
                conn.cacheMinimize()  # memory stays flat however many records are sent
            batch, in_flight = following, next_in_flight
            following, following_body = prepare(after=batch[-1][0]) if batch else ([], None)
    return Outcome(sent=sent, status=status, uuid=batch_uuid, error=None)


def _read_batch(conn, tm, size, after=None):
    with tm:  # read-only: ended before the POST, so no transaction spans the network
        return next_batch(_store(conn), size, after)


def next_batch(store, size, after=None):
    """The next batch to send (pending records above the sequence `after`, oldest first) and,
    apart, the pending records met on the way that this version's catalog refuses."""
    refused = []
    while raw := store.pending_batch(size, after=after):
        batch = []
        for seq, record in raw:
            (batch if sendable(record) else refused).append((seq, record))
        if batch:
            return batch, refused
        after = raw[-1][0]
    return [], refused


def sendable(record):
    """Whether this version's catalog allows the record. Each was checked when collected, but an
    upgrade may have dropped a key or narrowed its values (a locale Babel no longer knows):
    such a record is never sent, and left pending it would stop every submission after it."""
    try:
        entry, _ = catalog.validate(record.key, record.value)
    except catalog.CatalogError:
        return False
    return entry.type == record.type


def _discard(tm, conn, refused):
    try:
        _write(tm, conn, lambda store: store.discard_pending([seq for seq, _ in refused]))
    except NOT_WRITTEN:
        return  # not sent either way; the next run discards them
    keys = sorted({record.key for _, record in refused})
    log.warning(
        "Discarded %s that this version may not send (%s): telemetry's catalog no longer "
        "allows them.", records_word(len(refused)), ", ".join(keys),
    )


def encode(records):
    """The POST body for `records`: a compact JSON array of their payloads."""
    return json.dumps([record.payload() for record in records], separators=(",", ":"))


def pending_bodies(db, batch_size):
    """The POST bodies a submission would send now, oldest first; reads, changes nothing."""
    with own_connection(db) as (tm, conn):
        after = None
        while True:
            batch, refused = _read_batch(conn, tm, batch_size, after)
            if not batch:
                return
            yield encode([record for _, record in batch])
            # past the refused ones too, which a real run discards: the same batches follow
            after = max(batch[-1][0], refused[-1][0]) if refused else batch[-1][0]
            conn.cacheGC()


def _store(conn):
    return telemetry_store_in(conn.root())


def _write(tm, conn, change):
    """change(store) in a transaction of its own; a conflict is retried, then re-raised."""
    for attempt in tm.attempts(TRANSACTION_ATTEMPTS):
        with attempt:
            change(_store(conn))


def _mark(tm, conn, seqs, batch_uuid, now):
    _write(tm, conn, lambda store: store.mark_submitted(seqs, batch_uuid, now))


def _log_run(tm, conn, settings, outcome, now):
    result = SubmissionResult(
        at=now, sent=outcome.sent, status=outcome.status, uuid=outcome.uuid, error=outcome.error
    )

    def log_it(store):
        # A run that found nothing to send is no submission: logged, it would hide the last
        # real one on the status page and put the next one off by a week. Unless the last one
        # failed and its records are gone since (deleted, discarded): then all is well again.
        last = store.last_submission()
        if outcome.sent or not outcome.ok or (last is not None and not last.ok):
            store.log_submission(result, keep=settings.submission_log_size)

    try:
        _write(tm, conn, log_it)
    except NOT_WRITTEN as exc:
        log.warning("Telemetry submission log not updated: %s.", why_not_written(exc))


def make_session():
    """A requests Session (a context manager that closes its connections) that retries failed
    connections, only those: nothing has reached the receiver then."""
    retry = Retry(
        total=CONNECT_RETRIES,
        connect=CONNECT_RETRIES,
        read=0,
        status=0,
        other=0,
        redirect=0,
        backoff_factor=0.2,
        raise_on_status=False,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.headers.update(
        {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"fftelemetry/{__version__}",
        }
    )
    return session


def _post(session, settings, body):
    """POST one batch; (status, uuid) on acknowledgement, else SubmissionFailed."""
    url = settings.telemetry_url + "/submit"
    started = time.monotonic()
    try:
        response = session.post(
            url,
            data=body,
            timeout=(settings.connect_timeout, settings.read_timeout),
            allow_redirects=False,
        )
    except requests.ConnectTimeout:
        raise SubmissionFailed(
            f"connecting to {url} timed out after {settings.connect_timeout:g}s"
        ) from None
    except requests.ReadTimeout:
        raise SubmissionFailed(no_answer(url, time.monotonic() - started, settings)) from None
    except requests.ConnectionError:
        raise SubmissionFailed(
            f"cannot connect to {url} (tried {CONNECT_RETRIES + 1} times)"
        ) from None
    except requests.RequestException as exc:
        raise SubmissionFailed(f"the request to {url} failed ({type(exc).__name__})") from None
    log.info("Result of submission [%s]: %s", response.status_code, _shown(response.text))
    if response.status_code != 200:
        raise SubmissionFailed(
            f"the receiver answered HTTP {response.status_code}{_their_reason(response)}",
            response.status_code,
        )
    try:
        answer = response.json()
    except (ValueError, RecursionError):
        raise SubmissionFailed("the receiver's answer is not JSON", 200) from None
    if not isinstance(answer, dict) or not isinstance(answer.get("uuid"), str):
        raise SubmissionFailed("the receiver's answer holds no uuid", 200)
    try:
        # Anything else that answers 200 with JSON (a wrong URL, a proxy's page) has not
        # stored the batch: only a real uuid marks records submitted.
        return 200, str(uuid.UUID(answer["uuid"]))
    except ValueError:
        raise SubmissionFailed("the receiver's answer holds no valid uuid", 200) from None


def no_answer(url, waited, settings):
    """A read timeout, naming the timeout that ran out (the one nearer the time waited): a TLS
    handshake's is the connect timeout (an https:// URL for a plain-HTTP receiver waits so)."""
    connect, read = settings.connect_timeout, settings.read_timeout
    if connect == read or abs(waited - read) <= abs(waited - connect):
        return f"no answer from {url} within {read:g}s"
    said = f"no answer from {url} within {connect:g}s"
    if url.startswith("https://"):
        said += " (the TLS handshake got no answer: does the receiver speak https?)"
    return said


def _their_reason(response):
    """": <the receiver's JSON error>" (ours names the record and field), or nothing."""
    try:
        error = response.json().get("error")
    except (ValueError, RecursionError, AttributeError):
        return ""
    return f": {_shown(error)}" if isinstance(error, str) else ""


def _shown(text):
    """A receiver's body for the log: on one line and cut to a sane length."""
    cut = text[:LOGGED_BODY_CHARS].replace("\r", "\\r").replace("\n", "\\n")
    return cut if len(text) <= LOGGED_BODY_CHARS else f"{cut}... ({len(text)} characters)"
