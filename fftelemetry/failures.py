"""What a write that failed looks like, and how to say why in a few words."""

import builtins
import errno
import re
import traceback
from urllib.parse import urlsplit

from pyramid_zodbconn import get_uris
from ZEO.Exceptions import ClientDisconnected, ServerException
from ZODB.POSException import ConflictError, ReadOnlyError, StorageError

from .shown import error_text

try:  # the postgresql extra: RelStorage on psycopg2
    from psycopg2 import InterfaceError, OperationalError
    from psycopg2.errors import DiskFull, lookup
    from relstorage.adapters.interfaces import ReplicaClosedException
except ImportError:  # not installed: there is no PostgreSQL server to lose
    POSTGRESQL_ERRORS = POSTGRESQL_LOST = POSTGRESQL_NO_ROOM = ()
    OperationalError = None
else:
    # What RelStorage takes for a lost connection (its driver's disconnected_exceptions, in
    # relstorage/adapters/drivers.py). It raises one once it has tried to connect again, at the
    # start of a transaction, or at once in a load or a commit that the connection was part of.
    POSTGRESQL_ERRORS = (OperationalError, InterfaceError, ReplicaClosedException)
    # Of those, a lost connection's, by SQLSTATE: class 08 (connection exception) and a server
    # shutting down, crashed or starting up. An OperationalError is a statement cancelled
    # (statement_timeout), a lock timeout, a deadlock or a full disk on the server too: those
    # are answers of a server that was reached.
    POSTGRESQL_LOST = (
        InterfaceError,  # "connection already closed"
        ReplicaClosedException,
        *map(lookup, ("08000", "08001", "08003", "08004", "08006", "08007", "08P01")),
        *map(lookup, ("57P01", "57P02", "57P03")),
    )
    # A server whose disk has no room: 53100, what PostgreSQL answers for ENOSPC as a table's
    # file grows. Not the rest of class 53 (insufficient resources): out of memory (53200), too
    # many connections (53300), a configured limit (53400, max_locks_per_transaction) are no
    # disk's, and room on it would not help. A quota (EDQUOT) or a file size limit (EFBIG) on
    # the server is XX000, an internal error, told apart only by its (translated) text.
    POSTGRESQL_NO_ROOM = (DiskFull,)


def is_server_lost(exc):
    """Whether `exc` says the database server cannot be reached: ZEO's, or RelStorage's
    PostgreSQL (libpq's own failures, a connection refused or closed under it, carry no SQLSTATE
    and are psycopg2's OperationalError itself)."""
    if isinstance(exc, (ClientDisconnected, *POSTGRESQL_LOST)):
        return True
    return type(exc) is OperationalError and (exc.pgcode or "08").startswith("08")


