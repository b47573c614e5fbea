"""The ini's database, opened at start-up for the app and the receiver alike (pyramid_zodbconn)
and brought up to date, or start-up stopped in one line saying why: a setting or URI refused, no
ZEO server to reach or a read-only one, a RelStorage database server that refuses or cannot be
reached, a folder or a file that is not there, a full disk."""

import logging
import os
import re
import threading
from contextlib import suppress
from importlib.metadata import entry_points
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyramid_zodbconn
import zodburi
from pyramid_zodbconn import get_uris
from zc.lockfile import LockError
from ZEO.Exceptions import ClientDisconnected, ServerException
from ZODB.FileStorage.FileStorage import FileStorageFormatError, packed_version
from ZODB.POSException import ConflictError, ReadOnlyError, StorageError
from ZODB.utils import z64
from zodburi.datatypes import convert_int

from .failures import (
    POSTGRESQL_NO_ROOM,
    hide_passwords,
    is_no_room,
    server_said,
    why_not_written,
)
from .library_logs import (
    RELSTORAGE_SCRIPTS,
    fallback_refusal_as_info,
    hear_zeo_refusals,
    not_a_failed_statement,
    not_for_want_of_room,
    unknown_storage,
)
from .resources.generations import GenerationError, named
from .scripting import database, databases, file_storage
from .settings import DATABASE_VARIABLE
from .shown import LOGGED_CHARS, quoted, shown

log = logging.getLogger(__name__)


def require_database(settings, program, variable=None):
    """Stop, in one line, an app whose ini names no database: pyramid_zodbconn would start
    without one and fail every request that needs it. `variable`: the app's ZODBCONN_URI, which
    may name it instead."""
    if not str(settings.get("zodbconn.uri") or "").strip():
        instead = f", or {variable} in the environment or .env" if variable else ""
        raise SystemExit(
            f"{program}: no database: set zodbconn.uri in the ini{instead} (zeo://, file://; "
            "see development.ini)"
        )


def refused_parameter(uri):
    """What zodburi refuses in the query of `uri` (zodbconn.uri), naming the parameter; None if
    not a parameter. Its own error says "invalid literal for int() with base 10: 'x'" of a value
    it cannot convert, without the parameter's name: so each parameter is tried alone, by
    zodburi itself, which opens no storage to resolve a URI."""
    try:
        zodburi.resolve_uri(uri)
    except zodburi.UnknownDatabaseKeywords as exc:
        scheme = uri.partition(":")[0]
        unknown = "unknown parameter" + ("s" if len(exc.kw) > 1 else "")
        return f"{unknown} {', '.join(exc.kw)} for a {scheme}:// database"
    except ValueError:
        base, _, query = uri.partition("?")
        if value_error(base) is not None:  # its host or port (zeo://host:abc): no parameter's
            return None
        for name, value in parse_qsl(query):
            error = value_error(f"{base}?{urlencode({name: value})}")
            if error is not None:
                return f"{name}={quoted(value)} is refused: {error}"
    except Exception:
        return None  # not a parameter's (no resolver for its scheme, say): left to its error
    return None


def failed_uri(registry):
    """(setting, URI) of the database pyramid_zodbconn failed to open, None if it opened every
    one: it opens them in get_uris' order (zodbconn.uri, then each zodbconn.uri.NAME) and stops
    at the first that fails, so a named one's error is not the primary's to explain."""
    uris = list(get_uris(registry.settings))
    opened = len(opened_databases(registry))
    if opened == len(uris):
        return None
    name, uri = uris[opened]
    return setting_of(name), uri


def opened_databases(registry):
    """The databases pyramid_zodbconn opened: ZODB.DB maps each by its name before it makes its
    root, which can fail (read-only, a full disk), and pyramid_zodbconn gives it an
    ActivityMonitor once it is made. Counted by the map alone, a read-only zodbconn.uri with no
    root was said to be the zodbconn.uri.NAME after it, and a read-only named one the primary."""
    return [db for db in databases(registry) if db.getActivityMonitor() is not None]


def setting_of(name):
    """The setting of get_uris' database `name`: zodbconn.uri.NAME, the primary's (None)
    zodbconn.uri."""
    return f"zodbconn.uri.{name}" if name else "zodbconn.uri"


