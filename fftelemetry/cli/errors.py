"""The two ways a command fails on purpose (anything else is a bug and logged with a traceback),
a check's answer by exit status, and what a write that failed left behind."""

from ..failures import what_went_wrong


class ConfigProblem(Exception):
    """The config file or the database it names cannot be used: one line, exit status 2."""


class CommandError(Exception):
    """An expected failure of a command: one line on stderr, then exit with `status`."""

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
    (its own `cannot_write`)."""
    return f"could not write ({what_went_wrong(exc)}); the change in progress was rolled back"
