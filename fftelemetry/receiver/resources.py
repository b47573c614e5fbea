"""The receiver's persistent data: every record once, keyed by its id, and every batch.

Class paths are stored in pickles: keep them stable.
"""

import uuid
from datetime import datetime
from typing import NamedTuple

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from pyramid_zodbconn import get_connection

ROOT_KEY = "fftelemetry-receiver"


class ReceivedRecord(NamedTuple):
    # Stored in pickles: add fields only at the end, with defaults.
    id: str
    installation_id: str
    collected_at: datetime
    type: str
    key: str
    value: str | int
    received_at: datetime
    batch_uuid: str


class Batch(NamedTuple):
    received_at: datetime
    record_ids: tuple
    new_records: int  # how many of record_ids this batch stored first (a re-send: 0)


class Receiver(Persistent):
    """The root: `records` (id -> ReceivedRecord) and `batches` (uuid -> Batch)."""

    __name__ = None
    __parent__ = None

    def __init__(self):
        self.records = OOBTree()
        self.batches = OOBTree()
        self.record_count = Length()
        self.batch_count = Length()

    def accept(self, records, now):
        """Store a validated batch; a record id known already is not stored again.
        Returns the batch's new uuid4."""
        batch_uuid = str(uuid.uuid4())
        new = 0
        for fields in records:
            if fields["id"] in self.records:
                continue
            self.records[fields["id"]] = ReceivedRecord(
                received_at=now, batch_uuid=batch_uuid, **fields
            )
            new += 1
        self.record_count.change(new)
        self.batches[batch_uuid] = Batch(now, tuple(r["id"] for r in records), new)
        self.batch_count.change(1)
        return batch_uuid

    def stats(self):
        return {"records": self.record_count(), "batches": self.batch_count()}


def root_factory(request):
    zodb_root = get_connection(request).root()
    receiver = zodb_root.get(ROOT_KEY)
    if receiver is None:
        receiver = zodb_root[ROOT_KEY] = Receiver()
    return receiver
