"""The facts the status page and `fftelemetry status` show, computed in one place."""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from ..resources.store import SubmissionResult, TelemetryStore, utcnow
from ..settings import AppSettings, shown_url


def format_time(moment):
    """A time as the status page and `fftelemetry status` show it, "2026-01-05 12:00:00 UTC";
    "" for none. isoformat, not strftime("%Y-%m-%d %H:%M:%S UTC"), which writes the same for
    years 1000 to 9999 at ~18 k instructions a call (it rewrites its format, then calls
    time.strftime): 13 calls on the status page with ten submissions, a tenth of its cost."""
    return moment.isoformat(" ", "seconds")[:19] + " UTC" if moment else ""


def rfc3339(moment):
    """A time as `fftelemetry status --json` gives it, RFC 3339 in UTC; None for none."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def next_submission_due(store: TelemetryStore, interval_days: int) -> datetime | None:
    """When the next cron submission is due; None means "now" (never sent, or the last attempt
    failed: a failure is retried on the next run rather than a week later)."""
    last = store.last_submission()
    if store.last_success_at is None or (last is not None and not last.ok):
        return None
    return store.last_success_at + timedelta(days=interval_days)


# How many submissions the status page and `fftelemetry status` list; the rest of the log
# (fftelemetry.submission_log_size) is on /admin/telemetry/submissions and in `status --json`.
RECENT_SUBMISSIONS = 10

# How long past due a submission may wait before it is overdue. cron runs daily, so a due
# submission is normally made within a day, and one that fails is retried the day after: two days
# is that retry failing too, or cron not running at all. A receiver down for an hour is not.
OVERDUE_GRACE = timedelta(days=2)


def overdue_since(store: TelemetryStore, settings: AppSettings, now=None) -> datetime | None:
    """When submissions became overdue, or None if they are not: telemetry on, records pending,
    and none sent for OVERDUE_GRACE past the time cron should have sent them, that is the due time
    (never sent: at once) or, if later, the oldest pending record's collection (a quiet
    installation collects nothing for weeks, then a record the next daily run sends) or cron's
    last run while telemetry was off (switched back on, cron has its usual days to send what was
    left pending)."""
    if not settings.send_telemetry or not len(store.pending):
        return None
    now, last = now or utcnow(), store.last_success_at
    due = None if last is None else last + timedelta(days=settings.interval_days)
    if due is not None and now < due + OVERDUE_GRACE:
        return None  # the usual answer, from two attributes: the status page is benchmarked
    times = (due, store.oldest_pending_at(), store.cron_ran_off_at)
    since = max(time for time in times if time) + OVERDUE_GRACE
    return since if now >= since else None


def cron_found_off_at(store: TelemetryStore, settings: AppSettings) -> datetime | None:
    """When `fftelemetry cron` last found telemetry off, if telemetry is on here and nothing was
    sent since; else None. cron reads its own environment, not the web server's: with
    SEND_TELEMETRY given to pserve alone, it runs off every day, sends nothing, and (its run
    while off moving overdue_since on) submissions never show as overdue. This says so."""
    off = store.cron_ran_off_at
    if off is None or not settings.send_telemetry:
        return None  # the usual answer, from one attribute: the status page is benchmarked
    last = store.last_success_at
    return off if last is None or off > last else None


def is_due(next_due: datetime | None, now=None) -> bool:
    """Whether a submission due at `next_due` (from next_submission_due) is due by `now`."""
    return next_due is None or (now or utcnow()) >= next_due


def days_word(days):
    return f"{days} day" if days == 1 else f"{days} days"


def history_kept(days):
    """What a pack that kept `days` days of history kept, in words."""
    if days == 0:
        return "no history kept"
    return f"the history of the last {days_word(days)} kept"


def retention(keep_days):
    """How long submitted records are kept (fftelemetry.keep_submitted_days), in words."""
    if not keep_days:
        return "kept until you delete them"
    return f"kept {days_word(keep_days)} after they were sent, then deleted by fftelemetry cron"


def deleted_still_in_file(store: TelemetryStore) -> bool:
    """Whether records deleted on the records page may still be in the database file: deleted
    since the history the last `fftelemetry pack` dropped (its time less the days it kept), or
    never packed. A pack done by other means (zeopack) is not known here."""
    deleted, packed = store.records_deleted_at, store.packed_at
    if deleted is None:
        return False
    return packed is None or deleted >= packed - timedelta(days=store.pack_kept_days)


def cron_log(folder):
    """Where the crontab lines `instructions install` prints append their output, relative to
    the ini's folder (they cd there): the first of var/cron.log and cron.log whose folder this
    user may write to, else None (a log sh cannot open would stop the command itself: then cron
    mails the output). The overdue warnings name the same one."""
    for log in ("var/cron.log", "cron.log"):
        where = (Path(folder) / log).parent
        if where.is_dir() and os.access(where, os.W_OK):
            return log
    return None


ON_THE_WRITABLE_SIDE = (
    "where the writable database's config runs it: this one is read-only (a replica), and cron "
    "does not run on it"
)


class StatusFacts(NamedTuple):
    """Read-only, as a frozen dataclass is, but made in one step: the status page makes one on
    every view, and a frozen dataclass set each of its 21 fields through object.__setattr__
    (~25 k instructions a view, 1.5% of the page: docs/performance.md)."""

    enabled: bool
    source: str
    installation_id: str | None
    endpoint: str
    counts: dict
    last_submission: SubmissionResult | None
    last_success_at: datetime | None
    next_due: datetime | None
    submissions: list
    submissions_kept: int
    packed_at: datetime | None
    pack_kept_days: int | None
    records_deleted_at: datetime | None
    deleted_in_file: bool
    keep_submitted_days: int
    overdue_since: datetime | None
    cron_found_off_at: datetime | None
    ini_folder: str | None = None
    # fftelemetry.telemetry_ca_bundle's file or folder, and its name as set; None: requests' own
    # CAs, which depend on each process's environment, so not said
    ca_bundle: str | None = None
    ca_bundle_setting: str | None = None
    read_only: bool = False  # a replica's database: cron, pack and deletes run elsewhere

    @property
    def overdue(self):
        return self.overdue_since is not None

    @property
    def cron_output(self):
        """Where fftelemetry cron's output goes, as the overdue warnings name it: the log its
        printed crontab line appends to, by its full path (status may run in any folder). Not
        a replica's folder: cron is refused there, and runs with the writable database."""
        if self.read_only:
            return ON_THE_WRITABLE_SIDE
        log = cron_log(self.ini_folder) if self.ini_folder else None
        return str(Path(self.ini_folder, log)) if log else "mailed by cron: no log is kept"

    @property
    def older_submissions(self):
        """How many kept submissions `submissions` leaves out."""
        return self.submissions_kept - len(self.submissions)

    @property
    def retention(self):
        return retention(self.keep_submitted_days)

    @property
    def packed(self):
        """When `fftelemetry pack` last packed the database, in words."""
        if self.packed_at is None:
            return "never"
        if not self.pack_kept_days:
            return format_time(self.packed_at)
        return f"{format_time(self.packed_at)}, {history_kept(self.pack_kept_days)}"


