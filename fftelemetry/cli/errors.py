"""The two ways a command fails on purpose (anything else is a bug and logged with a traceback),
a check's answer by exit status, and what a write that failed left behind."""

from ZODB.POSException import ConflictError

from ..failures import SAVED_OR_NOT, in_second_phase, lost_postgresql_server_behind, what_went_wrong


class ConfigProblem(Exception):
    """The config file or the database it names cannot be used: one line, exit status 2. What
    it quotes is escaped (fftelemetry.shown) where it is raised."""


class CommandError(Exception):
    """An expected failure of a command: one line on stderr, then exit with `status`. What it
    quotes is quoted as it is: main escapes the line (fftelemetry.shown)."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


class Verdict(Exception):
    """A check's "no" (`status --check`: submissions are overdue): its one line on stdout, then
    exit with `status`. The command did its work, so it is not collected as having failed."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def cannot_write(exc):
    """What main says when a write fails, unless the command's module says it in its own words
    (its own `cannot_write`); main escapes it. A commit that failed in its second phase
    (in_second_phase) may have been saved: not "rolled back"."""
    if in_second_phase(exc):
        return (
            f"could not write ({what_went_wrong(exc)}) as the change was being saved: "
            f"{SAVED_OR_NOT}; look before running the command again"
        )
    return (
        f"could not write ({what_went_wrong(exc)}); the change in progress was rolled back"
        f"{try_again(exc)}"
    )


def try_again(exc):
    """The end of a failed write's line: a conflict on every attempt is a busy moment, which
    running the command again gets past (a full disk, say, has to be seen to first); not
    RelStorage's conflict for a lost PostgreSQL server, which the line says as the lost server."""
    busy = isinstance(exc, ConflictError) and lost_postgresql_server_behind(exc) is None
    return ": try again" if busy else ""
