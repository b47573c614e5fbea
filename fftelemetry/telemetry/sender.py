"""Sending pending records to the receiver: the one code path behind `fftelemetry cron` and the
admin's "submit now" button.

A batch is read and its transaction ended *before* the POST, and marked submitted in a new
transaction *after* the receiver's acknowledgement. A crash in between leaves the batch pending, so
it is sent again; the receiver keys records by their id and stores each once. So the worst case is
a duplicate POST, never a record marked sent that the receiver did not acknowledge.

The POST itself, bounded in time and size, is `exchange.post_batch`.
"""

import json
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace

from transaction.interfaces import TransientError

from .. import catalog
from ..failures import (
    CANNOT_WRITE,
    NOT_WRITTEN,
    in_second_phase,
    is_server_lost,
    why_not_written,
)
from ..resources import telemetry_store_in
from ..resources.store import SubmissionResult, utcnow
from ..scripting import own_connection
from .exchange import SubmissionFailed, make_session, post_batch

log = logging.getLogger(__name__)

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
    # why_not_written of a database server lost as the run wrote: it is not asked again to log
    # the run (ZEO's abort of that write would wait its wait_timeout for the server once more)
    server_lost: str | None = None
    # the batch's mark failed in its commit's second phase (in_second_phase): it may be saved
    marked_or_not: bool = False
    # a batch was in flight as the run stopped, its POST cut (or just acknowledged): the receiver
    # may have it
    cut: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def batch_may_be_received(self) -> bool:
        """Of a failed run that marked nothing: whether the receiver took a batch (acknowledged,
        it has a uuid) or may have (one cut in flight), rather than none reaching it."""
        return self.uuid is not None or self.cut

    def message(self) -> str:
        if self.error == TELEMETRY_OFF:
            return "Telemetry is off: nothing was sent."
        if self.ok and not self.sent:
            return "Nothing to send: there are no pending records."
        if self.ok:
            return f"Sent {records_word(self.sent)}; the receiver's reference is {self.uuid}."
        error = ended(self.error)
        if not self.sent:
            if self.marked_or_not:  # its error says what may have become of the batch
                return f"{error[0].upper()}{error[1:]}"
            taken = self.batch_may_be_received
            nothing = "Nothing was marked as sent" if taken else "Nothing was sent"
            return f"{nothing}: {error} The records stay pending for the next try."
        rest = "The records not marked" if self.marked_or_not else "The other records"
        return (
            f"Sent {records_word(self.sent)}, then the submission failed: {error} "
            f"{rest} stay pending for the next try."
        )


def ended(reason):
    """`reason` as a sentence's end: a full stop, unless it ends with one or asks a question
    ("is …/submit the receiver's address?." was shown)."""
    return reason if reason.endswith((".", "?", "!")) else f"{reason}."


class SubmissionInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, in a console command) stopped the run of time `at` after `sent`
    records were sent and marked; the POST in flight was cut, and its batch and the rest stay
    pending. Not in the submission log: cron keeps it there (log_stopped_run), unless the
    database server was lost (`server_lost`, why_not_written's words)."""

    def __init__(self, sent, at):
        super().__init__(sent)
        self.sent, self.at = sent, at
        self.server_lost = None

    def __reduce__(self):  # as __init__ takes them, and server_lost, set after it
        return type(self), (self.sent, self.at), self.__dict__


@dataclass
class Tally:
    """How many records a run has marked, counted as each batch's mark commits."""

    sent: int = 0

    def add(self, marked):
        self.sent += marked


def records_word(count):
    return f"{count} {record_noun(count)}"


def record_noun(count):
    return "record" if count == 1 else "records"


def submit_pending(db, settings, *, now=None) -> Outcome:
    """Send every pending record, oldest first, one POST and one transaction per batch; stop at
    the first failure, and keep the run in the submission log unless there was nothing to send
    (and nothing to set right). A database server lost once the run has its outcome is said in
    it (server_lost), not raised, so that the run's words reach whoever pressed "Submit now".
    Never sends anything while telemetry is off."""
    if not settings.send_telemetry:
        return Outcome(sent=0, status=None, uuid=None, error=TELEMETRY_OFF)
    now = now or utcnow()
    outcome = None
    try:
        with own_connection(db) as (tm, conn):
            tally = Tally()
            try:
                outcome = _send_batches(conn, tm, settings, now, tally)
            except KeyboardInterrupt as exc:  # the POST in flight is cut on the way here (Poster)
                raise SubmissionInterrupted(tally.sent, now) from exc
            lost = _log_run(tm, conn, settings, outcome, now)
            if lost:  # ZEO's: its abort below does not ask the server, as RelStorage's does
                outcome = replace(outcome, server_lost=lost)
    except CANNOT_WRITE as exc:
        # The run's end, its connection's abort, met the lost server (RelStorage's asks it, ZEO's
        # does not): what the run sent and marked stands, and the run says it.
        stopped = exc.__context__
        if isinstance(stopped, SubmissionInterrupted) and is_server_lost(exc):
            # The stop ended the run, not the abort: the abort's error replaced it (exit status
            # 1, "could not write", what was sent and marked unsaid). Raised again, with the lost
            # server, which cron's log of the stopped run then does not try (log_stopped_run).
            stopped.server_lost = why_not_written(exc)
            raise stopped from stopped.__cause__
        if outcome is None or not is_server_lost(exc):
            raise
        return replace(outcome, server_lost=outcome.server_lost or why_not_written(exc))
    return outcome


def _send_batches(conn, tm, settings, now, tally):
    """POST batch after batch, pipelined: while the receiver works on one batch, the batch before
    it is marked here and the one after it read and encoded. (In turn, the two sides managed
    16,500 records/s through the real receiver.) Still one POST and one transaction a batch, each
    marked only after its own acknowledgement, oldest first; the first failure stops the run, and
    a batch acknowledged but not marked is simply re-sent next time (the receiver counts it once).
    `tally` counts the records marked, for a run that is stopped before it returns.
    """
    status, batch_uuid = None, None
    reference = None  # the uuid of the last batch this run marked: the one its message names
    with make_session() as session, Poster(session, settings) as poster:

        def prepare(after=None):
            batch, refused = _read_batch(conn, tm, settings.batch_size, after)
            if refused:
                _discard(tm, conn, refused)
            return batch, encode([record for _, record in batch])

        batch, body = prepare()
        in_flight = poster.submit(body) if batch else None
        while in_flight is not None:
            # the batch after the one in flight: for the first, as soon as it is sent; then just
            # after the mark of the batch before it (at the end of the previous turn)
            try:
                following, following_body = prepare(after=batch[-1][0])
            except CANNOT_WRITE as exc:
                return _next_not_read(exc, tally, status, reference)
            try:
                status, batch_uuid = in_flight.result()
            except SubmissionFailed as exc:
                log.warning("Telemetry submission failed: %s; the records stay pending.", exc)
                return Outcome(sent=tally.sent, status=exc.status, uuid=None, error=str(exc))
            next_in_flight = None
            if following:
                next_in_flight = poster.submit(following_body)
            try:
                # Another run ("submit now" during cron's) may have marked this batch already:
                # it counts as that run's, which sent it first.
                marked = _mark(tm, conn, [seq for seq, _ in batch], batch_uuid, now, tally)
            except NOT_WRITTEN as exc:
                why = why_not_written(exc)
                marked_or_not = in_second_phase(exc)  # pending or not, it is right either way
                # the batch after it, on its way meanwhile, is cut (Poster) and not marked either
                cut = next_in_flight is not None
                if marked_or_not:
                    reason = (
                        f"a batch was sent, which may have been marked as sent or not ({why}, as "
                        "the mark was being saved); if not, it will be re-sent"
                    )
                    if cut:
                        reason += ", and the batch sent after it will be in any case"
                else:
                    reason = f"a batch was sent but could not be marked ({why}); it will be re-sent"
                    if cut:
                        reason += ", as will the batch sent after it"
                log.warning("Telemetry submission failed: %s.", reason)
                return Outcome(
                    sent=tally.sent, status=status, uuid=batch_uuid, error=reason,
                    server_lost=why if is_server_lost(exc) else None, marked_or_not=marked_or_not,
                    cut=cut,
                )
            if marked:
                reference = batch_uuid
            if tally.sent // FLUSH_CACHE_EVERY > (tally.sent - marked) // FLUSH_CACHE_EVERY:
                conn.cacheMinimize()  # memory stays flat however many records are sent
            batch, in_flight = following, next_in_flight
    return Outcome(sent=tally.sent, status=status, uuid=reference, error=None)


def _next_not_read(exc, tally, status, reference):
    """The Outcome of a run whose read of the next batch failed (a CANNOT_WRITE: the database
    server lost, say) while a batch was in flight: what was marked stands, and the batch in
    flight is cut (Poster), to be re-sent."""
    why = why_not_written(exc)
    reason = (
        f"a batch was sent but not marked, as the next one could not be read ({why}); "
        "it will be re-sent"
    )
    log.warning("Telemetry submission failed: %s.", reason)
    return Outcome(
        sent=tally.sent, status=status, uuid=reference, error=reason,
        server_lost=why if is_server_lost(exc) else None, cut=True,
    )


class Poster:
    """post_batch in the background, as a Future, for one run: a daemon thread for each POST,
    not a ThreadPoolExecutor's, whose threads the process's exit waits for (a POST in flight
    held Ctrl-C of `fftelemetry cron`, and pserve's SIGTERM during "submit now", until its
    deadline, 46 s, 40 minutes at most). A POST still in flight as the run ends (Ctrl-C, a batch
    not marked) is cut, as at its deadline: no exchange goes on behind a run that has ended."""

    def __init__(self, session, settings):
        self.session, self.settings = session, settings
        self.last = None

    def submit(self, body):
        self.last = future = Future()
        future.set_running_or_notify_cancel()

        def post():
            try:
                future.set_result(post_batch(self.session, self.settings, body))
            except BaseException as exc:  # raised again by future.result(), in the run's thread
                future.set_exception(exc)

        threading.Thread(target=post, name="telemetry-post", daemon=True).start()
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.last is not None and not self.last.done():
            self.session.get_adapter(self.settings.telemetry_url).cut()


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
    """change(store) in a transaction of its own, and its result; a conflict is retried, then
    re-raised. Not tm.attempts: it retries every TransientError, and ZEO's ClientDisconnected
    is one too, but a lost server is no conflict that a rerun gets past. Each attempt waits up
    to the URI's wait_timeout for the server (in a load, or in the abort of a failed commit):
    three, marking and then logging the run, held an admin's "Submit now" (a worker thread) a
    minute."""
    for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
        try:
            with tm:
                return change(_store(conn))
        except BaseException as exc:
            tm.abort()  # as tm.attempts does; a failed commit is not aborted by `with tm`
            retried = isinstance(exc, TransientError) and not is_server_lost(exc)
            if not retried or attempt == TRANSACTION_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _mark(tm, conn, seqs, batch_uuid, now, tally):
    """Mark the batch; how many of its records were still pending to be marked, added to `tally`
    by the commit itself: a console command is stopped after a commit, not inside it
    (fftelemetry.cli.stopping), so a batch it marked is counted however soon it stops."""

    def mark(store):
        marked = store.mark_submitted(seqs, batch_uuid, now)
        tm.get().addAfterCommitHook(lambda committed: committed and tally.add(marked))
        return marked

    return _write(tm, conn, mark)


def _log_run(tm, conn, settings, outcome, now):
    """Keep the run in the submission log; why_not_written of a database server that write
    lost, for the run to say (Outcome.server_lost), else None."""
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

    if outcome.server_lost:
        not_logged(outcome.server_lost)
        return None  # said already
    try:
        _write(tm, conn, log_it)
    except NOT_WRITTEN as exc:
        why = why_not_written(exc)
        not_logged(why)
        if is_server_lost(exc):
            return why
    return None


def not_logged(why):
    """The one line for a run the submission log could not keep (`why`: why_not_written's)."""
    log.warning("Telemetry submission log not updated: %s.", why)


def log_stopped_run(db, settings, stopped, how, server_lost=None):
    """Keep the run SubmissionInterrupted `stopped` (`how`: "stopped by SIGTERM", say) in the
    submission log as a failed run, in a transaction of its own once the stop has let go of
    the run's: the status page then says why cron ended (a systemd timer's, each week), not
    only that submissions are overdue. A write that fails (a lost server, a full disk) is one
    WARNING line and loses nothing more; with `server_lost` it is not tried (see Outcome)."""
    error = f"{how} after {records_word(stopped.sent)} sent and marked; the rest stay pending"
    if server_lost:  # not even opened: a connection that cannot reach its server on opening
        # is left half open by ZODB (DB.close then failed with a KeyError traceback)
        not_logged(server_lost)
        return
    outcome = Outcome(sent=stopped.sent, status=None, uuid=None, error=error)
    try:
        with own_connection(db) as (tm, conn):
            _log_run(tm, conn, settings, outcome, stopped.at)
    except NOT_WRITTEN as exc:  # the connection's open or last abort (a lost PostgreSQL server)
        not_logged(why_not_written(exc))
