"""`fftelemetry cron`: meant for a daily crontab line; deletes the submitted records older than
`fftelemetry.keep_submitted_days` (telemetry on or off), then submits when a submission is due.

Due means: never submitted, the last attempt failed (so a failure is retried the next day, not a
week later), or the last success is `fftelemetry.interval_days` old. While telemetry is off, it
notes its run in the store (see note_off). Exit status: 0 sent, nothing due or telemetry off; 1
the submission failed (the records stay pending), or the deleting (or, while off, the note) could
not write (what it had deleted stays deleted, and nothing is sent). A submission stopped by Ctrl-C
or SIGTERM is kept in the submission log too (log_stopped), then main exits 130 or 143.
"""

import logging

from pyramid_zodbconn import get_connection

from ..resources import telemetry_store
from ..resources.store import utcnow
from ..scripting import request_environment, run_in_transaction, zeo_server_away
from ..telemetry.retention import ExpiryStopped, expire_submitted
from ..telemetry.sender import (
    SubmissionInterrupted,
    log_stopped_run,
    pending_bodies,
    records_word,
    submit_pending,
)
from ..telemetry.status import days_word, format_time, is_due, next_submission_due
from .errors import cannot_write as rolled_back
from .stopping import Terminated

HELP = (
    "submit pending telemetry records when a submission is due, and delete submitted ones "
    "older than fftelemetry.keep_submitted_days (run it daily)"
)

log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument("--force", action="store_true", help="submit now, due or not")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the JSON that would be sent (one POST body a line) and change nothing "
        "(nor delete old submitted records: their count is logged)",
    )


def writes(args):
    """A dry run only reads. A real run deletes, notes and marks what it sent: on a read-only
    database it is refused before it sends anything (see main), which it would send again on
    every run, unable to mark it."""
    return not args.dry_run


def run(registry, args):
    settings = registry.app_settings
    # Deleting is neither collecting nor sending: an operator who switched telemetry off still
    # wants what was sent gone.
    expire(registry, settings.keep_submitted_days, args.dry_run)
    if not settings.send_telemetry:
        log.info("Telemetry is off (%s): nothing to submit.", settings.send_telemetry_source)
        if not args.dry_run:
            note_off(registry)
        return 0
    # cron's environment is not the web server's: say which setting switched it on here
    log.info("Telemetry is on (%s).", settings.send_telemetry_source)
    with request_environment(registry) as env:
        db = get_connection(env["request"]).db()
        store = telemetry_store(env["request"])
        next_due = next_submission_due(store, settings.interval_days)
    if not (is_due(next_due) or args.force):
        log.info(
            "Not due: the next submission is due %s (--force submits now).", format_time(next_due)
        )
        return 0
    if args.dry_run:
        for body in pending_bodies(db, settings.batch_size):
            print(body)
        return 0
    try:
        outcome = submit_pending(db, settings)
    except SubmissionInterrupted as stopped:
        log_stopped(registry, db, settings, stopped)
        raise  # main says it in one line, and exits 130 or 143
    if outcome.server_lost:  # for main, which then writes no more (database_server_lost)
        registry.database_server_lost = True
    if outcome.ok:
        log.info(outcome.message())
    elif outcome.server_lost:  # the submission log could not keep the run: cron's last line
        log.warning(lost_run(outcome))
    return 0 if outcome.ok else 1


def lost_run(outcome):
    """What the submission log would have kept of a failed run that lost the database server:
    how far it got. Not outcome.message(), whose reason the sender's line above has said."""
    done = f"sent and marked {records_word(outcome.sent)}"
    if outcome.marked_or_not:  # the sender's line says the last batch's mark may be saved
        done = f"{done}, and maybe the batch it was marking"
    elif not outcome.sent:
        done = "marked no record as sent"
    return f"This submission {done}; the records not marked stay pending for the next try."


def log_stopped(registry, db, settings, stopped):
    """The stopped run in the submission log, as a failed one: the next run is due at once, and
    the run moves no overdue time (its records sent are sent, the rest wait as before). Another
    stop does not cut this write short (stopping.Stops: one is enough). Not tried with the ZEO
    server away: it would wait its wait_timeout, only to fail; nor with the server the run's
    end found lost (a PostgreSQL server's: see submit_pending)."""
    terminated = isinstance(stopped.__cause__, Terminated)
    how = "stopped by SIGTERM" if terminated else "interrupted (Ctrl-C)"
    away = "the ZEO server cannot be reached" if zeo_server_away(registry) else None
    log_stopped_run(db, settings, stopped, how, server_lost=stopped.server_lost or away)


def expire(registry, keep_days, dry_run):
    expired = expire_submitted(registry, keep_days, dry_run=dry_run)
    if not expired:
        return  # quiet: a daily line saying nothing happened is noise in cron.log
    older = f"{records_word(expired)} submitted more than {days_word(keep_days)} ago"
    if dry_run:
        log.info("Would delete %s (a dry run deletes nothing).", older)
    else:
        log.info("Deleted %s (fftelemetry.keep_submitted_days).", older)


def note_off(registry):
    """Note this run in the store while records are pending, so that switching telemetry back on
    gives cron its usual days to send them (status.overdue_since) rather than finding them overdue
    at once. A small write a day while off, none with nothing pending; no collection contends for
    the store meanwhile, telemetry being off."""

    def note(env):
        store = telemetry_store(env["request"])
        if len(store.pending):
            store.mark_cron_ran_off(utcnow())

    run_in_transaction(registry, note)


def cannot_write(exc):
    """What main says when a write fails. The deleting commits a chunk at a time, so "rolled
    back" alone would hide the records already gone: it says how many."""
    if isinstance(exc, ExpiryStopped):
        return (
            f"deleting old submitted records stopped after {records_word(exc.expired)} "
            f"({exc.reason}); the others stay until the next run, and nothing was submitted"
        )
    return rolled_back(exc)
