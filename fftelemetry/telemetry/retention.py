"""Expiring submitted records: `fftelemetry cron` deletes those sent more than
`fftelemetry.keep_submitted_days` days ago, so that nothing sent stays on the installation for ever
(Firefly III left "remove old submitted data" a TODO). Deleting is neither collecting nor sending,
so it runs while telemetry is off too.

A transaction at most every `chunk` records: a million old records are a hundred commits of their
own, each rerun on a conflict as the console's other writes are, never one transaction that holds
them all (and that a single `submit now` meanwhile would make start over).
"""

from datetime import timedelta

from ZODB.POSException import StorageError

from ..failures import NOT_WRITTEN, what_went_wrong
from ..resources import telemetry_store
from ..resources.store import utcnow
from ..scripting import run_in_transaction

EXPIRE_CHUNK = 10_000


class ExpiryStopped(StorageError):
    """A chunk could not be committed (a full disk, a lost ZEO server, conflicts on every
    attempt) after `expired` records were deleted by the chunks before it, which stay deleted."""

    def __init__(self, expired, reason):
        super().__init__(reason)
        self.expired, self.reason = expired, reason


def cutoff(keep_days, now=None):
    """Records submitted before this time are expired; None when they are kept for ever."""
    return None if not keep_days else (now or utcnow()) - timedelta(days=keep_days)


def expire_submitted(registry, keep_days, *, now=None, dry_run=False, chunk=EXPIRE_CHUNK):
    """Delete the submitted records sent more than `keep_days` days before `now` (none for 0),
    oldest first; returns how many. A dry run counts them and changes nothing."""
    before = cutoff(keep_days, now)
    if before is None:
        return 0
    expired, after = 0, None

    def one_chunk(env):
        store = telemetry_store(env["request"])
        old, resume = store.old_submitted(before, chunk, after)
        return (len(old) if dry_run else store.expire_submitted(old)), resume

    while True:
        try:
            count, after = run_in_transaction(registry, one_chunk)
        except NOT_WRITTEN as exc:
            if dry_run:
                raise  # it deleted nothing: the console's usual line says it all
            raise ExpiryStopped(expired, what_went_wrong(exc)) from exc
        expired += count
        if after is None:
            return expired
