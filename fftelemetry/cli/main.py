"""`fftelemetry COMMAND CONFIG_URI [options]`: the console script.

Each command runs against the application's own settings and database (loaded from the ini like
`pserve` does). The first use of each command is collected as `system.command.executed`, a
failing one as `system.command.errored` (both only when telemetry is on), except for a command
whose module says COUNTED = False (delete: see there). A config that cannot be loaded gives one
line on stderr and exit status 2, never a traceback; a write that cannot be done (a full disk,
conflicts on every attempt) one line and exit status 1, its transaction rolled back (2 where the
command's `unusable` says the database cannot be used: status's read, its lost server). Ctrl-C or
SIGTERM (fftelemetry.cli.stopping) stops a command in one line too, exit status 130 or 143, its
databases closed.

A command's module says with `writes(args)` whether a run writes (a command writes unless it
says otherwise). On a read-only database (a replica) one that writes is refused before it does
anything, in one line, exit status 2, as for a database that cannot be used: not when its first
commit fails, by when cron would have sent the pending records, to send them again every day.
One that only reads runs, its use left for a run on the writable database to collect.
"""

import argparse
import contextlib
import logging
import os
import signal
import sys

from ..failures import CANNOT_WRITE, NOT_WRITTEN, READ_ONLY, hide_passwords
from ..scripting import close_databases, database, database_server_lost, is_read_only
from ..shown import shown
from ..telemetry.sender import SubmissionInterrupted, records_word
from . import COMMAND_NAMES, create_user, cron, delete, instructions, pack, status
from .bootstrap import is_receivers, load_registry
from .collecting import collect_unless_busy
from .errors import CommandError, ConfigProblem, Verdict, cannot_write
from .stopping import stopped_as_ctrl_c

log = logging.getLogger(__name__)

COMMANDS = {
    "cron": cron,
    "instructions": instructions,
    "create-user": create_user,
    "status": status,
    "pack": pack,
    "delete": delete,
}


def counted(module):
    return getattr(module, "COUNTED", True)


def always(args):
    """A command's `writes` unless its module has one: a new command is refused on a read-only
    database until it says it only reads."""
    return True


assert tuple(name for name, module in COMMANDS.items() if counted(module)) == COMMAND_NAMES, (
    "keep COMMAND_NAMES (the catalog's list of the commands whose use is collected) in sync"
)


def the_commands_failure(exc):
    """A command's `unusable` unless its module has one: a write it could not do is its own
    failure, exit status 1, not a database that cannot be used (2)."""
    return False


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fftelemetry",
        description="Console commands of fftelemetry.",
        epilog="Exit status: 0 done; 1 the command failed, or status --check found submissions "
        "overdue; 2 bad usage, or a config or database that cannot be used (a read-only one, "
        "for a command that writes; for status, one it cannot read, or whose server it loses); "
        "3 delete without --yes that found something to delete (nothing deleted); 130 "
        "interrupted (Ctrl-C); 141 the output's reader went away; 143 stopped by SIGTERM.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.add_argument(
            "config_uri", metavar="CONFIG_URI", help="the ini file, e.g. development.ini"
        )
        # a command may say in its own words what a write error left behind (see cannot_write)
        sub.set_defaults(
            run=module.run,
            cannot_write=getattr(module, "cannot_write", cannot_write),
            unusable=getattr(module, "unusable", the_commands_failure),
            counted=counted(module),
            writes=getattr(module, "writes", always),
            # the receiver's ini too (pack), which the others refuse in one line
            receiver_too=getattr(module, "RECEIVER_TOO", False),
        )
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)  # bad usage: argparse says so and exits with 2
    if sys.stdout is None:  # started with it closed (`>&-`): the next file opened, Data.fs say,
        # would be file 1, where anything written to the output goes
        print(
            f"fftelemetry {args.command}: standard output is closed; "
            "send it to /dev/null to discard what the command prints",
            file=sys.stderr,
        )
        return 2
    with stopped_as_ctrl_c(process_ends=True) as stops:
        return run_guarded(args, stops)


