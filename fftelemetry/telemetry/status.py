"""The facts the status page and `fftelemetry status` show, computed in one place."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..resources.store import SubmissionResult, TelemetryStore, utcnow
from ..settings import AppSettings, shown_url


def format_time(moment):
    """A time as the status page and `fftelemetry status` show it; "" for none."""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def next_submission_due(store: TelemetryStore, interval_days: int) -> datetime | None:
    """When the next cron submission is due; None means "now" (never sent, or the last attempt
    failed: a failure is retried on the next run rather than a week later)."""
    last = store.last_submission()
    if store.last_success_at is None or (last is not None and not last.ok):
        return None
    return store.last_success_at + timedelta(days=interval_days)


def is_due(next_due: datetime | None, now=None) -> bool:
    """Whether a submission due at `next_due` (from next_submission_due) is due by `now`."""
    return next_due is None or (now or utcnow()) >= next_due


@dataclass(frozen=True)
class StatusFacts:
    enabled: bool
    source: str
    installation_id: str | None
    endpoint: str
    counts: dict
    last_submission: SubmissionResult | None
    last_success_at: datetime | None
    next_due: datetime | None
    submissions: list


def status_facts(store: TelemetryStore, settings: AppSettings) -> StatusFacts:
    return StatusFacts(
        enabled=settings.send_telemetry,
        source=settings.send_telemetry_source,
        installation_id=store.installation_id,
        endpoint=shown_url(settings.telemetry_url + "/submit"),
        counts=store.counts(),
        last_submission=store.last_submission(),
        last_success_at=store.last_success_at,
        next_due=next_submission_due(store, settings.interval_days),
        submissions=store.submissions(limit=10),
    )
