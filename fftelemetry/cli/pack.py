"""`fftelemetry pack [--days N]`: pack the database, so that what was deleted leaves its file.

ZODB never overwrites: every commit is appended to the storage, and the revisions it replaced
stay there. Records deleted on the records page are out of reach but still in Data.fs, keys and
values, and the file only grows. A pack copies what is current (and, with --days, the history of
the last N days) to a new file, which then replaces the old one. Meant for a weekly crontab line.
The store then notes when it packed, so the status page can say whether deleted records are
still in the file. Given the receiver's ini, it packs the receiver's database (RECEIVER_TOO).
"""

import argparse
import contextlib
import logging
import os

from ZEO.Exceptions import ClientDisconnected
from ZODB.POSException import StorageError

from ..failures import (
    NOT_WRITTEN,
    POSTGRESQL_ERRORS,
    hide_passwords,
    is_server_lost,
    what_went_wrong,
)
from ..resources import telemetry_store
from ..resources.store import utcnow
from ..scripting import database, file_storage, run_in_transaction
from ..telemetry.status import history_kept
from .bootstrap import is_receivers, quiet
from .errors import cannot_write as default_cannot_write
from .instructions import database_driver

HELP = (
    "pack the database (the app's, or the receiver's with its ini): drop the history of old "
    "revisions, deleted records included"
)
# The receiver's ini is taken too: its database keeps the old revisions of the buckets each
# batch rewrote (~12 KB for a batch of one record) until packed. The pack's use is not collected
# there, nor its time noted: the receiver has no telemetry nor store of its own.
RECEIVER_TOO = True

MAX_DAYS = 36500  # a pack time before 1900 is no time ZODB can name


def days(text):
    # int() would take " 7", "+7" and other scripts' digits too
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_DAYS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0 to {MAX_DAYS}")
    return int(text)


def add_arguments(parser):
    parser.add_argument(
        "--days",
        type=days,
        default=0,
        metavar="N",
        help="keep the history of the last N days (default 0: none, so nothing deleted stays "
        "in the file). Kept history lets you recover a mistaken change, a delete say, with "
        "ZODB's tools, and lets a long read that began before the pack (an export, another "
        "process's) finish; but what was deleted in those days stays in the file until a "
        "later pack drops it.",
    )


def run(registry, args):
    db = database(registry)
    file = file_storage(db.storage)
    if file is not None:
        # FileStorage keeps the file from before the pack as <its file>.old by default (Data.fs.old,
        # the receiver's receiver.fs.old): every deleted record would stay on disk in it.
        file.pack_keep_old = False
    before, now = db.getSize(), utcnow()
    noted = not is_receivers(registry)  # the receiver has no store to note its pack in
    # both log a failed pack with its traceback before raising it; main says it in one line
    with quiet("ZODB.DB"), without_tracebacks(RELSTORAGE_PACK):
        try:
            db.pack(t=now.timestamp(), days=args.days)
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM
            drop_unfinished_copy(file)
            raise
        except NOT_WRITTEN as exc:
            left = left_by_failed_pack(db, exc, noted=noted)
            raise PackFailed(what_went_wrong(exc), left) from exc
    try:
        if noted:
            record_pack(registry, now, args.days)
    finally:  # the pack is done, noted or not; "after" is the file's size with the note, if any
        print(f"Packed {where(db)}: {before:,} bytes before, {size_after(db, registry.settings)}; "
              f"{history_kept(args.days)}.{server_note(db)}")
    return 0


RELSTORAGE_PACK = "relstorage.adapters.packundo"


@contextlib.contextmanager
def without_tracebacks(logger_name):
    """The logger's records but those with a traceback (RelStorage's "pack: failed"), for the
    block: its INFO lines are the pack's progress, which a long pack's log needs."""
    logger = logging.getLogger(logger_name)
    logger.addFilter(no_traceback)
    try:
        yield
    finally:
        logger.removeFilter(no_traceback)


def no_traceback(record):
    return not record.exc_info


def drop_unfinished_copy(file):
    """ZODB removes the copy it was making (Data.fs.pack) when the pack fails with an OSError
    only: one stopped during the copy left it, as large as the database, until the next pack
    overwrote it. A stop waits while the copy is swapped in (fftelemetry.cli.stopping), so there
    is either a whole Data.fs and a copy no one needs, or no copy left."""
    if file is not None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{file.getName()}.pack")


def size_after(db, settings):
    """The size after the pack, for its line, or why it is unknown: RelStorage asks its server,
    which may have gone as the pack was noted, or answer with an error (the query cancelled by
    a statement_timeout, say). The pack is done either way: raised, the error replaced the one
    that said why the note failed, or made a pack done and noted say "could not write (…); the
    change in progress was rolled back", with no line of it."""
    try:
        return f"{db.getSize():,} after"
    except (ClientDisconnected, *POSTGRESQL_ERRORS) as exc:
        if is_server_lost(exc):
            return "the size after unknown (the server cannot be reached)"
        return f"the size after unknown ({hide_passwords(what_went_wrong(exc), settings)})"