def run_guarded(args, stops):
    """The command, with what stops it early said in one line: a reader gone away, an output
    that cannot be written, Ctrl-C or SIGTERM."""
    try:
        with contextlib.redirect_stdout(GuardedOutput(sys.stdout)):
            exit_status = run_loaded(args)
            sys.stdout.flush()  # so that a reader gone away shows here, not at exit
        return exit_status
    except BrokenPipeError:  # the output's reader stopped (`| head`): nothing wrong was done
        discard_output()
        return 141  # as a shell reports a command stopped by SIGPIPE
    except OutputError as exc:  # commands print after their transactions: those stand
        discard_output()
        print(
            f"fftelemetry {args.command}: cannot write to standard output ({exc}); "
            "only what it printed is lost",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt as exc:  # the transaction in progress is aborted on the way out
        # SIGTERM: 143, as a shell, `timeout --preserve-status` or docker report a process it
        # ended, apart from Ctrl-C's 130 and a failure's 1
        terminated = stops.signum == signal.SIGTERM
        how = "stopped by SIGTERM" if terminated else "interrupted"
        print(f"fftelemetry {args.command}: {how}{what_stays(exc)}", file=sys.stderr)
        return 143 if terminated else 130


def what_stays(interruption):
    if isinstance(interruption, SubmissionInterrupted):  # cron's
        return f": {records_word(interruption.sent)} sent and marked, the rest stay pending"
    return "; the change in progress, if any, was rolled back"


class OutputError(Exception):
    """Standard output cannot be written (a full disk, a file too large): not a failure of the
    database, which a write error of the command's would be said as."""


class GuardedOutput:
    """sys.stdout while a command runs, its write errors raised as OutputError."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        with output_errors():
            return self._stream.write(text)

    def flush(self):
        with output_errors():
            self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def output_errors():
    try:
        yield
    except BrokenPipeError:
        raise  # a reader gone away: see main()
    except OSError as exc:
        raise OutputError(exc.strerror or exc) from exc


def discard_output():
    """What is left in the output's buffer goes nowhere, so the exit's flush does not fail."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def run_loaded(args):
    may_write = not getattr(args, "dry_run", False)  # a dry run changes nothing at all
    try:
        registry = load_registry(
            args.config_uri, may_write=may_write, receiver_too=args.receiver_too
        )
    except ConfigProblem as exc:  # escaped where it was raised
        print(f"fftelemetry: {exc}", file=sys.stderr)
        return 2
    return run_on(registry, args)


def run_on(registry, args):
    """The command on its loaded app's registry, its use collected; the databases closed after,
    whatever happens."""
    counted = args.counted and not getattr(args, "dry_run", False)  # a dry run writes nothing
    counted = counted and not is_receivers(registry)  # it has no telemetry to collect in
    write_failed = False
    try:
        if args.writes(args) and is_read_only(database(registry)):
            print(f"fftelemetry {args.command}: {WRITES_TO_READ_ONLY}", file=sys.stderr)
            return 2
        if counted:
            collect(registry, "system.command.executed", args.command)
        try:
            exit_status = run_command(registry, args)
        except Verdict as verdict:  # an answer, not a failure: not collected as one
            print(verdict)
            return verdict.status
        # Not with its database server lost (cron's run lost it, ZEO's or PostgreSQL's): the
        # write would wait for it only to fail, and its line would replace the command's own.
        if exit_status != 0 and counted and not database_server_lost(registry):
            collect(registry, "system.command.errored", args.command)
        return exit_status
    except BrokenPipeError:
        raise  # stdout, not the database: see main()
    except NOT_WRITTEN as exc:  # a full disk, conflicts on every attempt: aborted whole
        # the error's text is an outside one (a file's name, a storage's words): escaped here,
        # and libpq's may quote the database's name, which may be the password
        line = hide_passwords(args.cannot_write(exc), registry.settings)
        print(f"fftelemetry {args.command}: {shown(line)}", file=sys.stderr)
        write_failed = True
        # status's failed read, or its server lost in the write of its use, is a database that
        # cannot be used, as at start-up: 2, a monitor's CRITICAL, not --check's 1 of "overdue"
        return 2 if args.unusable(exc) else 1
    finally:
        # FileStorage flushes its file on close, and the same disk refuses that too: said above.
        with contextlib.suppress(*(CANNOT_WRITE if write_failed else ())):
            close_databases(registry)


WRITES_TO_READ_ONLY = (
    f"{READ_ONLY} (zodbconn.uri's read_only=true, or a read-only ZEO server) and this command "
    "writes to it: nothing was done; run it with the writable database's config"
)


def run_command(registry, args):
    try:
        return args.run(registry, args)
    except CommandError as exc:
        print(f"fftelemetry {args.command}: {shown(exc)}", file=sys.stderr)
        return exc.status
    except (BrokenPipeError, OutputError, Verdict, *NOT_WRITTEN):
        raise  # said by main() and run_on()
    except Exception:
        log.exception("fftelemetry %s failed", args.command)
        return 1


def collect(registry, key, value):
    """Collect one value (kept even if the command then fails), unless the site is too busy."""
    collect_unless_busy(
        registry, f"{key} {value!r}", lambda request: request.telemetry.collect(key, value)
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
