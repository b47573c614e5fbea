"""Running application code outside a web request (console commands, tests, benchmarks).

`pyramid.paster.bootstrap` computes the root before any transaction has begun; with pyramid_tm's
explicit transaction manager that read fails (NoTransaction). So we begin the request's
transaction first and then prepare the environment, and own the commit/abort ourselves.
"""

from contextlib import contextmanager

import transaction
from pyramid.interfaces import IRequestFactory
from pyramid.request import Request, apply_request_extensions
from pyramid.scripting import prepare


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


def databases(registry):
    """The databases pyramid_zodbconn opened for the app of `registry` (none yet: empty)."""
    return getattr(registry, "_zodb_databases", {}).values()


def close_databases(registry):
    """Close pyramid_zodbconn's databases (a FileStorage left open rebuilds its index later)."""
    for db in databases(registry):
        db.close()


@contextmanager
def own_connection(db):
    """(tm, conn): a connection of one's own with its own transaction manager, for work that
    commits in transactions of its own or outlives the request (the sender, the streamed
    export). Whatever is left uncommitted is aborted, then the connection goes back to the pool."""
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        yield tm, conn
    finally:
        tm.abort()
        conn.close()
