"""Filters on the libraries' loggers (ZODB's, ZEO's client, RelStorage's): a failure is said once,
in one line, by our own error view or command (open_database's line at start-up), not also in a
library's ERROR and traceback above it. What only a library's record says (an outage over before a
request failed, a replica down) is kept, within the operator's logging levels. The apps' main
installs quiet_lost_servers' filters for the process; opening.py the others, as it opens the
databases."""

import logging

from ZEO.asyncio.client import Fallback
from ZEO.Exceptions import ServerException

from .failures import is_no_room, is_server_lost

RELSTORAGE_CONNECTIONS = "relstorage.adapters.postgresql.connmanager"
RELSTORAGE_RECONNECTS = "relstorage.adapters.connections"
RELSTORAGE_LOCKS = "relstorage.adapters.locker"
RELSTORAGE_SCRIPTS = "relstorage.adapters.scriptrunner"
UNABLE_TO_CONNECT = "Unable to connect: %s"  # relstorage/adapters/postgresql/connmanager.py


def quiet_lost_servers():
    """A lost database server (or a PostgreSQL server's full disk) is said once a request (or
    command) by the error view's line (the command's), not in a traceback of each library that
    met it. Once a process, however many apps it makes: addFilter skips a filter it already
    has."""
    logging.getLogger("ZODB.Connection").addFilter(not_a_lost_server)
    logging.getLogger(RELSTORAGE_CONNECTIONS).addFilter(not_a_lost_postgresql_server)
    logging.getLogger(RELSTORAGE_RECONNECTS).addFilter(not_a_lost_postgresql_server)
    # a commit waiting for a lock as the server goes: RelStorage asks the lost connection who
    # holds the lock, logs that failure with its traceback, and raises a conflict, whose rerun
    # meets the lost server and says so
    logging.getLogger(RELSTORAGE_LOCKS).addFilter(not_a_lost_server)
    # a PostgreSQL server's full disk: a new store connection cannot make its temporary tables
    # there, which RelStorage logs with its traceback before raising it
    logging.getLogger(RELSTORAGE_RECONNECTS).addFilter(not_for_want_of_room)


def not_a_lost_postgresql_server(record):
    """RelStorage logs a lost PostgreSQL server up to four times a request, twice with a
    traceback: the connection it lost (it tries again), its failure to connect, that the new try
    failed. The error view's line says it; the first record is kept, without its traceback, as
    the only trace of an outage over before a request failed (its next try connected), and so is
    its "Unable to connect to replica ..., now trying ...": the next one may well connect, and
    that line is all that says a replica of zodbconn.uri's replica_conf is down. At start-up the
    dropped "Unable to connect" is said again by open_database's one line."""
    if record.msg in ("Reconnect %s failed", UNABLE_TO_CONNECT):
        return False
    if record.exc_info and is_server_lost(record.exc_info[1]):  # a timeout keeps its traceback
        record.exc_info = record.exc_text = None
    return True


def not_a_lost_server(record):
    """ZODB.Connection logs an ERROR and a traceback for every object it could not load; for a
    lost database server (ZEO's, PostgreSQL's) the 503 page's view says it in one WARNING line
    instead."""
    return not (record.exc_info and is_server_lost(record.exc_info[1]))


def not_for_want_of_room(record):
    """Drops a record of a write that failed for want of room (a full disk)."""
    return not (record.exc_info and is_no_room(record.exc_info[1]))


def not_a_failed_statement(record):
    """Drops RelStorage's WARNING of the statement that failed as it made its tables (one of
    several lines): the one line says the server's error."""
    return not str(record.msg).startswith("script statement failed")


# How ZEO's client logs an error its server answered with, and names a connection made with
# read_only_fallback=true (its protocol's name ends with the fallback's marker).
FROM_SERVER = "%s from server: %s:%s"
READ_ONLY_ERROR = "ZODB.POSException.ReadOnlyError"
FALLBACK_CONNECTION = f", {Fallback!r}"
# How it logs its server's refusal of a storage name it does not serve (ZEO/asyncio/server.py)
REGISTRATION_FAILED = "Registration or cache validation failed, %s"
UNKNOWN_STORAGE = "unknown storage: "


def is_read_only_refusal(record):
    """Whether a record is ZEO's client logging its server's ReadOnlyError."""
    args = record.args
    return (
        record.msg == FROM_SERVER
        and isinstance(args, tuple)
        and len(args) == 3
        and args[1] == READ_ONLY_ERROR
    )


def unknown_storage(record):
    """The storage name a ZEO server refused as one it does not serve, from its client's
    record of that refusal (a URI's storage= that names none of runzeo's), or None."""
    refusal = record.args[0] if record.msg == REGISTRATION_FAILED and record.args else None
    if not isinstance(refusal, ServerException) or len(refusal.args) != 2:
        return None
    kind, args = refusal.args
    said = str(args[0]) if kind == "builtins.ValueError" and len(args) == 1 else ""
    return said.removeprefix(UNKNOWN_STORAGE) if said.startswith(UNKNOWN_STORAGE) else None


def from_a_fallback(record):
    """Whether a ZEO client's record is of a connection made with read_only_fallback=true."""
    return str(record.args[0]).endswith(FALLBACK_CONNECTION)


def hear_zeo_refusals(logger, refusals):
    """Keep in `refusals` each refusal that ZEO's client `logger` logs from now on, whatever the
    operator's logging levels: a read-only server's of a writable connection, and a server's of
    a storage name it does not serve (unknown_storage). A ZEO logger set to CRITICAL, or
    disabled, made no record of either, and the client waits on until wait_timeout: start-up
    said that the server could not be reached. So the logger makes ERROR records until the
    returned function is called, and a record the operator's levels would not have let through
    is dropped once looked at: the log shows what it showed. That function puts the logger back
    as it was."""
    level, disabled = logger.level, logger.disabled
    shown_from = logging.CRITICAL + 1 if disabled else logger.getEffectiveLevel()

    def note(record):
        read_only = is_read_only_refusal(record) and not from_a_fallback(record)
        if read_only or unknown_storage(record) is not None:
            refusals.append(record)
        return record.levelno >= shown_from

    logger.addFilter(note)
    logger.disabled = False
    lowered = shown_from > logging.ERROR
    if lowered:
        logger.setLevel(logging.ERROR)

    def stop():
        logger.removeFilter(note)
        logger.disabled = disabled
        if lowered:
            logger.setLevel(level)

    return stop


def fallback_refusal_as_info(record):
    """A ZEO client with read_only_fallback=true asks for a writable connection first, and a
    read-only server (a replica's) refuses it: ZEO logs that refusal as an ERROR before it
    settles for a read-only connection, as the URI told it to, so every command run on a replica
    logged an ERROR. That record alone is lowered to INFO, shown where the ZEO logger's INFO is
    (not by the commands or the shipped inis); a client that asked for a writable connection
    only, refused the same way, still logs its ERROR."""
    if not (is_read_only_refusal(record) and from_a_fallback(record)):
        return True
    record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
    return logging.getLogger(record.name).isEnabledFor(logging.INFO)