def record_pack(registry, at, days):
    """Note the pack in the store, for the status page. A transaction of its own, after the
    pack: a new revision of the store, which holds no record, only where the records are."""
    try:
        run_in_transaction(
            registry, lambda env: telemetry_store(env["request"]).mark_packed(at, days)
        )
    except NOT_WRITTEN as exc:
        raise NotRecorded(what_went_wrong(exc)) from exc


class NotRecorded(StorageError):
    """The pack is done, but noting it in the store failed (a write error or conflicts on every
    attempt, said by main)."""


class PackFailed(StorageError):
    """The pack failed (a full disk, a lost server): its args are why, and what its storage
    left."""


def left_by_failed_pack(db, exc, noted=True):
    """What a failed pack left, which is the storage's way of packing: a FileStorage (ours, or
    a ZEO server's) writes a copy and replaces its file only with a complete one, ZODB
    removing a half-written copy; RelStorage deletes rows in place, committing as it goes
    (relstorage/adapters/packundo.py), and never an object still in use. `noted`: whether a
    pack is noted for a status page, which the receiver's is not (it has none)."""
    if file_storage(db.storage) is not None:
        return "the database file is replaced only once its copy is complete, so nothing was lost"
    if database_driver(db) == "ZEO":
        left = "the server replaces its file only once its copy is complete, so nothing was lost"
        if isinstance(exc, ClientDisconnected):  # the server runs the pack in a thread of its
            # own, which a lost connection does not stop
            left += "; a server still running goes on with the pack"
            left += ", unnoted on the status page" if noted else ""
        return left
    if database_driver(db) == "RelStorage":
        return (
            "RelStorage deletes what a pack drops (old revisions, unreachable objects) in "
            "transactions of its own: what it deleted before the failure is gone, the rest "
            "stays until the next pack, and nothing current was lost"
        )
    return f"what a failed pack leaves is {type(db.storage).__name__}'s to say"


def cannot_write(exc):
    """What main says when the pack fails (see left_by_failed_pack), or when the pack is done
    and only noting it failed; or, for the write of the command's use before the pack, the
    default line."""
    if isinstance(exc, NotRecorded):
        return (
            f"the database was packed, but the time of the pack could not be recorded ({exc}); "
            "the status page still shows the pack before it"
        )
    if isinstance(exc, PackFailed):
        why, left = exc.args
        return f"the pack failed ({why}); {left}"
    return default_cannot_write(exc)


def where(db):
    file = file_storage(db.storage)
    if file is not None:
        return file.getName()
    if database_driver(db) == "ZEO":
        return "the ZEO server's database (sizes as the server reports them)"
    if database_driver(db) == "RelStorage":
        # PostgreSQL keeps the room of the rows a pack deletes, to reuse: its size need not drop
        return (
            "the RelStorage database (sizes as its server reports them, which a pack need not "
            "shrink)"
        )
    return f"the database ({type(db.storage).__name__})"


def server_note(db):
    """What a ZEO server's FileStorage kept of its file from before the pack: <its file>.old,
    unless configured not to (pack-keep-old), which the server does not tell its clients. Said as
    seen when the server's file is on this machine, else as it may be."""
    if database_driver(db) != "ZEO":
        return ""
    name = servers_file(db)
    if name is None or not is_seen_here(name, db):
        # a relative path (`runzeo -f Data.fs`) is from the folder the server started in, not
        # said unless seen from this command's; a name that is no path is not shown at all
        named = name is not None and os.path.isabs(name)
        old = f"{name}.old" if named else "its file's .old"
        return (
            " Unless its configuration says pack-keep-old false (the shipped zeo.conf does), the"
            f" server keeps the file from before as {old}: see docs/telemetry.md."
        )
    name = os.path.abspath(name)
    if not os.path.exists(f"{name}.old"):  # pack-keep-old false: removed once replaced
        return ""
    return (
        f" The server kept the file from before as {name}.old, deleted records and all (its"
        " configuration does not say pack-keep-old false): see docs/telemetry.md."
    )


def servers_file(db):
    """The ZEO server's FileStorage file as its configuration names it, or None: the name the
    server gives its storage as the client connects (ClientStorage keeps it in `_info`, with no
    API of its own). A relative one (`runzeo -f Data.fs`, the shipped zeo.conf's `var/Data.fs`)
    is from the folder the server was started in, which is this command's when the file is seen
    there (`make run` starts the server in the project's folder, where its commands are run). A
    storage of another kind has a name that is no path, which is_seen_here does not find."""
    info = getattr(db.storage, "_info", None)
    name = info.get("name") if isinstance(info, dict) else None
    return name if isinstance(name, str) else None


def is_seen_here(name, db):
    """Whether the server's file is on this machine: a file of that path, of the size the
    server reports (the same path on another machine is another file)."""
    try:
        return os.path.getsize(name) == db.getSize()
    except OSError:
        return False
