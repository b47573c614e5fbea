"""A FileStorage for runzeo whose server dies on cue: once the file `flag` exists, the next commit
to finish arms it, and the first load a client asks of it after that ends the server's process at
once (os._exit), as a crash would. A client whose next read after that commit misses its caches
meets a lost server then, and only then: no timing is involved.

runzeo -C loads it with `%import tests.e2e.zeo_on_cue` (this folder's component.xml), the
project's folder on its PYTHONPATH (tests.e2e.harness.runzeo_on_cue)."""

import os
from pathlib import Path

from ZODB.config import FileStorage as FileStorageSection
from ZODB.FileStorage import FileStorage


class DyingFileStorage(FileStorage):
    def __init__(self, path, flag):
        super().__init__(path)
        self.flag, self.armed = Path(flag), False

    def tpc_finish(self, transaction, f=None):
        tid = super().tpc_finish(transaction, f)
        self.armed = self.armed or self.flag.exists()
        return tid

    def loadBefore(self, oid, tid):
        if self.armed:
            os._exit(1)  # no answer, no closing: the client's connection is simply gone
        return super().loadBefore(oid, tid)


class DyingFileStorageSection(FileStorageSection):
    """The opener of a <dyingfilestorage> section: <filestorage>'s path, and the flag's."""

    def open(self):
        return DyingFileStorage(self.config.path, self.config.flag)