def setting_named(name, where, set_in, global_config):
    """How a line names the setting `name` (zodbconn.uri, zodbconn.uri.NAME) that holds a URI
    refused: with the ini it is in, or as ZODBCONN_URI and where that was set (`where`)."""
    if set_in and name == "zodbconn.uri":  # the primary's, named by ZODBCONN_URI
        return where
    # a zodbconn.uri.NAME has no variable: it is the ini's, whatever names the primary
    return f"{name} in {shown(global_config['__file__'])}" if "__file__" in global_config else name


def refused_setting(registry, where, uri_name, set_in, global_config):
    """(where, uri_name) for start-up's lines about the database it failed on (see naming)."""
    name, _ = failed_uri(registry) or ("zodbconn.uri", None)
    return naming(name, where, uri_name, set_in, global_config)


def naming(name, where, uri_name, set_in, global_config):
    """(where, uri_name) for start-up's lines about the database of the setting `name`: a named
    database's zodbconn.uri.NAME, with the ini it is in, in place of the primary's `where` (the
    ini, or ZODBCONN_URI's) and `uri_name` (zodbconn.uri or ZODBCONN_URI)."""
    if name == "zodbconn.uri":
        return where, uri_name
    return setting_named(name, where, set_in, global_config), name


# A URI's scheme (RFC 3986): what comes before its "://", and never its password.
URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def unknown_kind(uri):
    """Why zodburi has no storage for `uri`, without the URI, which its own error quotes whole
    (a PostgreSQL one with its password): by the kind it names, and the kinds it knows here.
    `postgresql://` is what libpq and SQLAlchemy call it; RelStorage's is `postgres://`."""
    known = sorted(point.name for point in entry_points(group="zodburi.resolvers"))
    kinds = ", ".join(f"{name}://" for name in known)
    scheme, sep, _ = uri.strip().partition("://")
    if not sep or not URI_SCHEME.fullmatch(scheme):
        return f"is no database URI: it starts with none of {kinds}"
    said = f"no database of the kind {scheme}:// is known here (only {kinds})"
    if scheme.lower() in ("postgresql", "postgres", "pg"):
        if "postgres" in known:
            return f"{said}: RelStorage's PostgreSQL is postgres://"
        return f"{said}: RelStorage's postgres:// comes with the postgresql extra"
    return said


def value_error(uri):
    """zodburi's ValueError resolving `uri`, if that is what it raises."""
    try:
        zodburi.resolve_uri(uri)
    except ValueError as exc:
        return exc
    except Exception:
        return None  # an unknown parameter, say: not a value it could not convert
    return None


NO_EVOLVE = "fftelemetry.no_evolve"


