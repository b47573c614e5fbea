"""What a write that failed looks like, and how to say why in a few words."""

import errno

from ZEO.Exceptions import ClientDisconnected
from ZODB.POSException import ConflictError, ReadOnlyError, StorageError

from .shown import error_text

# The storage cannot write: a full disk (OSError), a read-only or lost database (StorageError).
CANNOT_WRITE = (OSError, StorageError)
# A write that did not happen: the storage cannot write, or it conflicted on every attempt (a
# sender's commit: the next run re-sends, and the receiver counts each record once).
NOT_WRITTEN = (ConflictError, *CANNOT_WRITE)

READ_ONLY = "the database is read-only"

# A write the disk has no room for: no space left, a file size limit (ulimit -f), a quota.
NO_ROOM = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def is_no_room(exc):
    """Whether `exc` is a write that failed for want of room, not a bug to trace."""
    return isinstance(exc, OSError) and exc.errno in NO_ROOM


def why_not_written(exc):
    """Why a write failed, in a few words: an OSError's reason without its file name (it may be
    shown to anybody), else the kind of error; a read-only database's in words, its error's
    name saying nothing to the person reading the page."""
    if isinstance(exc, ConflictError):
        return "conflicting writes"
    if isinstance(exc, ReadOnlyError):
        return READ_ONLY
    return getattr(exc, "strerror", None) or type(exc).__name__


def what_went_wrong(exc):
    """A failed write for a console line: the exception's kind and text, or, for a lost ZEO
    server and a read-only database (whose exceptions have no text) and a conflict on every
    attempt (whose text is ZODB's oids and serials, nothing an operator can act on), what
    happened. Not escaped: the line that shows it escapes it (fftelemetry.shown)."""
    if isinstance(exc, ClientDisconnected):
        return "the ZEO server cannot be reached"
    if isinstance(exc, ConflictError):  # raised once run_in_transaction's attempts are spent
        return "conflicting writes on every attempt: another process kept changing the same data"
    if isinstance(exc, ReadOnlyError):  # zodbconn.uri's read_only=true; it has no text either
        return READ_ONLY
    return f"{type(exc).__name__}: {error_text(exc)}"
