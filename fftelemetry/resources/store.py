"""The persistent telemetry store: records, their indexes and counters, and the telemetry state.

Layout, chosen so that nothing ever scans all records:

- records live in two *partitions*, `pending` and `submitted`, each a `LOBTree` keyed by a
  sequence number plus a `BTrees.Length` counter. Counting is O(1); marking a batch submitted
  moves its records across; "delete submitted" swaps in an empty partition, O(1) however many
  records there were (a concurrent transaction that writes to the old partition conflicts, in
  either order, and is rerun: see _deleting and _writing_to_partitions).
- `identity` maps (type, key, JSON value) to a sequence number: the feature dedup in O(log n).
  "Delete submitted" (and expiry, below) keeps it on purpose, so facts that were already sent are
  not collected and sent again; "delete all" is a fresh start and clears it.
- `last_recurring` maps a key to when its last recurring value was stored.
- sequence numbers are microseconds since the epoch shifted left by 10 bits with random low
  bits: ordered by time (newest first = highest first) and unlikely to collide, so two
  processes inserting at once touch different keys and BTrees resolves the bucket conflict.
- expiry (`fftelemetry.keep_submitted_days`) forgets submitted records sent before a cut-off.
  A record is sent after it was collected, so only keys collected before the cut-off need
  looking at: the walk is bounded by the cut-off's key, not by the first record too young.

A record is an immutable `Record` tuple stored inside the tree's buckets rather than a
`Persistent` object of its own: one object per ~60 records instead of one per record, which keeps
Data.fs small and marking a batch cheap. Being immutable, it cannot be changed in place by
mistake; marking replaces it.
"""

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from heapq import merge, nsmallest
from itertools import islice
from operator import itemgetter
from typing import NamedTuple

from BTrees.Length import Length
from BTrees.LOBTree import LOBTree
from BTrees.OOBTree import OOBTree
from persistent import Persistent

PAGE_SIZE = 100
KEY_MIN, KEY_MAX = -(2**63), 2**63 - 1  # a LOBTree's keys are 64-bit
ALL, PENDING, SUBMITTED = "all", "pending", "submitted"
FILTERS = (ALL, PENDING, SUBMITTED)


def to_micros(moment):
    """A timezone-aware datetime as whole microseconds since the epoch."""
    return (moment - EPOCH) // ONE_MICROSECOND


def from_micros(micros):
    return EPOCH + timedelta(microseconds=micros)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


class Record(NamedTuple):
    # Stored in pickles: add fields only at the end, with defaults; never rename this class.
    # Times are kept as microseconds since the epoch: pickled, an int is one object and an
    # aware datetime five, and pickling is most of the cost of storing and marking records.
    id: str
    installation_id: str
    type: str
    key: str
    value: str | int
    collected_us: int
    submitted_us: int | None = None
    submission_uuid: str | None = None

    @property
    def collected_at(self):
        return from_micros(self.collected_us)

    @property
    def submitted_at(self):
        return None if self.submitted_us is None else from_micros(self.submitted_us)

    @property
    def is_submitted(self):
        return self.submitted_us is not None

    def payload(self):
        """The record as the receiver gets it."""
        return {
            "id": self.id,
            "installation_id": self.installation_id,
            "collected_at": self.collected_at.isoformat(),
            "type": self.type,
            "key": self.key,
            "value": self.value,
        }


class SubmissionResult(NamedTuple):
    """One run of the sender, kept in the bounded submission log."""

    at: datetime
    sent: int
    status: int | None
    uuid: str | None
    error: str | None

    @property
    def ok(self):
        return self.error is None


class Partition(Persistent):
    """Records of one state (pending or submitted), with their count."""

    def __init__(self):
        self.records = LOBTree()
        self.count = Length()

    def add(self, seq, record):
        self.records[seq] = record
        self.count.change(1)

    def take(self, seqs):
        """Remove the records of `seqs` that are here; returns them as (seq, record) pairs."""
        taken = []
        for seq in seqs:
            record = self.records.pop(seq, None)
            if record is not None:
                taken.append((seq, record))
        if taken:  # change(0) would still write the counter: a transaction with nothing in it
            self.count.change(-len(taken))
        return taken

    def put(self, items):
        """Add (seq, record) pairs."""
        for seq, record in items:
            self.records[seq] = record
        if items:  # as in take: a batch another run marked first moves nothing, writes nothing
            self.count.change(len(items))

    def __len__(self):
        return self.count()

    def newest_first(self, before=None):
        """(seq, record) pairs, highest sequence first, strictly below `before` if given.

        Walks with maxKey(): O(log n) a step, never touching the buckets it skips."""
        tree = self.records
        if before is not None and before <= KEY_MIN:
            return  # nothing is below the smallest key (and before - 1 is no key: a TypeError)
        bound = None if before is None else before - 1
        while True:
            try:
                seq = tree.maxKey() if bound is None else tree.maxKey(bound)
            except ValueError:  # nothing (left) below the bound
                return
            yield seq, tree[seq]
            bound = seq - 1

    def oldest_first(self, limit, after=None):
        """Up to `limit` (seq, record) pairs, lowest sequence first, strictly above `after`
        if given (so a reader can walk all records batch by batch without changing them)."""
        items = []
        rest = self.records.items() if after is None else self.records.items(after, excludemin=True)
        for seq, record in rest:
            if len(items) >= limit:
                break
            items.append((seq, record))
        return items


