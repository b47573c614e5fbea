"""Running application code outside a web request (console commands, tests, benchmarks).

`pyramid.paster.bootstrap` computes the root before any transaction has begun; with pyramid_tm's
explicit transaction manager that read fails (NoTransaction). So we begin the request's
transaction first and then prepare the environment, and own the commit/abort ourselves.

A console command that writes runs its transaction with `run_in_transaction`: a web request (or
another command) on the same ZEO server may commit the same objects meanwhile, and nothing but
a rerun of the whole transaction, as pyramid_retry reruns a request, gets past that conflict.
"""

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass

import transaction
from pyramid.interfaces import IRequestFactory
from pyramid.request import Request, apply_request_extensions
from pyramid.scripting import prepare
from pyramid_retry import is_error_retryable, is_last_attempt
from ZODB.blob import BlobStorage
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError

from .failures import (
    SAVED_OR_NOT,
    hide_passwords,
    in_second_phase,
    is_server_lost,
    retried_after,
    what_went_wrong,
)
from .retries import backoff
from .shown import LOGGED_CHARS, request_line, shown

log = logging.getLogger(__name__)


@contextmanager
def request_environment(registry, url="http://localhost/"):
    """An env dict (request, root, registry) inside one transaction: committed when the block
    ends normally, aborted when it raises."""
    request_factory = registry.queryUtility(IRequestFactory, default=Request)
    request = request_factory.blank("/", base_url=url.rstrip("/"))
    request.registry = registry
    apply_request_extensions(request)  # none for our registries (AppRequest has request.tm)
    request.tm.begin()
    env = prepare(request=request, registry=registry)
    try:
        yield env
    except BaseException:
        request.tm.abort()
        raise
    else:
        if request.tm.isDoomed():
            request.tm.abort()
        else:
            request.tm.commit()
    finally:
        env["closer"]()


def run_in_transaction(registry, work):
    """`work(env)` in a transaction of its own (see request_environment); its result. A commit
    (or read) that conflicts with another transaction is rerun from the start, with the web's
    jittered back-off, up to `retry.attempts` times in all; the last conflict is raised. So
    `work` must only do its transaction's work: print afterwards, from what it returns."""
    attempts = max(1, int(registry.settings.get("retry.attempts") or 1))
    for attempt in range(attempts):
        try:
            with request_environment(registry) as env:
                return work(env)
        except ConflictError as exc:
            if attempt + 1 == attempts:
                raise
            log.info(
                "retrying a console transaction after %s (attempt %d of %d)",
                retried_after(exc), attempt + 2, attempts,
            )
            time.sleep(backoff(attempt))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def databases(registry):
    """The databases pyramid_zodbconn opened for the app of `registry` (none yet: empty)."""
    return getattr(registry, "_zodb_databases", {}).values()


def database(registry):
    """The app's database (pyramid_zodbconn's primary one, `zodbconn.uri`)."""
    return registry._zodb_databases[""]


def zeo_server_away(registry):
    """Whether the app's database is a ZEO client whose server is away (it may still answer loads
    from its cache). Any other storage has no server to lose. Asked of the database, not of a
    request's connection: a RelStorage connection that could not open fails again as it opens."""
    is_connected = getattr(database(registry).storage, "is_connected", None)
    return is_connected is not None and not is_connected()


def database_server_lost(registry):
    """Whether a command's database server is lost: it found so (registry.database_server_lost,
    cron's run), or its ZEO server is away. A write then would wait for the server only to fail:
    ZEO's its wait_timeout, RelStorage's a new connection to PostgreSQL, which may hang until the
    network gives up on a server that does not answer. The flag, not ZEO's is_connected alone:
    ZEO's client fails the call that was waiting on its server before it marks itself
    disconnected (connection_lost in ZEO.asyncio.client), so just after that call's error it may
    still say it is connected."""
    return getattr(registry, "database_server_lost", False) or zeo_server_away(registry)


@dataclass(frozen=True)
class LostServer:
    """A request's lost database server, as the app's 503 page and the receiver's JSON 503 both
    see it: the error, and whether the change may have been saved (failures.in_second_phase)."""

    exc: BaseException
    request: object
    saved_or_not: bool

    def log_if_last(self, view_log, nothing):
        """The one WARNING line (in `view_log`, the view's own logger), on the attempt
        pyramid_retry does not rerun: the server's reason (no password), and what became of the
        change (`nothing`: "nothing was changed")."""
        request = self.request
        if is_last_attempt(request) or not is_error_retryable(request, self.exc):
            reason = hide_passwords(what_went_wrong(self.exc), request.registry.settings)
            left = SAVED_OR_NOT if self.saved_or_not else nothing
            view_log.warning(
                "%s: %s; %s", request_line(request), shown(reason, LOGGED_CHARS), left
            )


def lost_server(exc, request):
    """A LostServer if `exc` says the database server cannot be reached (is_server_lost), else
    None (a server that answered: a statement timeout, a deadlock). The attempt is made the last
    (pyramid_retry reads retry.attempts) when a rerun cannot help: ZEO's server is away (each
    rerun would wait its wait_timeout again), or the change may be saved already."""
    if not is_server_lost(exc):
        return None
    saved_or_not = in_second_phase(exc)
    if saved_or_not or zeo_server_away(request.registry):
        request.environ["retry.attempts"] = request.environ.get("retry.attempt", 0) + 1
    return LostServer(exc, request, saved_or_not)


def is_read_only(db):
    """Whether the database refuses every write: zodbconn.uri's read_only=true (a FileStorage or
    a ZEO client), or a ZEO client that settled for a read-only server (read_only_fallback). A ZEO
    client whose server is away calls itself read-only too: that is a lost server, which the load
    or commit that needs it says as such, not a read-only database."""
    storage = db.storage
    is_connected = getattr(storage, "is_connected", None)
    if is_connected is not None and not is_connected():
        return False
    return bool(storage.isReadOnly())


def file_storage(storage):
    """The FileStorage of a file:// database, None for another kind. zodburi wraps it in a
    BlobStorage for ?blobstorage_dir=, which passes on every attribute it lacks when read but
    keeps one set on it to itself: pack_keep_old set there was not the FileStorage's, and the
    pack kept Data.fs.old. BlobStorage offers no public way to the storage it wraps."""
    if isinstance(storage, BlobStorage):
        storage = storage._BlobStorage__storage
    return storage if isinstance(storage, FileStorage) else None


def close_databases(registry):
    """Close pyramid_zodbconn's databases (a FileStorage left open rebuilds its index later)."""
    for db in databases(registry):
        db.close()


@contextmanager
def own_connection(db):
    """(tm, conn): a connection of one's own with its own transaction manager, for work that
    commits in transactions of its own or outlives the request (the sender, the streamed
    export). Whatever is left uncommitted is aborted, then the connection goes back to the pool,
    also when the abort fails (RelStorage's asks its lost PostgreSQL server): else each "Submit
    now" that lost it left a connection open, outside the pool, until Python collected it."""
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        yield tm, conn
    finally:
        try:
            tm.abort()
        finally:
            conn.close()
