"""`fftelemetry status`: the facts of the admin's status page, as text, as JSON (--json), or as
one line and an exit status for a monitoring check (--check)."""

import json

from ZODB.POSException import StorageError

from ..failures import CANNOT_WRITE, is_server_lost, what_went_wrong
from ..resources import telemetry_store
from ..scripting import database, is_read_only, request_environment
from ..shown import shown
from ..telemetry.sender import records_word
from ..telemetry.status import RECENT_SUBMISSIONS, rfc3339, status_facts
from ..telemetry.status import format_time as _when
from .errors import Verdict
from .errors import cannot_write as default_cannot_write

HELP = (
    "show whether telemetry is on, the counts of pending and sent records, the last "
    "submissions, whether they are overdue, how long sent records are kept, and whether deleted "
    "records are still in the database file"
)


def add_arguments(parser):
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        action="store_true",
        help="the same facts as one JSON object, with every submission the log keeps (its "
        "keys: docs/telemetry.md, Monitoring)",
    )
    output.add_argument(
        "--check",
        action="store_true",
        help="one line, and exit status 1 if submissions are overdue (0 otherwise; 2 if the "
        "database cannot be used or read, or its server is lost): for a monitoring check",
    )


def writes(args):
    """It only reads: on a read-only database (a replica) it runs, its use not collected."""
    return False


def run(registry, args):
    # --json is for a tool: every submission kept, not the text's newest few
    facts = read_facts(registry, recent=None if args.json else RECENT_SUBMISSIONS)
    if args.check:
        if facts.overdue:
            raise Verdict(check_line(facts))
        print(check_line(facts))
    elif args.json:
        print(json.dumps(as_json(facts), indent=2))
    else:
        print("\n".join(describe(facts)))
    return 0


def read_facts(registry, recent):
    try:
        with request_environment(registry) as env:
            return status_facts(
                telemetry_store(env["request"]),
                registry.app_settings,
                recent=recent,
                read_only=is_read_only(database(registry)),
            )
    except CANNOT_WRITE as exc:  # a lost database server, say: a read, which changes nothing
        raise NotRead(what_went_wrong(exc)) from exc


class NotRead(StorageError):
    """Reading the facts failed (a lost database server, say): said by main, in cannot_write's
    words, with exit status 2, as for a database that cannot be opened."""


def unusable(exc):
    """Whether main's failure is a database that cannot be used, exit status 2 as when it cannot
    be opened (a monitor's CRITICAL, not --check's 1 of "overdue"): the read's, or a lost server
    whichever step met it, the write of its use before the read too. A full disk or conflicts
    in that write are the command's failure, 1."""
    return isinstance(exc, NotRead) or is_server_lost(exc)


def cannot_write(exc):
    """What main says when the facts cannot be read; or, for the write of the command's use
    before it reads, the default line."""
    if isinstance(exc, NotRead):
        return f"could not read ({exc}); nothing was changed"
    return default_cannot_write(exc)


# as the status page says it (telemetry_status.pt), with the command for its button
PENDING_WHILE_OFF = (
    "Pending records: not sent while telemetry is off; they go with the first submission after "
    "it is switched on again, however old: to have them never sent, delete them first "
    "(fftelemetry delete all)"
)


