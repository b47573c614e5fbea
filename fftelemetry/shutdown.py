"""Stopping cleanly: the databases closed at exit, and `egg:fftelemetry#waitress`, waitress that
SIGTERM stops as Ctrl-C does.

A FileStorage writes its index only when it is closed. A process that ends without closing it
makes the next start log "Ignoring index" and read the whole file again, which takes longer as
the file grows (the receiver's grows with every batch). Waitress stops on Ctrl-C, waiting up to
5 seconds for the requests in hand, and the databases are then closed at exit. SIGTERM, which
honcho, systemd and `docker stop` send, ends Python at once; the server runner here makes it stop
waitress the same way. A console command has its own (fftelemetry.cli.stopping); a test process
keeps Python's.
"""

import atexit
import gc
import signal
import weakref

import waitress

from .scripting import databases

_open_databases = weakref.WeakSet()  # not kept alive by this: a test makes hundreds of apps


def close_on_exit(registry):
    """Close the databases pyramid_zodbconn opened for `registry` when the process exits."""
    _open_databases.update(databases(registry))


@atexit.register
def _close_databases():
    # held first: the collection below would take a database only cycles still hold, unclosed
    databases = list(_open_databases)
    # ZODB's DB.open leaves a connection open when its opening fails (RelStorage's PostgreSQL
    # server lost as the connection asks it what changed), held by nothing but the pool's weak
    # set: collected first, or DB.close would abort its transaction, which the request's explicit
    # transaction manager no longer has, and stop (NoTransaction) before closing the storage
    gc.collect()
    for db in databases:
        db.close()  # a second close does nothing


def serve(wsgi_app, global_conf, **settings):
    """PasteDeploy server runner (`use = egg:fftelemetry#waitress`): waitress's own, with SIGTERM
    turned into the SystemExit that its loop stops on."""
    signal.signal(signal.SIGTERM, _stop)
    return waitress.serve_paste(wsgi_app, global_conf, **settings)


def _stop(signum, frame):
    raise SystemExit
