"""The receiver's persistent data: every record once, keyed by its id, and every batch.

Class paths are stored in pickles: keep them stable, or write an evolve step
(fftelemetry/resources/generations.py).
"""

import uuid
from typing import NamedTuple

from BTrees.Length import Length
from BTrees.LOBTree import LOBTree
from BTrees.OOBTree import OOBTree, OOTreeSet
from persistent import Persistent
from pyramid_zodbconn import get_connection

from ..resources.generations import FIRST, Generations

ROOT_KEY = "fftelemetry-receiver"
# The layout of the receiver's database: its evolve steps, oldest first. None yet.
GENERATIONS = Generations("fftelemetry receiver", ROOT_KEY, steps=[])


class ReceivedRecord(NamedTuple):
    # Stored in pickles: add fields only at the end, with defaults. Few and plain on purpose:
    # pickling cost is per object, so the time of arrival lives once, on the batch.
    id: str
    installation_id: str
    collected_at: str  # ISO 8601, UTC
    type: str
    key: str
    value: str | int
    batch_uuid: str


class Batch(Persistent):
    """One accepted POST. A persistent object of its own: `batches` is keyed by random uuids,
    so each new batch lands in an old bucket, and a bucket holding whole batches (500 ids each)
    was rewritten in full every time; now it holds references."""

    def __init__(self, received_at, record_ids, new_records):
        self.received_at = received_at
        self.record_ids = record_ids  # every id the POST carried, re-sent ones too
        self.new_records = new_records  # how many of them this batch stored first


class Receiver(Persistent):
    """The root: `records` in arrival order, `seen` (the dedup) and `batches` (uuid -> Batch).

    Record ids are random (uuid4): an index keyed by them alone puts a batch's 500 records in
    ~500 different buckets, and every touched bucket is rewritten at commit. Stored that way,
    each record cost ~60 pickled objects and the receiver got slower as it grew. So:

    - records are appended under an arrival sequence (a batch fills a few neighbouring buckets);
    - the dedup key is "installation id, collected_at, record id". A record never changes
      those three, so a re-sent record is found again; and a batch's records (one installation,
      oldest first) sit next to each other in `seen`, after the batches before them.
    """

    __name__ = None
    __parent__ = None
    generation = FIRST  # of a root made before generations were recorded

    def __init__(self):
        self.generation = GENERATIONS.current
        self.records = LOBTree()
        self.seen = OOTreeSet()
        self.batches = OOBTree()
        self.record_count = Length()
        self.batch_count = Length()

    def accept(self, records, now):
        """Store a validated batch; a record known already is not stored again.
        Returns the batch's new uuid4."""
        batch_uuid = str(uuid.uuid4())
        seq = self._next_sequence(now)
        new = 0
        for fields in records:
            collected_at = fields["collected_at"].isoformat()  # UTC since parse_batch
            key = dedup_key(fields["installation_id"], collected_at, fields["id"])
            if not self.seen.insert(key):
                continue  # a re-sent record
            self.records[seq] = ReceivedRecord(
                **dict(fields, collected_at=collected_at), batch_uuid=batch_uuid
            )
            seq += 1
            new += 1
        self.record_count.change(new)
        self.batches[batch_uuid] = Batch(now, tuple(r["id"] for r in records), new)
        self.batch_count.change(1)
        return batch_uuid

    def _next_sequence(self, now):
        """Where this batch's records start: after every record so far (milliseconds since the
        epoch << 20). Two batches stored at once would conflict wherever they start (both add
        past the last key, into the tree's last bucket), so the app stores one batch at a time
        (fftelemetry.receiver.one_batch_at_a_time)."""
        start = int(now.timestamp() * 1000) << 20
        if self.records:
            start = max(start, self.records.maxKey() + 1)
        return start

    def stats(self):
        return {"records": self.record_count(), "batches": self.batch_count()}


def dedup_key(installation_id, collected_at, record_id):
    return f"{installation_id} {collected_at} {record_id}"


def root_factory(request):
    zodb_root = get_connection(request).root()
    receiver = zodb_root.get(ROOT_KEY)
    if receiver is None:
        receiver = zodb_root[ROOT_KEY] = Receiver()
    else:
        GENERATIONS.check(receiver)  # before a batch is stored
    return receiver
