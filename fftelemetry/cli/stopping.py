"""SIGTERM stops a console command as Ctrl-C does: KeyboardInterrupt raised in its thread, so that
what it holds is let go on the way out (the transaction in progress aborted, a POST in flight cut,
the databases closed, a FileStorage saving its index). SIGTERM is what systemd sends a timer's
service it stops or that ran past its timeout, and what `docker stop` and `timeout` send; Python's
own ended the process at once, and the next open of a FileStorage read the whole file again.

Neither is raised in the middle of a commit (a FileStorage cut there closes itself, the commit
half known), nor while FileStorage.pack swaps its copy in (between its two renames there is no
Data.fs), nor while a FileStorage reads its index as it opens or writes it as it closes (ZODB
catches everything there: the stop was swallowed, with a traceback in the log, and the command
went on, its SIGTERM ignored): it waits for their end. Raised as an object loads, the stop is
let through, not waited for (a load waits for a lost ZEO server), but ZODB's ERROR line for the
cut load is dropped (not_a_cut_load). Installed by the console entry point only, never by what
the web app imports: the server has its own (fftelemetry.shutdown).
"""

import contextlib
import logging
import signal
import threading

import transaction
from ZODB.FileStorage import FileStorage, fspack

STOPS = (signal.SIGINT, signal.SIGTERM)
RETRY_AFTER = 0.05  # seconds: a commit or a pack's swap is over in a few milliseconds

_WAITED_FOR = frozenset(
    function.__code__
    for function in (transaction.Transaction.commit, FileStorage._restore_index, FileStorage.close)
)
_PACK = FileStorage.pack.__code__
# Logs "Couldn't load state for …" with the traceback of whatever cut a load, then raises it.
LOADS = logging.getLogger("ZODB.Connection")


class Terminated(KeyboardInterrupt):
    """SIGTERM, stopping a console command the way Ctrl-C does."""


class Stops:
    """The signal that stopped the command, if one did (`signum`)."""

    def __init__(self):
        self.signum = None
        self._retry = None
        self._ended = False

    def handle(self, signum, frame):
        if self._ended:  # a retry sent as the command ended: it is over, nothing to stop
            return
        if self.signum is not None:
            # one stop is enough: another (SIGTERM or Ctrl-C), sent while the command closes or
            # cron logs its stopped run, is not to cut that short, nor to change its line and
            # exit status
            return
        if not may_stop_in(frame):  # sent again in a moment, to be raised then
            if self._retry is None or self._retry.finished.is_set():
                self._retry = threading.Timer(RETRY_AFTER, self._again, (signum,))
                self._retry.daemon = True
                self._retry.start()
            return
        self.signum = signum
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    @staticmethod
    def _again(signum):
        signal.pthread_kill(threading.main_thread().ident, signum)

    def cancel(self):
        """No more stops: a retry on its way is let land here, not after Python's own handlers
        are back (SIGTERM's would end the process, SIGINT's raise outside the command)."""
        self._ended = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry.join()


def may_stop_in(frame):
    """Whether the command may be stopped where `frame` runs: not inside a commit, nor inside
    FileStorage.pack once its copy (fspack, which a stop leaves whole) is made, nor while a
    FileStorage reads or writes its index."""
    copying = False
    while frame is not None:
        code = frame.f_code
        if code in _WAITED_FOR or (code is _PACK and not copying):
            return False
        copying = copying or code.co_filename == fspack.__file__
        frame = frame.f_back
    return True


@contextlib.contextmanager
def stopped_as_ctrl_c(process_ends=False):
    """Ctrl-C and SIGTERM raise KeyboardInterrupt (Terminated for SIGTERM) while the block runs;
    yields the Stops that says which one did. Python's own handlers are put back after, but for
    a block stopped whose process then ends (`process_ends`, the console command's): another
    stop stays ignored to its exit, where Python's Ctrl-C raised in the closing of its databases
    (shutdown's atexit), a traceback, and its SIGTERM ended it unclosed; `timeout` sends its
    signal twice, to the command and to its process group. One the command was started ignoring
    stays ignored, as Python leaves it: a shell starts a command it runs in the background with
    SIGINT ignored, so that Ctrl-C stops the script and not it."""
    stops = Stops()
    before = {
        signum: signal.signal(signum, stops.handle)
        for signum in STOPS
        if signal.getsignal(signum) != signal.SIG_IGN
    }
    LOADS.addFilter(not_a_cut_load)
    try:
        yield stops
    finally:
        stops.cancel()  # from here on its handler ignores every stop
        LOADS.removeFilter(not_a_cut_load)
        if not (process_ends and stops.signum is not None):
            for signum, handler in before.items():
                signal.signal(signum, handler)


def not_a_cut_load(record):
    """False for ZODB's ERROR line, with its traceback, for a load the stop cut: cron stopped as
    it read its next batch left it in its log above the stop's own one line."""
    return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))
