"""A FileStorage for runzeo whose server dies on cue, at a load, ending its process at once
(os._exit), as a crash would. Two cues, each optional:

- `flag`: once that file exists, the next commit to finish arms it, and the first load a client
  asks of it after that ends the server. A client whose next read after that commit misses its
  caches meets a lost server then, and only then.
- `oids`: once that file exists, the first load of an object it lists (an oid in hex a line)
  ends the server, no commit needed: a read that a client starts while another thread of its
  own is busy (a POST in flight) meets a lost server at that object, whatever that thread does.

No timing is involved. runzeo -C loads it with `%import tests.e2e.zeo_on_cue` (this folder's
component.xml), the project's folder on its PYTHONPATH (tests.e2e.harness.runzeo_on_cue)."""

import os
from pathlib import Path

from ZODB.config import FileStorage as FileStorageSection
from ZODB.FileStorage import FileStorage
from ZODB.utils import p64


class DyingFileStorage(FileStorage):
    def __init__(self, path, flag=None, oids=None):
        super().__init__(path)
        self.flag = Path(flag) if flag else None
        self.oids = Path(oids) if oids else None
        self.armed = False

    def tpc_finish(self, transaction, f=None):
        tid = super().tpc_finish(transaction, f)
        self.armed = self.armed or (self.flag is not None and self.flag.exists())
        return tid

    def loadBefore(self, oid, tid):
        if self.armed or oid in self.doomed():
            os._exit(1)  # no answer, no closing: the client's connection is simply gone
        return super().loadBefore(oid, tid)

    def doomed(self):
        """The oids whose load ends the server: none until the file `oids` exists."""
        if self.oids is None or not self.oids.exists():
            return frozenset()
        return frozenset(p64(int(line, 16)) for line in self.oids.read_text().split())


class DyingFileStorageSection(FileStorageSection):
    """The opener of a <dyingfilestorage> section: <filestorage>'s path, and the cues'."""

    def open(self):
        return DyingFileStorage(self.config.path, self.config.flag, self.config.oids)
