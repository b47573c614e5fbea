"""`fftelemetry instructions install|upgrade`: what to do next, and the system facts.

Like a package manager's post-install step, it also collects (when telemetry is on) the Python and
OS version, the kind of database and whether it runs in Docker.
"""

import os
import platform
import re
import shlex
import shutil
import sysconfig
from pathlib import Path

from pyramid_zodbconn import get_connection

from .. import __version__
from ..resources import users_folder
from ..scripting import database, is_read_only, run_in_transaction
from ..shown import shown
from ..telemetry.status import cron_log
from .bootstrap import config_path
from .collecting import collect_unless_busy

HELP = (
    "print the install or upgrade instructions (and, while telemetry is on, collect the system "
    "facts)"
)

# The class name of a ZODB storage -> the catalog's name for it.
STORAGE_KINDS = {
    "FileStorage": "FileStorage",
    "ClientStorage": "ZEO",
    "RelStorage": "RelStorage",
    "MappingStorage": "MappingStorage",
    "DemoStorage": "DemoStorage",
    "BlobStorage": "BlobStorage",
}

UPGRADE = """\
fftelemetry is upgraded to {version}. Its database is of generation {generation}.

Next steps:
  1. Read CHANGES.md for what is new.
  2. {restart}
"""
RESTART = """\
Restart the application, and the receiver if you run one: each brings its database up to
     date as it starts, as this command did (the daily cron command needs nothing: each run
     starts afresh). A server left running refuses requests once its database is newer."""
# Nothing run with a replica's config writes its database, and this command stopped had it
# needed bringing up to date (GenerationError): it is up to date already.
RESTART_A_REPLICA = """\
Restart the application on this config. Its database is read-only (a replica): this
     command found it up to date and changed nothing, as nothing run with this config can; the
     application and the commands on the writable database's config bring it up to date as they
     start. A server left running refuses requests once its database is newer."""


def add_arguments(parser):
    parser.add_argument("which", choices=("install", "upgrade"), help="install or upgrade")


def writes(args):
    """Only its system facts are written, and, as for a busy site, they are left for a later
    run when the database is read-only (a replica): the instructions are printed all the same."""
    return False


def run(registry, args):
    settings = registry.app_settings
    collected = collect_facts(registry)
    has_users, generation = run_in_transaction(
        registry, lambda env: (len(users_folder(env["request"])) > 0, env["root"].generation)
    )
    read_only = is_read_only(database(registry))
    if args.which == "install":
        database_env_file = None
        if settings.database_in_environment_only:
            database_env_file = settings.env_file or "the .env beside the ini"
        print(install_text(args.config_uri, has_users=has_users, read_only=read_only,
                           database_env_file=database_env_file))
    else:
        restart = RESTART_A_REPLICA if read_only else RESTART
        print(UPGRADE.format(version=__version__, generation=generation, restart=restart))
    if not settings.send_telemetry:
        print("Telemetry is off: nothing was collected.")
        return 0
    facts = (
        f"Telemetry is on ({settings.send_telemetry_source}): the Python and OS version, the "
        "database kind and whether this runs in Docker"
    )
    if collected:
        print(
            f"{facts} are recorded, each value once (one known already is not stored again); "
            "see /admin/telemetry/view."
        )
    else:
        again = (
            "running this command with the writable database's config"
            if read_only
            else "running this command again"
        )
        print(f"{facts} could not be recorded this time (see the warning); {again} records them.")
    return 0


def collect_facts(registry):
    """Collect the system facts in a transaction of their own (collect_unless_busy): a busy
    site does not cost the operator the instructions. Whether they were collected."""

    def collect(request):
        for key, value in system_facts(get_connection(request).db()).items():
            request.telemetry.collect(key, value)

    return collect_unless_busy(
        registry, "system facts", collect, later="a later run of instructions collects them"
    )


# On a replica, create-user, cron and pack are each refused ("this command writes"): a crontab
# of them would fail every day. Its check and pserve work there, and are kept.
ON_A_REPLICA = (
    "Add no cron or pack line, and create no user, with this config: its database is read-only "
    "(a replica) and those commands write to it, so they would be refused; run this command "
    "with the writable database's config for them."
)


# ZODBCONN_URI in this command's environment alone: cron gives its lines an environment of its
# own, and they would open the ini's zodbconn.uri, another database, or stop with "no database".
ENVIRONMENT_ONLY = (
    "Put ZODBCONN_URI in {env_file} (readable by the processes' user alone: chmod 600) for the "
    "cron lines: it names the database in this command's environment only, and cron starts them "
    "without it, so they would open the ini's zodbconn.uri instead, or find none."
)
# The same, where the ini reads no .env (fftelemetry.env_file = /dev/null): "Put ZODBCONN_URI in
# /dev/null (...: chmod 600)" was no step to take, and its chmod, run as root, broke /dev/null.
NO_ENV_FILE = (
    "Name the database for the cron lines in the ini's zodbconn.uri, or in ZODBCONN_URI in a "
    ".env that fftelemetry.env_file names (it names /dev/null: none): ZODBCONN_URI names it in "
    "this command's environment only, and cron starts them without it, so they would open the "
    "ini's zodbconn.uri instead, or find none."
)