def describe(facts):
    counts = facts.counts
    cas = f"Receiver's CAs: {shown(facts.ca_bundle)} ({facts.ca_bundle_setting})"
    lines = [
        f"Telemetry: {'enabled' if facts.enabled else 'disabled'} ({facts.source})",
        f"Installation id: {facts.installation_id or 'none yet'}",
        f"Receiver: {facts.endpoint}",
        *([cas] if facts.ca_bundle else []),
        *([f"Database: {REPLICA}"] if facts.read_only else []),
        f"Records: {counts['all']} ({counts['pending']} pending, {counts['submitted']} submitted)",
        f"Last successful submission: {_when(facts.last_success_at) or 'never'}",
    ]
    if facts.enabled:
        due = _when(facts.next_due) or "now (on the next cron run)"
        lines.append(f"Next submission due: {due}")
    elif counts["pending"]:
        lines.append(PENDING_WHILE_OFF)
    if facts.overdue:
        lines.append(overdue_line(facts))
    if facts.cron_found_off_at:
        lines.append(cron_off_line(facts))
    lines.append(f"Retention: submitted records are {facts.retention}")
    lines.append(f"Database packed: {facts.packed}")
    if facts.deleted_in_file:
        lines.append(
            "Deleted records: still in the database file until the next fftelemetry pack "
            f"(weekly in scripts/crontab.example); last deleted {_when(facts.records_deleted_at)}"
        )
    lines.append("Recent submissions:" if facts.submissions else "Recent submissions: none")
    lines += ["  " + submission_line(result) for result in facts.submissions]
    if facts.older_submissions:
        lines.append(
            f"  and {facts.older_submissions} older: all {facts.submissions_kept} kept are in "
            f"fftelemetry status --json and on {SUBMISSIONS_PAGE}"
        )
    return lines


SUBMISSIONS_PAGE = "/admin/telemetry/submissions"
REPLICA = "read-only (a replica): cron, pack and deletes run with the writable database's config"


def overdue_line(facts):
    return f"Submissions overdue since {_when(facts.overdue_since)}: {check_cron(facts)}"


def check_cron(facts):
    return f"check fftelemetry cron's output ({shown(facts.cron_output)})"


def cron_off_line(facts):
    return (
        f"fftelemetry cron found telemetry off at {_when(facts.cron_found_off_at)}, and no "
        "submission has succeeded since: cron reads its own environment, the .env file and the "
        "ini file, not the web server's environment, and sends nothing while it finds "
        "telemetry off"
    )


def submission_line(result):
    status = f"HTTP {result.status}" if result.status is not None else "no answer"
    outcome = f"receiver uuid {result.uuid}" if result.ok else f"FAILED: {result.error}"
    return f"{_when(result.at)}  sent {result.sent}  {status}  {outcome}"


def check_line(facts):
    """--check's one line. Only overdue fails the check: a failed attempt alone is retried by
    the next daily run and mostly clears (a receiver restarting), so it is said, not alarmed."""
    if not facts.enabled:
        return f"OK: telemetry is disabled ({facts.source}): nothing is sent"
    pending = facts.counts["pending"]
    last = f"last successful submission {_when(facts.last_success_at) or 'never'}"
    if facts.overdue:
        since = _when(facts.overdue_since)
        return (
            f"OVERDUE: submissions overdue since {since} ({records_word(pending)} pending, "
            f"{last}): {check_cron(facts)}"
        )
    line = f"OK: {records_word(pending) if pending else 'nothing'} pending, {last}"
    attempt = facts.last_submission
    if attempt is not None and not attempt.ok:
        line += f"; the last attempt failed ({_when(attempt.at)}), the next cron run retries it"
    return line


def as_json(facts):
    """The facts for a script; the keys are documented in docs/telemetry.md (Monitoring): keep
    them, add new ones rather than rename."""
    return {
        "enabled": facts.enabled,
        "source": facts.source,
        "installation_id": facts.installation_id,
        "receiver": facts.endpoint,
        "ca_bundle": facts.ca_bundle,
        "read_only": facts.read_only,
        "counts": {which: facts.counts[which] for which in ("all", "pending", "submitted")},
        "last_success_at": rfc3339(facts.last_success_at),
        "next_due": rfc3339(facts.next_due) if facts.enabled else None,
        "overdue": facts.overdue,
        "overdue_since": rfc3339(facts.overdue_since),
        "cron_found_off_at": rfc3339(facts.cron_found_off_at),
        "keep_submitted_days": facts.keep_submitted_days,
        "packed_at": rfc3339(facts.packed_at),
        "pack_kept_days": facts.pack_kept_days,
        "deleted_in_file": facts.deleted_in_file,
        "records_deleted_at": rfc3339(facts.records_deleted_at),
        "submissions": [
            {
                "at": rfc3339(result.at),
                "sent": result.sent,
                "status": result.status,
                "ok": result.ok,
                "uuid": result.uuid,
                "error": result.error,
            }
            for result in facts.submissions
        ],
    }
