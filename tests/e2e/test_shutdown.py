"""Stopping the servers (`egg:fftelemetry#waitress`): SIGTERM (honcho, systemd, `docker stop`)
and Ctrl-C close the databases, so a FileStorage saves its index and the next start does not
read the whole file again."""

import contextlib
import os
import signal
import subprocess
import threading

import pytest
import requests
from ZODB.fsIndex import fsIndex

from tests.functional.test_sender import raw_receiver

from .harness import (
    app_settings,
    csrf_token,
    free_port,
    pserve_process,
    wait_until,
    write_server_ini,
)
from .test_pack import RECORDS, register

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


def never_answered(conn, send, stop):
    stop.wait()


def test_sigterm_during_submit_now_stops_the_server_all_the_same(tmp_path):
    # the POST in flight was in a ThreadPoolExecutor's thread, which Python's exit waits for:
    # pserve stopped at the POST's deadline only (here 10 minutes), long after a SIGKILL
    path, port = tmp_path / "Data.fs", free_port()
    with raw_receiver(never_answered) as (url, what):
        settings = app_settings(f"file://{path}", **{
            "fftelemetry.telemetry_url": url, "fftelemetry.read_timeout": "600",
            "fftelemetry.password_profile": "cheapest",
        })
        ini = write_server_ini(tmp_path / "server.ini", settings, port)
        with pserve_process(ini, port) as child:
            base = f"http://127.0.0.1:{port}"
            admin = register(base, "owner@example.org")
            token = csrf_token(admin.get(f"{base}{RECORDS}").text)

            def submit_now():  # the server stops before it answers: what is tested
                with contextlib.suppress(requests.RequestException):
                    admin.post(f"{base}{RECORDS}/submit", data={"csrf_token": token}, timeout=60)

            threading.Thread(target=submit_now, daemon=True).start()
            wait_until(lambda: what["requests"] == 1, what="the batch to reach the receiver")
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                pytest.fail("pserve did not stop on SIGTERM during submit now")
    assert "Traceback" not in (tmp_path / "server.log").read_text()
    saved = fsIndex.load(f"{path}.index")
    assert saved["pos"] == os.path.getsize(path), "the databases were closed"


def test_only_the_server_turns_sigterm_into_a_clean_stop(make_app):
    # only the entry points install a handler (a console command's: fftelemetry.cli.stopping):
    # the app leaves the process's as it was (here the test run's own, tests/conftest.py)
    before = signal.getsignal(signal.SIGTERM)
    make_app()
    assert signal.getsignal(signal.SIGTERM) is before