def install_text(config_uri, has_users, read_only=False, database_env_file=None):
    """The install steps; `database_env_file`: the .env that should hold ZODBCONN_URI, given
    when this command's environment alone holds it."""
    prefix = bin_prefix()
    if read_only:
        steps = [ON_A_REPLICA]
    else:
        steps = [] if has_users else [
            "Create the first user (the administrator):\n"
            f"       {prefix}fftelemetry create-user {config_uri} --email you@example.org --admin"
        ]
        steps.append(
            "Add the daily cron line that submits telemetry once a week (and deletes submitted "
            "records older than fftelemetry.keep_submitted_days), and the weekly one that "
            "packs the database (deleted records leave its file only then; "
            f"see scripts/crontab.example):\n       {cron_line(config_uri)}"
            f"\n       {cron_line(config_uri, 'pack', WEEKLY)}"
        )
    steps.append(
        "To be mailed by cron when submissions are overdue (failing for two days past due) "
        "or its config cannot be used (it prints nothing otherwise), "
        f"{'add' if read_only else 'also'}:\n       {check_line(config_uri)}"
    )
    if database_env_file is not None:
        steps.append(
            NO_ENV_FILE if reads_nothing(database_env_file)
            else ENVIRONMENT_ONLY.format(env_file=shown(database_env_file))
        )
    steps.append(f"Start the application: {prefix}pserve {config_uri}")
    numbered = "\n".join(f"  {number}. {step}" for number, step in enumerate(steps, 1))
    return f"fftelemetry {__version__} is installed.\n\nNext steps:\n{numbered}\n"


def reads_nothing(env_file):
    """Whether the .env the ini names is /dev/null, which stands for none."""
    try:
        return os.path.samefile(env_file, os.devnull)
    except OSError:  # "the .env beside the ini", or one not made yet
        return False


DAILY = "17 4 * * *"
WEEKLY = "47 4 * * 0"  # Sundays, after the daily run
MORNING = "37 9 * * *"  # the check: when someone reads the mail


def cron_line(config_uri, command_name="cron", when=DAILY):
    """The crontab line that runs `fftelemetry COMMAND_NAME` for this config `when`. cron
    starts in the home folder with a bare PATH, so the line goes to the ini's folder and names
    the command by its full path. Its output (a few INFO lines every day) goes to a log file,
    not to a daily cron mail: to var/ when the ini's folder has one (as the shipped inis keep
    their database there), else beside the ini; to neither if this user may not write there."""
    folder, command = _in_folder(config_uri, command_name)
    line = f"cd {folder} && {command}"
    log = cron_log(Path(config_path(config_uri)).resolve().parent)
    if log:  # a log sh cannot open would stop the command itself: then cron mails the output
        line += f" >> {log} 2>&1"
    return _crontab(when, line)


def check_line(config_uri):
    """The crontab line of `status --check` that prints its line, and so has cron mail it, only
    when the check fails (submissions overdue, or a config it cannot use)."""
    folder, command = _in_folder(config_uri, "status")
    return _crontab(MORNING, f'cd {folder} && out=$({command} --check 2>&1) || echo "$out"')


def _in_folder(config_uri, command_name):
    """The ini's folder and `fftelemetry COMMAND_NAME CONFIG` run from it, both quoted for sh:
    cron starts in the home folder with a bare PATH, so the command is named by its full path."""
    ini = Path(config_path(config_uri)).resolve()
    _, hash_mark, section = config_uri.partition("#")
    command = installed_command()
    if not command.exists():  # run as `python -m` from elsewhere: whatever the shell finds
        command = shutil.which("fftelemetry") or "fftelemetry"
    config = shlex.quote(ini.name + hash_mark + section)
    return shlex.quote(str(ini.parent)), f"{shlex.quote(str(command))} {command_name} {config}"


def _crontab(when, line):
    return f"{when}  " + line.replace("%", "\\%")  # cron reads a bare % as a new line


def installed_command():
    """The `fftelemetry` command of this Python's environment (where pip put it)."""
    return Path(sysconfig.get_path("scripts")) / "fftelemetry"


def bin_prefix():
    """Where the commands are, when the shell would not find them (a virtual environment that
    is not activated, as after `make run`)."""
    command = installed_command()
    if not command.exists() or shutil.which("fftelemetry") == str(command):
        return ""
    return f"{command.parent}/"


def system_facts(db):
    return {
        "system.python.version": platform.python_version(),
        "system.os.version": os_version(platform.system(), platform.release()),
        "system.database.driver": database_driver(db),
        "system.os.is_docker": "true" if is_docker() else "false",
    }


def os_version(system, release):
    """The system's name and its release's major.minor, e.g. "Linux 6.1" (not the full
    "6.1.0-18-amd64", which says more about the machine than we need to know)."""
    name = re.sub(r"[^A-Za-z0-9]", "", system)[:20] or "unknown"
    if not name[0].isalpha():
        name = "os" + name[:18]
    numbers = re.match(r"(\d{1,4})(?:\.(\d{1,4}))?", release or "")
    if numbers is None:
        return name
    return f"{name} {'.'.join(part for part in numbers.groups() if part is not None)}"


def database_driver(db):
    return STORAGE_KINDS.get(type(db.storage).__name__, "other")


def is_docker(dockerenv=Path("/.dockerenv"), cgroup=Path("/proc/1/cgroup")):
    if dockerenv.exists():
        return True
    try:
        return "docker" in cgroup.read_text(errors="replace")
    except OSError:
        return False
