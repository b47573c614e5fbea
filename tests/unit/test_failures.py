import errno
import subprocess
import sys

import psycopg2
import psycopg2.errors
import pytest
import transaction
from relstorage.adapters.interfaces import UnableToLockRowsToModifyError
from ZEO.Exceptions import ClientDisconnected, ServerException
from ZODB.POSException import ConflictError, ReadOnlyError

from fftelemetry.cli import main, pack
from fftelemetry.failures import (
    CANNOT_WRITE,
    hide_passwords,
    in_second_phase,
    is_no_room,
    is_server_lost,
    retried_after,
    what_went_wrong,
    why_not_written,
)


def test_a_lost_zeo_server_is_named_not_shown_as_an_empty_exception():
    # ClientDisconnected carries no text: "could not write (ClientDisconnected: )" said nothing
    lost = ClientDisconnected()
    assert main.cannot_write(lost) == (
        "could not write (the ZEO server cannot be reached); the change in progress was rolled back"
    )
    # a failure the pack did not wrap is the write of the command's use, before the pack
    assert pack.cannot_write(lost) == main.cannot_write(lost)
    assert why_not_written(lost) == "the ZEO server cannot be reached"  # "Submit now"'s message
    assert main.cannot_write(OSError(28, "No space left on device")) == (
        "could not write (OSError: [Errno 28] No space left on device); "
        "the change in progress was rolled back"
    )


def test_a_lost_postgresql_server_is_named_with_libpq_reason_on_one_line():
    lost = psycopg2.OperationalError(
        "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  the database system "
        "is shutting down\n\tIs the server running?\n"
    )
    assert main.cannot_write(lost) == (
        "could not write (the PostgreSQL server cannot be reached (connection to server at "
        "\"127.0.0.1\", port 5432 failed: the database system is shutting down Is the server "
        "running?)); the change in progress was rolled back"
    )
    assert why_not_written(lost) == "the PostgreSQL server cannot be reached"  # on a web page
    assert isinstance(lost, CANNOT_WRITE) and is_server_lost(psycopg2.InterfaceError())


def test_a_postgresql_server_that_answered_is_not_said_to_be_lost():
    """psycopg2's OperationalError is a statement timeout, a lock timeout, a deadlock or a full
    disk too: the server was reached, and the line says what it answered (a full disk: below)."""
    timeout = psycopg2.errors.QueryCanceled("canceling statement due to statement timeout\n")
    assert main.cannot_write(timeout) == (
        "could not write (QueryCanceled: canceling statement due to statement timeout); "
        "the change in progress was rolled back"
    )
    assert why_not_written(timeout) == "QueryCanceled"
    for answered in (timeout, psycopg2.errors.DeadlockDetected(), psycopg2.errors.DiskFull(),
                     psycopg2.errors.LockNotAvailable()):
        assert isinstance(answered, CANNOT_WRITE)  # a command says it in one line
        assert not is_server_lost(answered), type(answered).__name__
        assert "cannot be reached" not in what_went_wrong(answered)
    # libpq's own failures have no SQLSTATE; a server shutting down sends one
    for lost in (psycopg2.OperationalError("server closed the connection unexpectedly"),
                 psycopg2.errors.AdminShutdown(), psycopg2.errors.CannotConnectNow(),
                 psycopg2.errors.ConnectionFailure()):
        assert is_server_lost(lost), type(lost).__name__


def test_a_postgresql_servers_full_disk_is_no_room_and_said_without_its_file():
    """SQLSTATE 53100 is a full disk, as an OSError's ENOSPC is: said in words on a web page,
    which must not name the server's file. The rest of class 53 is no disk's."""
    full = psycopg2.errors.DiskFull('could not extend file "base/16385/16402": No space left on '
                                    "device\nHINT:  Check free disk space.\n")
    assert is_no_room(full) and not is_server_lost(full)
    assert why_not_written(full) == "the PostgreSQL server's disk is full"
    # a console line: the server's reason (here, without the diagnostics of a real server's
    # answer, its whole text) after the error's kind
    assert what_went_wrong(full) == (
        'DiskFull: could not extend file "base/16385/16402": No space left on device '
        "HINT: Check free disk space."
    )
    for other in (psycopg2.errors.OutOfMemory(), psycopg2.errors.TooManyConnections(),
                  psycopg2.errors.ConfigurationLimitExceeded(), psycopg2.errors.QueryCanceled()):
        assert not is_no_room(other), type(other).__name__


def test_a_zeo_servers_os_error_is_said_as_the_os_error_it_is():
    """ZEO's client raises its server's full disk as ServerException('builtins.OSError', ...):
    said by its reason, and no room, not "ServerException" and a bug to trace."""
    too_large = ServerException("builtins.OSError", (errno.EFBIG, "File too large"))
    assert is_no_room(too_large)
    assert why_not_written(too_large) == "File too large"  # on a web page
    assert main.cannot_write(too_large) == (
        "could not write (OSError: [Errno 27] File too large); "
        "the change in progress was rolled back"
    )
    # a server's error of another kind is no OSError, whatever its arguments
    other = ServerException("builtins.ValueError", ("bad",))
    assert not is_no_room(other) and why_not_written(other) == "ServerException"
    assert what_went_wrong(other) == "ServerException: ('builtins.ValueError', ('bad',))"


