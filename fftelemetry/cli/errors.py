"""The two ways a command fails on purpose (anything else is a bug and logged with a traceback),
and a check's answer by exit status."""


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
