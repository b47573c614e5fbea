"""Stopping the servers (`egg:fftelemetry#waitress`): SIGTERM (honcho, systemd, `docker stop`)
and Ctrl-C close the databases, so a FileStorage saves its index and the next start does not
read the whole file again."""

import os
import signal
import subprocess

import pytest
import requests
from ZODB.fsIndex import fsIndex

from .harness import app_settings, free_port, pserve_process, write_server_ini

pytestmark = pytest.mark.slow

SERVERS = {
    "app": ("egg:fftelemetry", "/login"),
    "receiver": ("egg:fftelemetry#receiver", "/stats"),
}


@pytest.mark.parametrize(
    ("kind", "stop"),
    [("receiver", signal.SIGTERM), ("receiver", signal.SIGINT), ("app", signal.SIGTERM)],
)
def test_a_stopped_server_leaves_an_index_that_covers_its_file(tmp_path, kind, stop):
    use, page = SERVERS[kind]
    path = tmp_path / "Data.fs"
    port = free_port()
    ini = write_server_ini(tmp_path / "server.ini", app_settings(f"file://{path}"), port, use)
    with pserve_process(ini, port) as child:
        requests.get(f"http://127.0.0.1:{port}{page}", timeout=10).raise_for_status()
        child.send_signal(stop)
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail(f"pserve did not stop on {stop.name}")
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log
    saved = fsIndex.load(f"{path}.index")
    assert saved["pos"] == os.path.getsize(path), "the index must cover the whole file"


def test_only_the_server_turns_sigterm_into_a_clean_stop(make_app):
    # a console command or a test run killed by SIGTERM ends at once, as Python's default does
    make_app()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