def test_a_full_disk_here_is_no_room_and_said_by_its_reason():
    for no_room in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        assert is_no_room(OSError(no_room, "no room")), no_room
    assert not is_no_room(OSError(errno.EACCES, "Permission denied"))
    assert why_not_written(OSError(errno.ENOSPC, "No space left on device")) == (
        "No space left on device"
    )


def test_a_conflict_and_a_read_only_database_are_said_in_words():
    """Neither has a text an operator can act on: a web page and a command's line say what
    happened."""
    assert why_not_written(ConflictError()) == "conflicting writes"
    assert why_not_written(ReadOnlyError()) == "the database is read-only"
    assert main.cannot_write(ConflictError()) == (
        "could not write (conflicting writes on every attempt: another process kept changing "
        "the same data); the change in progress was rolled back: try again"
    )
    assert main.cannot_write(ReadOnlyError()) == (
        "could not write (the database is read-only); the change in progress was rolled back"
    )


def test_a_lock_timeout_behind_relstorages_conflict_is_a_conflict_not_a_lost_server():
    """RelStorage raises a commit lock's failure as a conflict with the server's error as its
    __relstorage_cause__ (relstorage/adapters/locker.py): only a lost server's is said to be a
    lost server; a lock timeout is a conflict, rerun and said as one."""
    conflict = UnableToLockRowsToModifyError("Acquiring a lock during commit failed: timeout")
    conflict.__relstorage_cause__ = psycopg2.errors.LockNotAvailable(
        "canceling statement due to lock timeout\n"
    )
    assert retried_after(conflict) == "UnableToLockRowsToModifyError"
    assert what_went_wrong(conflict) == (
        "conflicting writes on every attempt: another process kept changing the same data"
    )
    conflict.__relstorage_cause__ = psycopg2.OperationalError("server closed the connection")
    assert retried_after(conflict) == "losing the PostgreSQL server as it waited for a lock"


def test_a_password_of_the_ini_is_never_shown():
    settings = {"zodbconn.uri": "postgres://app:s3cret@db:5432/s3cret?connect_timeout=5"}
    assert hide_passwords('database "s3cret" does not exist', settings) == (
        'database "***" does not exist'
    )
    assert hide_passwords("as it was", {"zodbconn.uri": "file:///srv/Data.fs"}) == "as it was"


WITHOUT_THE_EXTRA = """
import sys
sys.modules["psycopg2"] = sys.modules["relstorage"] = None  # an import of either fails
from webtest import TestApp
from ZEO.Exceptions import ClientDisconnected
from fftelemetry import failures, main
assert failures.POSTGRESQL_ERRORS == failures.POSTGRESQL_NO_ROOM == ()
assert failures.is_server_lost(ClientDisconnected()) and not failures.is_no_room(Exception())
app = TestApp(main({}, **{"zodbconn.uri": "file://%s/Data.fs",
                          "fftelemetry.session_secret": "s" * 32}))
print(app.get("/health").text, end="")
"""


def test_the_app_runs_without_the_postgresql_extra(tmp_path):
    script = WITHOUT_THE_EXTRA % tmp_path
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=False)
    assert (run.returncode, run.stdout) == (0, "OK\n"), run.stderr


class LosingItsServer:
    """A data manager, as a ZEO client's connection, whose server goes away in `phase`."""

    def __init__(self, phase):
        self.phase = phase

    def sortKey(self):
        return "losing"

    def abort(self, txn):
        pass

    tpc_abort = commit = tpc_begin = abort

    def tpc_vote(self, txn):
        if self.phase == "tpc_vote":
            raise ClientDisconnected()

    def tpc_finish(self, txn):
        if self.phase == "tpc_finish":
            raise ClientDisconnected()


@pytest.mark.parametrize("phase", ["tpc_vote", "tpc_finish"])
def test_a_commit_that_failed_in_its_second_phase_may_have_been_saved(phase):
    """Lost in the vote, nothing was saved; lost in tpc_finish, every resource had voted and
    the storage may have saved the change: a command's line does not say "rolled back"."""
    manager = transaction.TransactionManager()
    manager.get().join(LosingItsServer(phase))
    with pytest.raises(ClientDisconnected) as failed:
        manager.commit()
    line = main.cannot_write(failed.value)
    if phase == "tpc_vote":
        assert not in_second_phase(failed.value)
        assert line.endswith("; the change in progress was rolled back"), line
    else:
        assert in_second_phase(failed.value)
        assert line == (
            "could not write (the ZEO server cannot be reached) as the change was being saved: "
            "it may have been saved or not; look before running the command again"
        )


def test_an_error_chain_that_loops_is_read_once():
    """`raise ... from` can make a chain that loops (an error raised from its own context): the
    walk through it ends, and finds no second phase."""
    first, second = ClientDisconnected(), OSError(errno.EIO, "Input/output error")
    first.__cause__, second.__context__ = second, first
    assert not in_second_phase(first)