def in_second_phase(exc):
    """Whether `exc` was raised in the second phase of a two-phase commit, a storage's
    tpc_finish (RelStorage has sent COMMIT, ZEO's client asked its server to finish), or while
    handling such an error: every resource had voted, so the change may have been saved or not,
    and nothing here can tell. Read from the frames the exceptions passed through, whatever
    transaction manager committed (pyramid_tm's, a command's, the sender's own): the transaction
    package calls tpc_finish (IDataManager's, then IStorage's) in that phase only, and records it
    nowhere else. Through __context__: the failed commit's afterCompletion, a RelStorage
    connection that cannot poll its lost server, raises an error of its own in its place."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = traceback.walk_tb(exc.__traceback__)
        if any(frame.f_code.co_name == "tpc_finish" for frame, _ in frames):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# What is said of a change whose commit failed in its second phase (in_second_phase).
SAVED_OR_NOT = "it may have been saved or not"


def lost_postgresql_server_behind(exc):
    """The lost PostgreSQL server's error behind RelStorage's conflict for a commit that was
    waiting for a lock as the server went, else None. Read from RelStorage's
    __relstorage_cause__: pyramid_tm raises a failed commit `from None`, dropping __cause__."""
    cause = getattr(exc, "__relstorage_cause__", None)
    return cause if isinstance(cause, POSTGRESQL_ERRORS) and is_server_lost(cause) else None


def retried_after(exc):
    """What a rerun's line says it follows: the conflict's kind, or a lost PostgreSQL server, for
    which RelStorage raises a conflict if its commit was waiting for a lock (a rerun: the server
    may be back, or only that connection was ended)."""
    if lost_postgresql_server_behind(exc) is not None:
        return "losing the PostgreSQL server as it waited for a lock"
    return type(exc).__name__


# The storage cannot write: a full disk (OSError), a read-only or lost database (StorageError,
# ZEO's ClientDisconnected among them; a PostgreSQL server's errors are psycopg2's own).
CANNOT_WRITE = (OSError, StorageError, *POSTGRESQL_ERRORS)
# A write that did not happen: the storage cannot write, or it conflicted on every attempt (a
# sender's commit: the next run re-sends, and the receiver counts each record once).
NOT_WRITTEN = (ConflictError, *CANNOT_WRITE)

READ_ONLY = "the database is read-only"

# A write the disk has no room for: no space left, a file size limit (ulimit -f), a quota.
NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def is_no_room(exc):
    """Whether `exc` is a write that failed for want of room, not a bug to trace: here, on the
    ZEO server (server_os_error) or on the PostgreSQL server (POSTGRESQL_NO_ROOM)."""
    exc = server_os_error(exc) or exc
    if isinstance(exc, POSTGRESQL_NO_ROOM):
        return True
    return isinstance(exc, OSError) and exc.errno in NO_ROOM


def server_os_error(exc):
    """The OSError a ZEO server's write met (its full disk, a file size limit), which its client
    raises as ServerException('builtins.OSError', (errno, reason)), a kind it does not unpickle;
    else None. Its name alone, "ServerException", would hide the reason."""
    if not isinstance(exc, ServerException) or len(exc.args) != 2:
        return None
    name, args = exc.args
    kind = getattr(builtins, name.removeprefix("builtins."), None)
    if not (name.startswith("builtins.") and isinstance(kind, type) and issubclass(kind, OSError)):
        return None
    return kind(*args) if isinstance(args, (tuple, list)) else None


def why_not_written(exc):
    """Why a write failed, in a few words: an OSError's reason without its file name (it may be
    shown to anybody), a ZEO server's too, else the kind of error; a read-only database's in
    words, its error's name saying nothing to the person reading the page; a lost server's by
    the server."""
    exc = server_os_error(exc) or exc
    if isinstance(exc, ConflictError):
        return "conflicting writes"
    if isinstance(exc, ReadOnlyError):
        return READ_ONLY
    if isinstance(exc, ClientDisconnected):  # its name is no reason to an admin reading it
        return "the ZEO server cannot be reached"
    if isinstance(exc, POSTGRESQL_ERRORS) and is_server_lost(exc):  # its text names the server
        return "the PostgreSQL server cannot be reached"
    if isinstance(exc, POSTGRESQL_NO_ROOM):  # its text names a file of the server's
        return "the PostgreSQL server's disk is full"
    return getattr(exc, "strerror", None) or type(exc).__name__


def what_went_wrong(exc):
    """A failed write for a console line: the exception's kind and text, or, for a lost ZEO
    server and a read-only database (whose exceptions have no text) and a conflict on every
    attempt (whose text is ZODB's oids and serials, nothing an operator can act on), what
    happened; a lost PostgreSQL server with libpq's reason (which may quote the database's
    name: see hide_passwords); a ZEO server's OSError as the OSError it is, and a PostgreSQL
    server's full disk by its own reason. Not escaped: the line that shows it escapes it
    (fftelemetry.shown)."""
    exc = server_os_error(exc) or exc
    if isinstance(exc, ClientDisconnected):
        return "the ZEO server cannot be reached"
    if isinstance(exc, POSTGRESQL_NO_ROOM):
        # the server's reason alone, as an OSError's: not its HINT ("Check free disk space."),
        # nor the CONTEXT of RelStorage's statement
        return f"{type(exc).__name__}: {exc.diag.message_primary or server_said(exc)}"
    if isinstance(exc, POSTGRESQL_ERRORS):
        reason = server_said(exc)
        if not is_server_lost(exc):  # a server that answered: a statement timeout, a deadlock
            return f"{type(exc).__name__}: {reason}"
        return f"the PostgreSQL server cannot be reached ({reason or type(exc).__name__})"
    if isinstance(exc, ConflictError):  # raised once run_in_transaction's attempts are spent
        lost = lost_postgresql_server_behind(exc)
        if lost is not None:  # a commit that waited for a lock as the server went
            return what_went_wrong(lost)
        return "conflicting writes on every attempt: another process kept changing the same data"
    if isinstance(exc, ReadOnlyError):  # zodbconn.uri's read_only=true; it has no text either
        return READ_ONLY
    return f"{type(exc).__name__}: {error_text(exc)}"


def server_said(exc):
    """A database driver's error text on one line: libpq's is of several, "FATAL: ..." (the
    severity, which says nothing a line's own words do not)."""
    return re.sub(r"\bFATAL:\s*", "", " ".join(error_text(exc).split()))


def hide_passwords(text, settings):
    """`text` with the password of every database URI of `settings` (zodbconn.uri) as ***: a
    database server's message quotes what it was asked for (a database's name, a user's), which
    may be the password, and a line must never show it."""
    for _, uri in get_uris(settings):
        password = urlsplit(uri).password
        if password:
            text = text.replace(password, "***")
    return text