def new_sequence(now):
    micros = int(now.timestamp() * 1_000_000)
    return (micros << 10) | random.getrandbits(10)  # uniqueness, not secrecy


def utcnow():
    return datetime.now(UTC)


class TelemetryStore(Persistent):
    # When records were last deleted (either button) and when `fftelemetry pack` last packed the
    # database, keeping how many days of history: what the status page says of deleted records
    # still in the file. Class defaults, so a store made before they existed reads them as
    # "never" (no generation step: see generations.py).
    records_deleted_at = None
    packed_at = None
    pack_kept_days = None
    # When `fftelemetry cron` last ran with telemetry off and records pending: submissions are
    # overdue no earlier than two days after it (see telemetry/status.py's overdue_since).
    cron_ran_off_at = None

    def __init__(self):
        self.installation_id = None
        self.last_success_at = None
        self._clear_records()
        self.log = LOBTree()

    def _clear_records(self):
        self.pending = Partition()
        self.submitted = Partition()
        self.identity = OOBTree()
        self.last_recurring = OOBTree()

    # -- collecting -----------------------------------------------------------------------

    def ensure_installation_id(self):
        """A random uuid4 made once per installation (5.2.7/5.2.8 derived it from a constant)."""
        if self.installation_id is None:
            self.installation_id = str(uuid.uuid4())
        return self.installation_id

    def add_feature(self, key, value, now=None):
        """Store a feature value unless this (key, value) was stored before; the new record
        or None."""
        identity = ("feature", key, json.dumps(value))
        if identity in self.identity:
            return None
        seq, record = self._add("feature", key, value, now)
        self.identity[identity] = seq
        return record

    def add_recurring(self, key, value, every_days, now=None):
        """Store a recurring value unless one for `key` is younger than `every_days` days."""
        now = now or utcnow()
        last = self.last_recurring.get(key)
        if last is not None and now - last < timedelta(days=every_days):
            return None
        self.last_recurring[key] = now
        return self._add("recurring", key, value, now)[1]

    def _add(self, type_, key, value, now):
        now = now or utcnow()
        record = Record(
            id=uuid.uuid4().hex,
            installation_id=self.ensure_installation_id(),
            type=type_,
            key=key,
            value=value,
            collected_us=to_micros(now),
        )
        seq = new_sequence(now)
        while seq in self.pending.records or seq in self.submitted.records:
            seq += 1
        self._writing_to_partitions()
        self.pending.add(seq, record)
        return seq, record

    # -- counting and listing -------------------------------------------------------------

    def counts(self):
        pending, submitted = len(self.pending), len(self.submitted)
        return {ALL: pending + submitted, PENDING: pending, SUBMITTED: submitted}

    def partitions(self, which):
        """The partitions a filter (all, pending or submitted) looks at."""
        if which not in FILTERS:
            raise ValueError(f"unknown filter {which!r}")
        return {
            ALL: (self.pending, self.submitted),
            PENDING: (self.pending,),
            SUBMITTED: (self.submitted,),
        }[which]

    def page(self, which=ALL, before=None, size=PAGE_SIZE):
        """Up to `size` (seq, record) pairs newest first, below the sequence `before`.

        Keyset paging: a page deep in a million records costs what the first page costs."""
        streams = [part.newest_first(before) for part in self.partitions(which)]
        merged = merge(*streams, key=itemgetter(0), reverse=True)
        return list(islice(merged, size))

    def page_above(self, which, after, size=PAGE_SIZE):
        """The `size` records just above the sequence `after`, newest first: the page before a
        keyset page, at the same O(size · log n) cost however deep `after` is."""
        parts = self.partitions(which)
        nearest = [item for part in parts for item in part.oldest_first(size, after)]
        return sorted(nsmallest(size, nearest, key=itemgetter(0)), key=itemgetter(0), reverse=True)

    def has_older(self, which, seq):
        return bool(self.page(which, before=seq, size=1))

    def has_newer(self, which, seq):
        return bool(self.page_above(which, seq, size=1))

    def pending_batch(self, limit, after=None):
        """The oldest `limit` pending records (above the sequence `after`), as (seq, record)
        pairs."""
        return self.pending.oldest_first(limit, after)

    def oldest_pending_at(self):
        """When the oldest pending record was collected, or None: O(log n), one walk down the
        tree's left edge (keys grow with the time of collection)."""
        tree = self.pending.records
        try:
            return tree[tree.minKey()].collected_at
        except ValueError:  # nothing pending
            return None

    def discard_pending(self, seqs):
        """Remove these pending records unsent (the sender's, for records this version may no
        longer send); returns how many there were."""
        return len(self.pending.take(seqs))

    # -- submitting -------------------------------------------------------------------------

    def mark_submitted(self, seqs, submission_uuid, now=None):
        """Move the given pending records to `submitted`; returns how many moved (records
        deleted or already marked in the meantime are skipped)."""
        marks = (to_micros(now or utcnow()), submission_uuid)
        self._writing_to_partitions()
        taken = self.pending.take(seqs)
        # Record._make over the first six fields: _replace does the same, several times slower.
        self.submitted.put([(seq, Record._make(record[:6] + marks)) for seq, record in taken])
        return len(taken)

    def log_submission(self, result, keep=50):
        """Keep `result` in the bounded log; a success also moves `last_success_at`."""
        key = new_sequence(result.at)
        while key in self.log:
            key += 1
        self.log[key] = result
        if result.ok:
            self.last_success_at = result.at
        while len(self.log) > keep:
            del self.log[self.log.minKey()]

    def submissions(self, limit=10):
        """The newest `limit` submission results (None: every one kept), newest first."""
        return list(self.log.values())[::-1][:limit]

    def submissions_kept(self):
        return len(self.log)

    def last_submission(self):
        return self.log[self.log.maxKey()] if len(self.log) else None

    # -- deleting ---------------------------------------------------------------------------

    def delete_all(self):
        """Forget every record, pending or submitted, and the dedup memory; returns how many."""
        count = self.counts()[ALL]
        self._deleting(self.pending, self.submitted)
        if count or self.identity:  # the memory of what was sent holds values too
            self.records_deleted_at = utcnow()
        self._clear_records()
        return count

    def delete_submitted(self):
        """Forget the submitted records (their facts stay known, so they are not re-sent)."""
        count = len(self.submitted)
        if not count:  # as Partition.put([]): nothing written, nothing for a mark to conflict with
            return 0
        self._deleting(self.submitted)
        self.records_deleted_at = utcnow()
        self.submitted = Partition()
        return count

    def old_submitted(self, before, limit, after=None):
        """The submitted records sent before the time `before`, among the next `limit` keys
        above the sequence `after` (oldest first); returns their sequences and where to go on
        from (None: no key is left that could be that old).

        Batches are sent oldest first, so submitted_at mostly grows with the key, but not always:
        a record whose transaction committed late (or came from a process whose clock is behind)
        is sent in a later run than records collected after it, and a run stamps every batch with
        its start. So a record too young is skipped, not taken for the end: stopping there would
        keep every older record behind it. Only keys collected before `before` can qualify
        (a record is sent after it is collected), so the walk ends at the cut-off's key; what it
        skips is what was collected before the cut-off and sent after it, usually the last days
        before one submission. A record stamped a little before its collection (collected while
        its run was sending, or on a faster clock) goes one run later."""
        cutoff = to_micros(before)
        bound = cutoff << 10  # the lowest key new_sequence gives at `before`
        # (a min of None with excludemin would leave out the smallest key)
        keys = self.submitted.records.items(
            after, bound, excludemin=after is not None, excludemax=True
        )
        looked = list(islice(keys, limit))
        old = [seq for seq, record in looked if record.submitted_us < cutoff]
        return old, (looked[-1][0] if len(looked) == limit else None)

    def expire_submitted(self, seqs):
        """Forget these submitted records (kept long enough), as delete_submitted does: their
        facts stay known, so they are not sent again; returns how many were still there."""
        expired = len(self.submitted.take(seqs))
        if expired:
            self.records_deleted_at = utcnow()
        return expired

    def mark_packed(self, at, kept_days):
        """`fftelemetry pack` packed the database at `at`, keeping `kept_days` days of history."""
        self.packed_at, self.pack_kept_days = at, kept_days

    def mark_cron_ran_off(self, at):
        """`fftelemetry cron` ran at `at` with telemetry off: nothing was due, whatever is
        pending."""
        self.cron_ran_off_at = at

    def _writing_to_partitions(self):
        """The other side of _deleting: a record added to (or marked sent in) the partitions
        this transaction read, after a delete put new ones in place and committed, would land
        in the old ones, which nothing reads any more: lost, without a conflict, as neither
        side wrote what the other did. The store (which names the partitions) must still be
        the one read when this commits; if a delete changed it, this conflicts and is retried
        on the new partitions. Anything else that writes the store (a submission's log, a pack's
        note) makes a collection retry too: rare, and a retry is cheap."""
        if self._p_jar is not None:
            self._p_jar.readCurrent(self)

    def _deleting(self, *partitions):
        """A delete puts new, empty partitions in place and never writes to the old ones, so a
        record added to them meanwhile by another transaction would not conflict: it would be
        dropped, unseen, by a delete that reports the count it read. Their counts, read here,
        must still be current when this commits; if not, it conflicts and is retried."""
        if self._p_jar is not None:
            for partition in partitions:
                self._p_jar.readCurrent(partition.count)