def open_database(config, global_config, generations, program, set_in=None):
    """Open the ini's database (pyramid_zodbconn) and bring it up to date, for the app and the
    receiver alike; stop in one line without a ZEO server to reach, or on a database a newer
    version has changed (no request may write to it), or on a read-only one that needs a write
    first. One of an older generation is evolved. `set_in`: where ZODBCONN_URI, which named the
    app's database in place of the ini's zodbconn.uri, was set; the lines name it instead."""
    # pserve's config file, as given
    where = shown(set_in or global_config.get("__file__", "zodbconn.uri"))
    uri_name = DATABASE_VARIABLE if set_in else "zodbconn.uri"
    # a console command's dry run loads the app with this option: it must not evolve either
    evolve = global_config.get(NO_EVOLVE) != "true"
    files = file_paths(config.registry.settings)
    refuse_links_to_nothing(
        files, program, lambda name: naming(name, where, uri_name, set_in, global_config)
    )
    # a database with no file yet: what a start that cannot write makes of it is removed
    made = {
        path: [name for name in (path, f"{path}.index", f"{path}.tmp") if not os.path.lexists(name)]
        for path in files
        if not os.path.lexists(path)
    }
    # before the client connects, which is when it logs that line; added once (addFilter)
    zeo_client_log = logging.getLogger("ZEO.asyncio.client")
    zeo_client_log.addFilter(fallback_refusal_as_info)
    # A read-only server refuses a client that asked to write, and the client waits on until
    # wait_timeout, which then reads as a server that cannot be reached: noted, to say why.
    refusals = []
    stop_hearing = hear_zeo_refusals(zeo_client_log, refusals)
    # the transactions of this thread, which make a new database's ZODB root and evolve an
    # older one: on a full disk, the abort that follows a failed commit fails as it did, and
    # that second error, logged with its traceback, is the one line's to say
    txn_log = logging.getLogger(f"txn.{threading.get_ident()}")
    txn_log.addFilter(not_for_want_of_room)
    # RelStorage's WARNING before its driver's error for a server it cannot connect to, which
    # the one line says, is dropped by quiet_lost_servers' filter, called before this; and one
    # of the statement that failed as it made its tables, whose error the line says, here
    relstorage_scripts_log = logging.getLogger(RELSTORAGE_SCRIPTS)
    relstorage_scripts_log.addFilter(not_a_failed_statement)
    try:
        try:
            include_zodbconn(config)
            generations.bring_up_to_date(database(config.registry), where, evolve)
        except BaseException:
            # the lines below about one database name its setting (a zodbconn.uri.NAME's),
            # not the primary's
            failed_where, failed_uri_name = refused_setting(
                config.registry, where, uri_name, set_in, global_config
            )
            # what was opened is closed, not left to the garbage collector: a FileStorage writes
            # its index and releases its lock (a refused start in a running process, a test's,
            # kept the same file from being opened again), a ZEO client ends its connection
            for db in databases(config.registry):
                close_after_failure(db)
            raise
    except ClientDisconnected:
        storages = list(filter(None, map(unknown_storage, refusals)))
        if storages:
            raise SystemExit(
                f"{program}: the ZEO server named in {failed_where} serves no storage named "
                f"{shown(quoted(storages[0]))}: name one it serves in {failed_uri_name}'s "
                "storage= (runzeo's default is 1)"
            ) from None
        if refusals:
            raise SystemExit(
                f"{program}: the ZEO server named in {failed_where} is read-only and refused a "
                "writable connection: name the writable server, or add read_only=true to "
                f"{failed_uri_name} for a replica"
            ) from None
        raise SystemExit(
            f"{program}: cannot reach the ZEO server named in {failed_where}: is runzeo running?"
        ) from None
    except ReadOnlyError:  # ZODB.DB makes the ZODB root of a storage without one (a new ZEO
        # server's, a file of 0 bytes) as it opens it: read-only, it cannot
        raise SystemExit(f"{program}: {generations.not_made(named(failed_where))}") from None
    except FileNotFoundError as exc:
        # a read-only FileStorage does not make a missing file (a writable one does); neither
        # makes a missing folder (a volume not mounted, a misspelt path), which pserve said in a
        # traceback. A file that is not a database's is left to its own error: one missing
        # after every database opened is not (the transfer log, zodbconn.transferlog, is next)
        name, failed = exc.filename or "", failed_uri(config.registry)
        if not name or failed is None:
            raise
        # a relative file:// path is the working folder's: named whole, and "" is that folder
        folder = os.path.dirname(os.path.abspath(name))
        if not os.path.isdir(folder):
            raise SystemExit(
                f"{program}: {named(failed_where)} cannot be opened: its folder, "
                f"{shown(folder)}, does not exist (a volume not mounted? a misspelt path?), and "
                "opening a database does not make one"
            ) from None
        if os.path.lexists(name):
            raise
        _, uri = failed
        if is_writable(uri):
            # what a writable storage failed to make in a folder that is there (RelStorage's
            # sqlite:// data_dir under /proc, say): not "opened read-only it is not made"
            raise SystemExit(
                f"{program}: {named(failed_where)} cannot be opened: {shown(name)} could not be "
                f"made ({exc.strerror})"
            ) from None
        missing = generations.not_made(named(failed_where), shown(exc.filename))
        raise SystemExit(f"{program}: {missing}") from None
    # a full disk (or ulimit -f) as a FileStorage is opened, or as a new ZEO server's makes the
    # ZODB root, which its client raises as a ServerException (failures.server_os_error), or as
    # a PostgreSQL server's makes RelStorage's tables or the root (DiskFull)
    except (OSError, ServerException, *POSTGRESQL_NO_ROOM) as exc:
        if not is_no_room(exc):
            raise
        # the line names every new database's file: the ini's (or ZODBCONN_URI's) line
        raise SystemExit(f"{program}: {not_written(where, exc, made)}") from None
    except LockError:  # a file:// FileStorage another process holds (a running pserve, say)
        _, uri = failed_uri(config.registry) or (None, "")
        held = f", {shown(file_path(uri))}," if uri.startswith("file://") else ""
        raise DatabaseInUse(
            f"{program}: {named(failed_where)}{held} is in use by another process (a file:// "
            "FileStorage allows only one); serve it with ZEO (zeo://, see development.ini) to "
            "share it",
            f"{named(failed_where)}{held}",
        ) from None
    except FileStorageFormatError as exc:  # its text is the file's name alone
        raise SystemExit(
            f"{program}: the database of {failed_where}, {shown(exc)}, is not a ZODB FileStorage "
            f"file ({failed_uri_name} names another kind of file?)"
        ) from None
    except GenerationError as exc:
        raise SystemExit(f"{program}: {exc}") from None
    except zodburi.NoResolverForScheme as exc:  # its text is the whole URI, password and all
        name, _ = failed_uri(config.registry) or ("zodbconn.uri", None)
        setting = setting_named(name, where, set_in, global_config)
        raise SystemExit(f"{program}: {setting}: {unknown_kind(exc.uri)}") from None
    except (ValueError, zodburi.UnknownDatabaseKeywords):  # before its storage is opened
        name, uri = failed_uri(config.registry) or (None, None)
        refused = refused_parameter(uri) if uri else None
        if refused is None:
            raise
        setting = setting_named(name, where, set_in, global_config)
        raise SystemExit(f"{program}: {setting}: {shown(refused)}") from None
    except Exception as exc:
        # after every database opened (an evolve's), the primary's
        _, uri = failed_uri(config.registry) or next(get_uris(config.registry.settings))
        refusal = database_server_refusal(
            exc, uri, config.registry.settings, failed_where, failed_uri_name
        )
        if refusal is None:
            raise
        raise SystemExit(f"{program}: cannot open the {refusal}") from None
    finally:
        stop_hearing()
        txn_log.removeFilter(not_for_want_of_room)
        relstorage_scripts_log.removeFilter(not_a_failed_statement)