def submission_log(store: TelemetryStore, settings: AppSettings, recent=None):
    """The submissions the log keeps, newest first (with `recent`, only that many of them), and
    how many it keeps. The log is trimmed to fftelemetry.submission_log_size when the next run
    is logged; a lowered setting shows at once, without a write on a read."""
    kept = min(store.submissions_kept(), settings.submission_log_size)
    return store.submissions(limit=kept if recent is None else min(recent, kept)), kept


def status_facts(
    store: TelemetryStore,
    settings: AppSettings,
    now=None,
    recent=RECENT_SUBMISSIONS,
    read_only=False,
) -> StatusFacts:
    """The facts, with the newest `recent` submissions (None: every one kept); `read_only`:
    whether the database is (a replica's)."""
    submissions, kept = submission_log(store, settings, recent)
    return StatusFacts(
        enabled=settings.send_telemetry,
        source=settings.send_telemetry_source,
        installation_id=store.installation_id,
        endpoint=shown_url(settings.telemetry_url + "/submit"),
        counts=store.counts(),
        last_submission=store.last_submission(),
        last_success_at=store.last_success_at,
        next_due=next_submission_due(store, settings.interval_days),
        submissions=submissions,
        submissions_kept=kept,
        packed_at=store.packed_at,
        pack_kept_days=store.pack_kept_days,
        records_deleted_at=store.records_deleted_at,
        deleted_in_file=deleted_still_in_file(store),
        keep_submitted_days=settings.keep_submitted_days,
        overdue_since=overdue_since(store, settings, now),
        cron_found_off_at=cron_found_off_at(store, settings),
        ini_folder=settings.ini_folder,
        ca_bundle=settings.telemetry_ca_bundle,
        ca_bundle_setting=settings.ca_bundle_setting,
        read_only=read_only,
    )
