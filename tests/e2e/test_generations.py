"""`pserve` on a database of a newer generation (fftelemetry was downgraded), or on a read-only
one no writable process has made yet (a replica), stops in one line and writes nothing: the app
over ZEO, as in production, and the receiver on its FileStorage."""

import subprocess

import pytest
import webtest
from ZODB import DB
from ZODB.FileStorage import FileStorage

from fftelemetry import main
from fftelemetry.receiver import main as receiver_main
from fftelemetry.receiver.resources import ROOT_KEY as RECEIVER_KEY
from fftelemetry.resources import ROOT_KEY
from fftelemetry.scripting import close_databases
from tests.functional.test_generations import NEWER, NOT_MADE, refusal, set_generation

from .harness import BIN, app_settings, child_environment, runzeo, write_server_ini, zeo_uri

pytestmark = pytest.mark.slow


def made_by(app, page):
    """The database `app` leaves after its first `page` (its root made), the app closed."""
    webtest.TestApp(app).get(page, status=200)
    close_databases(app.registry)


def pserve_stops(ini):
    server = subprocess.run(
        [str(BIN / "pserve"), str(ini)],
        capture_output=True, text=True, timeout=60, check=False, env=child_environment(),
    )
    assert server.returncode != 0
    assert "Traceback" not in server.stderr, server.stderr
    return server.stderr.strip().splitlines()[-1]


def test_pserve_on_a_newer_database_over_zeo_stops_in_one_line(tmp_path):
    data = tmp_path / "Data.fs"
    made_by(main({}, **app_settings(f"file://{data}")), "/")
    set_generation(data, ROOT_KEY, 99)
    before = data.read_bytes()
    ini = write_server_ini(tmp_path / "web.ini", app_settings(zeo_uri(tmp_path, 5)))
    with runzeo(tmp_path):
        last = pserve_stops(ini)
    assert last == f"fftelemetry: {NEWER.format(where=ini, program='fftelemetry')}"
    assert data.read_bytes() == before


def test_pserve_of_the_receiver_on_a_newer_database_stops_in_one_line(tmp_path):
    data = tmp_path / "receiver.fs"
    made_by(receiver_main({}, **{"zodbconn.uri": f"file://{data}"}), "/stats")
    set_generation(data, RECEIVER_KEY, 99)
    before = data.read_bytes()
    ini = write_server_ini(
        tmp_path / "receiver.ini", {"zodbconn.uri": f"file://{data}"},
        use="egg:fftelemetry#receiver",
    )
    last = pserve_stops(ini)
    program = "fftelemetry receiver"
    assert last == f"{program}: {NEWER.format(where=ini, program=program)}"
    assert data.read_bytes() == before


def test_pserve_as_a_read_only_zeo_client_of_a_new_database_stops_in_one_line(tmp_path):
    # a replica started before the writable app ever ran: ZODB's ReadOnlyError, a traceback
    ini = write_server_ini(
        tmp_path / "replica.ini", app_settings(zeo_uri(tmp_path, 5) + "&read_only=true")
    )
    with runzeo(tmp_path):
        last = pserve_stops(ini)
    assert last == refusal(NOT_MADE, "fftelemetry", where=ini)


def test_pserve_of_the_receiver_on_a_new_read_only_database_stops_in_one_line(tmp_path):
    # it served, and answered every request with a 500 and a traceback in its log
    data = tmp_path / "receiver.fs"
    DB(FileStorage(str(data))).close()
    before = data.read_bytes()
    ini = write_server_ini(
        tmp_path / "receiver.ini", {"zodbconn.uri": f"file://{data}?read_only=true"},
        use="egg:fftelemetry#receiver",
    )
    last = pserve_stops(ini)
    assert last == refusal(NOT_MADE, "fftelemetry receiver", where=ini)
    assert data.read_bytes() == before