class DatabaseInUse(SystemExit):
    """open_database's line for a file:// FileStorage another process holds; `held` names the
    database (and its file), for a command that has its own advice: `fftelemetry pack` on the
    receiver's ini, whose receiver is the one holding it."""

    def __init__(self, line, held):
        super().__init__(line)
        self.held = held

    def __reduce__(self):
        # Unpickling calls the class with these: both arguments its __init__ takes, then the
        # instance's dict back (its notes, from add_note).
        return type(self), (*self.args, self.held), self.__dict__


def include_zodbconn(config):
    """pyramid_zodbconn opens the ini's databases. Processes started at the same moment on a new
    database (systemd starting two units, replicas, a cron line as the app starts) each make
    what it lacks as they open it, and all but the first to commit it fail: one opens its
    databases again and finds it made. Each thing of each database is made once, so losing the
    same race twice is another fault, raised; one may lose the race for RelStorage's tables, then
    the root's, and then those of a new zodbconn.uri.NAME's, which is opened after them."""
    lost = set()
    while True:
        try:
            if lost:  # config.include runs an includeme once a registry: the function itself
                pyramid_zodbconn.includeme(config)
            else:
                config.include("pyramid_zodbconn")
            return
        except Exception as exc:
            made = made_by_another(exc)
            # which database: pyramid_zodbconn opens them in turn and stops at the one that
            # failed, which holds a root it could not commit, or no storage without its tables
            race = (made, len(databases(config.registry)))
            if made is None or race in lost:
                raise
            lost.add(race)
        log.info("another process made the new database's %s as this one opened it: "
                 "opening it again", made)
        for db in databases(config.registry):
            close_after_failure(db)


def made_by_another(exc):
    """What another process made of a new database first, that `exc` says this one failed to
    make too; None for any other error. ZODB's DB makes the root (oid 0) as it opens a database
    without one: the second commit of it conflicts. RelStorage makes its tables, in one
    transaction, as it opens a new database: PostgreSQL holds the second's first one until the
    first's transaction ends, then finds it a duplicate in its catalogs, all of them made."""
    if isinstance(exc, ConflictError):
        return "root" if exc.oid == z64 else None
    if is_dbapi_error(exc) and CATALOG_DUPLICATE in str(exc):
        return "RelStorage tables"
    return None


