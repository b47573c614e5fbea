import subprocess
import sys

import psycopg2
from ZEO.Exceptions import ClientDisconnected

from fftelemetry.cli import main, pack
from fftelemetry.failures import CANNOT_WRITE, SERVER_LOST, hide_passwords, why_not_written


def test_a_lost_zeo_server_is_named_not_shown_as_an_empty_exception():
    # ClientDisconnected carries no text: "could not write (ClientDisconnected: )" said nothing
    lost = ClientDisconnected()
    assert main.cannot_write(lost) == (
        "could not write (the ZEO server cannot be reached); the change in progress was rolled back"
    )
    assert pack.cannot_write(lost).startswith("the pack failed (the ZEO server cannot be reached);")
    assert main.cannot_write(OSError(28, "No space left on device")) == (
        "could not write (OSError: [Errno 28] No space left on device); "
        "the change in progress was rolled back"
    )


def test_a_lost_postgresql_server_is_named_with_libpq_reason_on_one_line():
    lost = psycopg2.OperationalError(
        "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  the database system "
        "is shutting down\n\tIs the server running?\n"
    )
    assert main.cannot_write(lost) == (
        "could not write (the PostgreSQL server cannot be reached (connection to server at "
        "\"127.0.0.1\", port 5432 failed: the database system is shutting down Is the server "
        "running?)); the change in progress was rolled back"
    )
    assert why_not_written(lost) == "the PostgreSQL server cannot be reached"  # on a web page
    assert isinstance(lost, CANNOT_WRITE) and isinstance(psycopg2.InterfaceError(), SERVER_LOST)


def test_a_password_of_the_ini_is_never_shown():
    settings = {"zodbconn.uri": "postgres://app:s3cret@db:5432/s3cret?connect_timeout=5"}
    assert hide_passwords('database "s3cret" does not exist', settings) == (
        'database "***" does not exist'
    )
    assert hide_passwords("as it was", {"zodbconn.uri": "file:///srv/Data.fs"}) == "as it was"


WITHOUT_THE_EXTRA = """
import sys
sys.modules["psycopg2"] = sys.modules["relstorage"] = None  # an import of either fails
from webtest import TestApp
from ZEO.Exceptions import ClientDisconnected
from fftelemetry import failures, main
assert failures.POSTGRESQL_LOST == () and failures.SERVER_LOST == (ClientDisconnected,)
app = TestApp(main({}, **{"zodbconn.uri": "file://%s/Data.fs",
                          "fftelemetry.session_secret": "s" * 32}))
print(app.get("/health").text, end="")
"""


def test_the_app_runs_without_the_postgresql_extra(tmp_path):
    script = WITHOUT_THE_EXTRA % tmp_path
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=False)
    assert (run.returncode, run.stdout) == (0, "OK\n"), run.stderr
