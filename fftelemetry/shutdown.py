"""Closing the databases when the server stops.

A FileStorage writes its index only when it is closed. A process that ends without closing it
makes the next start log "Ignoring index" and read the whole file again, which takes longer as
the file grows (the receiver's grows with every batch). Waitress stops cleanly on Ctrl-C, so
closing at exit is enough there; SIGTERM, which honcho, systemd and `docker stop` send, ends
Python at once, so it is made to stop waitress the same way, unless the server in this process
has a handler of its own (gunicorn's workers do).
"""

import atexit
import signal
import threading
import weakref

_open_databases = weakref.WeakSet()  # not kept alive by this: a test makes hundreds of apps


def close_on_exit(registry):
    """Close the databases pyramid_zodbconn opened for `registry` when the process exits."""
    _open_databases.update(getattr(registry, "_zodb_databases", {}).values())
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _stop)


def _stop(signum, frame):
    raise SystemExit(128 + signum)  # waitress finishes the requests in hand, then returns


@atexit.register
def _close_databases():
    for db in list(_open_databases):
        db.close()  # a second close does nothing