def is_dbapi_error(exc):
    """Whether `exc` is a database driver's error: each driver has its own classes, all named
    as DB-API 2 names them (a DatabaseError, or an InterfaceError)."""
    return bool({cls.__name__ for cls in type(exc).__mro__} & {"DatabaseError", "InterfaceError"})


LIBPQ_INVALID = "the connection string is not valid"
SCHEMA_MISMATCH = "Schema mismatch: a history-"  # RelStorage's, history-free or -preserving
CATALOG_DUPLICATE = 'violates unique constraint "pg_'  # an index of PostgreSQL's own catalogs
SERVERS = {"postgres": "PostgreSQL", "mysql": "MySQL", "oracle": "Oracle"}


def database_server_refusal(exc, uri, settings, where, uri_name="zodbconn.uri"):
    """Why a RelStorage database's server refused a connection or could not be reached (not
    running, a wrong password, no such database), in words that name the kind of server and
    hold no password of zodbconn.uri; None for any other error. Each driver has its own
    exception classes, all named as DB-API 2 names them: a DatabaseError (OperationalError for
    a server not reached or refusing) or an InterfaceError; RelStorage's own refusal is a
    StorageError (a keep_history the database was not made with), which pserve showed in a
    traceback. `uri`: the database's; `uri_name`: the setting that holds it (zodbconn.uri,
    zodbconn.uri.NAME or ZODBCONN_URI)."""
    if not (is_dbapi_error(exc) or isinstance(exc, StorageError)):
        return None
    relstorage_schemes = {
        point.name for point in entry_points(group="zodburi.resolvers")
        if point.value.startswith("relstorage.")
    }
    parts = urlsplit(uri)
    if parts.scheme not in relstorage_schemes:
        return None
    server = SERVERS.get(parts.scheme, "RelStorage")
    unwritten = [name for name, part in unwritten_parts(parts) if part is None]
    if unwritten and parts.scheme == "postgres":
        # RelStorage writes a part the URI leaves out as the word None (port='None')
        return (
            f"{server} database named in {where}: {uri_name} leaves out its "
            f"{', '.join(unwritten)}, which RelStorage needs written out "
            "(postgres://user:password@host:port/dbname)"
        )
    text = hide_passwords(server_said(exc), settings)
    if text.startswith(SCHEMA_MISMATCH):
        text += f" ({uri_name}'s keep_history must be what the database was made with)"
    elif 'referenced table "object_state"' in text:  # history's tables beside a history-free one
        text += f" (a history-free database? {uri_name} then needs keep_history=false)"
    if text == LIBPQ_INVALID:
        text += (
            f" (RelStorage makes it from {uri_name}: a ' or a backslash in the password? its "
            "ssl_mode, which libpq does not know? set PGSSLMODE in the environment instead)"
        )
    return f"{server} database named in {where}: {shown(text or type(exc).__name__, LOGGED_CHARS)}"


def unwritten_parts(uri):
    return [
        ("user", uri.username), ("password", uri.password), ("host", uri.hostname),
        ("port", uri.port), ("database name", uri.path.strip("/") or None),
    ]


def close_after_failure(db):
    """Close a database a start failed on. On a full disk, a FileStorage's close flushes what
    the failed commit left in the file's buffer (the truncation meant to drop it needs that
    flush too), and fails as the commit did: that part of a transaction is cut off, as ZODB
    meant to, or the next start would set it aside as "damaged records" in a .tr file; and the
    start's own error is the one to say, not the close's."""
    # a FileStorage, or the one the BlobStorage of ?blobstorage_dir= wraps
    file = file_storage(db.storage)
    is_file = file is not None and os.path.isfile(file.getName())
    committed = file.getSize() if is_file else None  # where its last transaction ends
    try:
        db.close()
    except OSError as exc:
        if not is_no_room(exc):
            raise
        if is_file:  # its lock still held: the close stopped before releasing it
            path = file.getName()
            if os.path.getsize(path) > committed:
                os.truncate(path, committed)


