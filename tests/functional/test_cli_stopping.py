"""Ctrl-C and SIGTERM in a console command (fftelemetry.cli.stopping): raised where the command
runs, but never inside a commit, nor while FileStorage.pack swaps its copy in. Real signals, sent
to this process from the very code they must not cut, on a real FileStorage."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import transaction
from persistent.mapping import PersistentMapping
from ZODB import DB
from ZODB.FileStorage import FileStorage
from ZODB.fsIndex import fsIndex
from ZODB.serialize import referencesf

from fftelemetry.cli.stopping import Terminated, stopped_as_ctrl_c


def wait_to_be_stopped():
    """Where a stop put off is raised: a wait it ends (a bound, not a timed assertion)."""
    threading.Event().wait(30)
    pytest.fail("the stop was not raised once the commit was over")


@pytest.fixture
def db(tmp_path):
    db = DB(FileStorage(str(tmp_path / "Data.fs")))
    yield db
    db.close()


def test_sigterm_raises_terminated_and_the_handlers_are_put_back():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with stopped_as_ctrl_c() as stops, pytest.raises(Terminated):
        signal.raise_signal(signal.SIGTERM)
        wait_to_be_stopped()
    assert stops.signum == signal.SIGTERM
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


@pytest.mark.parametrize("first", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_once_stopped_another_stop_is_ignored(first, second):
    # a second Ctrl-C was raised wherever the command was on its way out: as it closed its
    # databases (cut short), or as it said how it stopped (a traceback)
    with stopped_as_ctrl_c() as stops:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(first)
            wait_to_be_stopped()
        try:
            signal.raise_signal(second)  # its handler runs before this returns
        except KeyboardInterrupt:
            pytest.fail(f"{signal.Signals(second).name} was raised too")
    assert stops.signum == first


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_a_commit_waits_for_its_end(db, signum):
    # raised inside it, the commit was cut half-way: a FileStorage closes itself there
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    conn.root()["kept"] = PersistentMapping()
    tm.get().addBeforeCommitHook(signal.raise_signal, (signum,))
    with stopped_as_ctrl_c(), pytest.raises(KeyboardInterrupt):
        tm.commit()  # what is tested: it returns, committed
        wait_to_be_stopped()
    conn.close()
    with db.transaction() as fresh:
        assert "kept" in fresh.root()


def test_a_stop_during_the_blocks_last_commit_is_not_raised_after_it(db):
    # its retry, sent again once the commit is over, landed after the block: in Python's own
    # handlers, back by then, KeyboardInterrupt raised outside the command (SIGTERM's ended it)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    conn.root()["kept"] = PersistentMapping()
    tm.get().addBeforeCommitHook(signal.raise_signal, (signal.SIGINT,))
    stops = None
    try:
        with stopped_as_ctrl_c() as stops:
            tm.commit()  # the block's last step
        for retry in threading.enumerate():  # a retry still on its way lands now
            if isinstance(retry, threading.Timer):
                retry.join()
    except KeyboardInterrupt:
        # raised in the block, had the retry come before its end; never after it
        assert stops is not None and stops.signum == signal.SIGINT, "raised after the block"
    conn.close()
    with db.transaction() as fresh:
        assert "kept" in fresh.root()


def packed_file(path, when):
    """A FileStorage at `path` with history to drop (three revisions of its root), packed with
    SIGTERM sent to this process during the copy (`when="copying"`) or once the copy is made,
    before ZODB swaps it in (`when="copied"`); where the stop was raised."""

    def references(data, oids=None):  # the copy's reachability walk calls it
        if when == "copying":
            signal.raise_signal(signal.SIGTERM)
        return referencesf(data, oids)

    def packer(*args):  # a FileStorage's own packer= (IFileStoragePacker): ZODB's, then SIGTERM
        result = FileStorage.packer(*args)
        if when == "copied":
            signal.raise_signal(signal.SIGTERM)
        return result

    storage = FileStorage(str(path), packer=packer, pack_keep_old=False)  # as `fftelemetry pack`
    db = DB(storage)
    try:
        for n in range(3):
            with db.transaction() as conn:
                conn.root()["n"] = n
        with stopped_as_ctrl_c():
            try:
                storage.pack(time.time(), references)
            except Terminated:
                return "in the pack"
            try:
                wait_to_be_stopped()
            except Terminated:
                return "after the pack"
    finally:
        db.close()


def test_a_stop_during_the_copy_of_a_pack_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "Data.fs"
    assert packed_file(path, "copying") == "in the pack"
    db = DB(FileStorage(str(path)))
    try:
        assert len(db.history(b"\0" * 8, size=10)) == 4, "nothing was packed"
    finally:
        db.close()


def test_a_stop_once_the_copy_is_made_waits_until_it_replaces_the_file(tmp_path):
    # raised between ZODB's two renames, it left Data.fs.old and Data.fs.pack, and no Data.fs
    path = tmp_path / "Data.fs"
    assert packed_file(path, "copied") == "after the pack"
    assert path.exists()
    assert not any(name.endswith((".old", ".pack")) for name in os.listdir(tmp_path))
    db = DB(FileStorage(str(path)))
    try:
        assert len(db.history(b"\0" * 8, size=10)) == 1, "packed"
    finally:
        db.close()


# ZODB catches everything (a bare except) where a FileStorage reads its index as it opens and
# writes it as it closes: a stop raised there was swallowed, logged with a traceback, and the
# command went on, its SIGTERM ignored from then on.

def send_sigterm_as_the_index_is_read(path):
    """Data.fs.index as ZODB wrote it, but sending SIGTERM to this process as it is read: a
    pickle calls what it names, here signal.raise_signal(15), whose result it drops (POP) before
    the index's own first pickle."""
    index = Path(f"{path}.index")
    call = b"csignal\nraise_signal\n(I%d\ntR0" % signal.SIGTERM
    index.write_bytes(call + index.read_bytes())


