"""`fftelemetry create-user --email E [--admin]`: an account made on the console."""

import getpass
import sys
import warnings

from ..events import UserRegistered
from ..resources import users_folder
from ..resources.users import AccountError
from ..scripting import run_in_transaction
from .errors import CommandError

HELP = "create a user account (the password is asked for, or read from stdin)"


def add_arguments(parser):
    parser.add_argument("--email", required=True, help="the account's email address")
    parser.add_argument("--admin", action="store_true", help="make the account an administrator")
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


def run(registry, args):
    password = read_password(args.password_stdin)

    def create(env):
        request = env["request"]
        # Without --admin the first account still becomes the administrator, as on /register.
        users = users_folder(request)
        user = users.create(
            args.email, password, request.password_hasher, admin=True if args.admin else None
        )
        # an account made here is a registration too (telemetry counts the users then)
        request.registry.notify(UserRegistered(request, user, len(users)))
        return user.email, user.is_admin

    try:
        email, is_admin = run_in_transaction(registry, create)
    except AccountError as exc:
        raise CommandError(str(exc), status=1) from None
    print(f"Created {'administrator' if is_admin else 'user'} {email}.")
    return 0


def read_password(from_stdin):
    try:
        password = ask_password(from_stdin)
        # a byte that is not UTF-8 comes in as a lone surrogate (a C.UTF-8 locale's
        # surrogateescape), which the hash cannot take, or stops the read (a strict locale)
        password.encode("utf-8")
    except UnicodeError:
        raise CommandError(
            "the password is not UTF-8 text: check the terminal's or the file's encoding",
            status=1,
        ) from None
    return password


def ask_password(from_stdin):
    if from_stdin:
        if sys.stdin is None:  # started with it closed (`<&-`)
            raise CommandError(
                "standard input is closed: give the password on it (--password-stdin)",
                status=2,
            )
        return sys.stdin.readline().rstrip("\r\n")
    try:
        with warnings.catch_warnings():
            # no terminal: getpass would read a visible password from stdin, and warn
            warnings.simplefilter("error", getpass.GetPassWarning)
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Password (again): ")
    except getpass.GetPassWarning:
        raise CommandError(
            "no terminal to ask for the password on: give it on standard input with "
            "--password-stdin",
            status=2,
        ) from None
    except EOFError:
        raise CommandError("no password given", status=1) from None
    if again != password:
        raise CommandError("the two passwords differ", status=1)
    return password
