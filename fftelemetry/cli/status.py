"""`fftelemetry status`: the facts of the admin's status page, as text."""

from ..resources import telemetry_store
from ..scripting import request_environment
from ..telemetry.status import format_time as _when
from ..telemetry.status import status_facts

HELP = (
    "show whether telemetry is on, the counts of pending and sent records, the last "
    "submissions, how long sent records are kept, and whether deleted records are still in the "
    "database file"
)


def add_arguments(parser):
    pass


def run(registry, args):
    with request_environment(registry) as env:
        facts = status_facts(telemetry_store(env["request"]), registry.app_settings)
    print("\n".join(describe(facts)))
    return 0


def describe(facts):
    counts = facts.counts
    lines = [
        f"Telemetry: {'enabled' if facts.enabled else 'disabled'} ({facts.source})",
        f"Installation id: {facts.installation_id or 'none yet'}",
        f"Receiver: {facts.endpoint}",
        f"Records: {counts['all']} ({counts['pending']} pending, {counts['submitted']} submitted)",
        f"Last successful submission: {_when(facts.last_success_at) or 'never'}",
    ]
    if facts.enabled:
        due = _when(facts.next_due) or "now (on the next cron run)"
        lines.append(f"Next submission due: {due}")
    lines.append(f"Retention: submitted records are {facts.retention}")
    lines.append(f"Database packed: {facts.packed}")
    if facts.deleted_in_file:
        lines.append(
            "Deleted records: still in the database file until the next fftelemetry pack "
            f"(weekly in scripts/crontab.example); last deleted {_when(facts.records_deleted_at)}"
        )
    lines.append("Recent submissions:" if facts.submissions else "Recent submissions: none")
    lines += ["  " + submission_line(result) for result in facts.submissions]
    return lines


def submission_line(result):
    status = f"HTTP {result.status}" if result.status is not None else "no answer"
    outcome = f"receiver uuid {result.uuid}" if result.ok else f"FAILED: {result.error}"
    return f"{_when(result.at)}  sent {result.sent}  {status}  {outcome}"