def test_a_stop_as_a_filestorage_reads_its_index_waits_for_it(tmp_path, caplog):
    # swallowed, it left the command to read the whole file instead, and to run on to its end
    path = tmp_path / "Data.fs"
    DB(FileStorage(str(path))).close()
    send_sigterm_as_the_index_is_read(path)
    opened = []
    with stopped_as_ctrl_c(), pytest.raises(Terminated):
        opened.append(FileStorage(str(path)))
        wait_to_be_stopped()
    for storage in opened:
        storage.close()
    assert "loading index" not in caplog.text


class SignalledAsItSavesItsIndex(FileStorage):
    """ZODB's FileStorage, SIGTERM sent to this process as it writes its index once `signalled`
    (a new file's is written as it opens too)."""

    signalled = False

    def _save_index(self):
        if self.signalled:
            signal.raise_signal(signal.SIGTERM)
        super()._save_index()


def test_a_stop_as_a_filestorage_closes_waits_for_its_index(tmp_path, caplog):
    # swallowed, it left no index: the next open read the whole file
    path = tmp_path / "Data.fs"
    storage = SignalledAsItSavesItsIndex(str(path))
    db = DB(storage)
    with db.transaction() as conn:
        conn.root()["kept"] = PersistentMapping()
    storage.signalled = True
    with stopped_as_ctrl_c(), pytest.raises(Terminated):
        db.close()
        wait_to_be_stopped()
    assert fsIndex.load(f"{path}.index")["pos"] == os.path.getsize(path)
    assert "Error saving index" not in caplog.text


class TroubledAsItLoads(FileStorage):
    """ZODB's FileStorage, calling `trouble` as it loads the object `troubled_at` (an oid): a
    ghost's state, which ZODB's Connection.setstate loads."""

    troubled_at = None
    trouble = None

    def loadBefore(self, oid, tid):
        if oid == self.troubled_at:
            self.trouble()
        return super().loadBefore(oid, tid)


def a_stop():
    signal.raise_signal(signal.SIGTERM)


def a_failing_disk():
    raise OSError(5, "Input/output error")


@pytest.mark.parametrize(("trouble", "raised", "logged"), [
    # ZODB logged "Couldn't load state for …" at ERROR with the stop's traceback before raising
    # it: cron stopped as it read its next batch left that in var/cron.log above its one line
    (a_stop, Terminated, False),
    # only the stop's cut load is dropped: ZODB's line for a damaged file or disk is the
    # operator's clue, which a filter dropping every record of ZODB.Connection would lose
    (a_failing_disk, OSError, True),
], ids=["stopped", "failing"])
def test_only_a_stop_as_an_object_loads_is_no_error_in_the_log(tmp_path, caplog, trouble, raised,
                                                               logged):
    path = tmp_path / "Data.fs"
    first = DB(FileStorage(str(path)))
    with first.transaction() as conn:
        conn.root()["kept"] = PersistentMapping()
    first.close()
    storage = TroubledAsItLoads(str(path))
    storage.trouble = trouble
    db = DB(storage)
    try:
        with stopped_as_ctrl_c(), pytest.raises(raised), db.transaction() as conn:
            kept = conn.root()["kept"]  # a ghost
            storage.troubled_at = kept._p_oid
            len(kept)  # its state loaded
            wait_to_be_stopped()
    finally:
        storage.troubled_at = None
        db.close()
    assert ("Couldn't load state" in caplog.text) == logged, caplog.text
    assert ("Input/output error" in caplog.text) == logged


def test_a_stop_ignored_as_the_command_starts_stays_ignored():
    # a shell runs a command it starts in the background (`fftelemetry cron … &` in a script)
    # with SIGINT ignored, so that Ctrl-C stops the script and not it; Python keeps that, and the
    # command stopped all the same
    python_s = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stopped_as_ctrl_c() as stops:
            signal.raise_signal(signal.SIGINT)  # its handler, had it one, runs before this returns
        assert stops.signum is None
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, python_s)


# The console command, then a second stop at its exit: what `timeout -s INT` (or TERM) sends,
# to the command and again to its process group, or a second Ctrl-C a moment after the first.
SECOND_STOP_AT_EXIT = """
import atexit, os, signal, sys
from fftelemetry.cli.main import main
atexit.register(os.kill, os.getpid(), signal.SIGINT)  # run before shutdown's close (LIFO)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("first", [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_as_a_stopped_command_exits_is_ignored(tmp_path, write_ini, first):
    # Python's own handlers were back once main returned: Ctrl-C raised KeyboardInterrupt in the
    # atexit closing of the databases, a traceback after the command's one line
    path = tmp_path / "silent.sock"  # a "ZEO server" that takes the connection and says nothing
    ini = write_ini(**{"zodbconn.uri": f"zeo://{path}?wait_timeout=60"})
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        server.settimeout(60)
        command = subprocess.Popen(
            [sys.executable, "-c", SECOND_STOP_AT_EXIT, "status", ini, "--check"],
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            connection, _ = server.accept()  # the command now waits for the server's handshake
            command.send_signal(first)
            _, err = command.communicate(timeout=60)
            connection.close()
        finally:
            command.kill()
    status, how = (143, "stopped by SIGTERM") if first == signal.SIGTERM else (130, "interrupted")
    lines = [line for line in err.splitlines() if "[ZEO." not in line]
    assert lines == [f"fftelemetry status: {how}; the change in progress, if any, was rolled back"]
    assert command.returncode == status