def file_paths(settings):
    """The file of each file:// database the ini names, as zodburi opens it: its setting's name
    (zodbconn.uri, zodbconn.uri.NAME) and whether it is opened writable."""
    return {
        file_path(uri): (setting_of(name), is_writable(uri))
        for name, uri in get_uris(settings) if uri.startswith("file://")
    }


def file_path(uri):
    """The file of a file:// URI, as zodburi opens it."""
    return os.path.normpath(uri.removeprefix("file://").partition("?")[0])


def is_writable(uri):
    """Whether zodburi opens the storage of `uri` (a file://, a RelStorage's) writable: its
    read_only, as zodburi reads it (one it refuses is left to its own line, after this)."""
    read_only = dict(parse_qsl(uri.partition("?")[2])).get("read_only", "")
    with suppress(ValueError):
        return not convert_int(read_only)
    return True


# The files a writable FileStorage opens beside its own as it is opened, which it cannot make in
# a folder that is not there (its .index, a link to anywhere, it replaces with a file of its own)
OPENED_BESIDE = (".lock", ".tmp")


def refuse_links_to_nothing(files, program, named_by):
    """Stop, before anything is opened, on a database file that is a link to nothing (a volume
    not mounted, a shared file gone): a writable FileStorage made a new, empty database at the
    link's target, where the target's folder was there, and failed in a traceback where it was
    not, as a read-only one did. Nor is it said to be a read-only database's missing file: it
    may be opened writable, and the fix is the link's, not the config's. Nor, opened writable,
    on its .lock or .tmp linked into a folder that is not there, which it failed on in a
    traceback. `files`: file_paths'; `named_by`: (where, uri_name) of a setting's name."""
    for path, (name, writable) in files.items():
        where, uri_name = named_by(name)
        if os.path.islink(path) and not os.path.exists(path):
            raise SystemExit(
                f"{program}: {named(where)}, {shown(path)}, is a link to "
                f"{shown(os.path.realpath(path))}, which does not exist (a volume not mounted? "
                "a file moved or deleted?): nothing was opened or made; restore what it links "
                f"to, or name the database's file in {uri_name}"
            )
        for companion in (f"{path}{suffix}" for suffix in OPENED_BESIDE if writable):
            if links_into_nothing(companion):
                raise SystemExit(
                    f"{program}: {named(where)}, {shown(path)}, cannot be opened: "
                    f"{shown(companion)} is a link to {shown(os.path.realpath(companion))}, "
                    "whose folder does not exist (a volume not mounted? a folder moved or "
                    "deleted?): nothing was opened or made; restore that folder, or remove the "
                    "link (a FileStorage makes that file itself)"
                )


def links_into_nothing(path):
    """Whether `path` is a link whose target's folder does not exist: a file cannot be made
    there (a link to a missing file in a folder that is there is made as the file)."""
    return os.path.islink(path) and not os.path.isdir(os.path.dirname(os.path.realpath(path)))


def not_written(where, exc, made):
    """The line for a database that could not be written as it was opened. ZODB makes a new
    database's root as it opens it, and nothing else: a new one held nothing to lose, and what
    this start made of it (a file holding part of a transaction, which the next start would
    set aside with a warning) is removed; its .lock is left, as every FileStorage leaves it.
    An existing one had only its lock written, or its root made if it had none. `made`: the
    files each database that had none when the start began would make."""
    reason = shown(why_not_written(exc))
    # Another process (a first cron run, say) may have made one of them since, and
    # written to it: a file that holds a transaction is not this start's to remove.
    new = [path for path in made if holds_nothing(path)]
    if not new:
        return (
            f"{named(where)} could not be written as it was opened ({reason}): nothing it "
            "holds was changed; start again once there is room"
        )
    for name in (name for path in new for name in made[path]):
        with suppress(FileNotFoundError):
            os.remove(name)
    return (
        f"{named(where)}, {shown(', '.join(new))}, could not be written as it was made "
        f"({reason}): nothing is lost, as it did not exist yet, and nothing of it is left; "
        "start again once there is room"
    )


def holds_nothing(path):
    """Whether a FileStorage file holds no transaction: none there, or its header alone (a
    failed first commit's part is cut off by close_after_failure)."""
    try:
        return os.path.getsize(path) <= len(packed_version)
    except FileNotFoundError:
        return True
