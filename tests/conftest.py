"""Shared fixtures: real apps on real FileStorages in temp dirs, and a clean environment."""

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import transaction
import waitress
import webtest
from waitress import wasyncore
from ZODB import DB
from ZODB.FileStorage import FileStorage

from fftelemetry import main
from fftelemetry.receiver import main as receiver_main
from fftelemetry.receiver.resources import ROOT_KEY as RECEIVER_ROOT_KEY
from fftelemetry.resources import appmaker
from fftelemetry.scripting import close_databases
from fftelemetry.settings import VARIABLES as STEERING_VARIABLES

SECRET = "test-secret-that-is-long-enough"
# Outside text a log or console line quotes: a Windows path's backslash, an escape sequence (it
# clears the screen) and a line break (a forged line after it); and that text escaped once.
OUTSIDE = "C:\\dir\x1b[2J\nFAKE LINE"
OUTSIDE_SHOWN = "C:\\\\dir\\x1b[2J\\nFAKE LINE"


def pytest_configure(config):
    # Some tests press Ctrl-C in a child (create-user at its prompt, a pserve). A child inherits
    # an ignored SIGINT, and a test run started in the background of a script (`cmd &`, nohup)
    # has one: such a child would never see the Ctrl-C. Start from Python's own default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # SIGTERM to the test run (a CI job's timeout, `kill`) ends it as Ctrl-C does, so that the
    # with blocks and fixtures' finalizers still run: by default it died at once, and left what
    # the e2e tests had started (a tmpfs mounted, a PostgreSQL server, pserve and runzeo). Not if
    # it was ignored: its children ignore it too, as they would have. A child the tests start gets
    # the default again (exec resets a handler), as the tests of the entry points' own want.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, stop_as_ctrl_c)


def pytest_unconfigure(config):
    if signal.getsignal(signal.SIGTERM) is stop_as_ctrl_c:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class StopAsCtrlC:
    """The first SIGTERM stops the run as a KeyboardInterrupt; a second ends it at once, as
    before, whatever its cleanup was doing. One that comes as a test is torn down is raised once
    the teardown is over: raised in a finalizer, it cut that one short and skipped the test's
    others (pytest goes on to the next finalizer after an Exception only), a tmpfs left mounted."""

    def __init__(self):
        self.tearing_down = False
        self.put_off = False

    def __call__(self, signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if self.tearing_down:
            self.put_off = True
        else:
            raise KeyboardInterrupt("SIGTERM")

    def raise_put_off(self):
        if self.put_off:
            self.put_off = False
            raise KeyboardInterrupt("SIGTERM")


stop_as_ctrl_c = StopAsCtrlC()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    stop_as_ctrl_c.tearing_down = True
    try:
        return (yield)
    finally:
        stop_as_ctrl_c.tearing_down = False
        stop_as_ctrl_c.raise_put_off()  # even after a finalizer's error: the run still stops


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Every test starts without the variables that steer the application."""
    for name in STEERING_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def app_settings(tmp_path, **overrides):
    settings = {
        "zodbconn.uri": f"file://{tmp_path}/Data.fs",
        "fftelemetry.session_secret": SECRET,
        "fftelemetry.strict_catalog": "true",
        "fftelemetry.send_telemetry": "true",
    }
    settings.update(overrides)
    return settings


@pytest.fixture
def make_app(tmp_path):
    """make_app(**settings) -> the real WSGI app on a FileStorage in tmp_path; closed after."""
    apps = []

    def make(**overrides):
        app = main({"here": str(tmp_path)}, **app_settings(tmp_path, **overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_databases(app.registry)


@pytest.fixture
def testapp(make_app):
    return webtest.TestApp(make_app())


@pytest.fixture
def zodb(tmp_path):
    """A plain DB on a FileStorage, for tests of persistent classes without the web app."""
    db = DB(FileStorage(str(tmp_path / "store.fs")))
    yield db
    db.close()


@pytest.fixture
def opened_root(zodb):
    """The application root in an open connection; commit with transaction.commit()."""
    tm = transaction.TransactionManager()
    conn = zodb.open(tm)
    root = appmaker(conn.root())
    tm.commit()
    yield root, tm
    tm.abort()
    conn.close()


# -- console commands, the sender and the receiver ------------------------------------------------

LOGGING_SECTIONS = """
[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
class = fftelemetry.logs.Formatter
format = %(levelname)s [%(name)s] %(message)s
"""


@pytest.fixture
def write_ini(tmp_path):
    """write_ini(**settings) -> path of an ini for the real app on tmp_path/Data.fs (file://),
    telemetry on, logging at INFO to stderr; a value of None drops that setting."""

    def write(name="app.ini", **overrides):
        settings = app_settings(tmp_path, **{"fftelemetry.password_profile": "cheapest"})
        settings.update(overrides)
        lines = ["[app:main]", "use = egg:fftelemetry"]
        lines += [f"{key} = {value}" for key, value in settings.items() if value is not None]
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n" + LOGGING_SECTIONS)
        return str(path)

    return write


@pytest.fixture
def run_cli():
    """run_cli(*args, input=None) -> CompletedProcess of the real `fftelemetry` in a subprocess
    (the environment is the test's, cleaned of the steering variables)."""

    def run(*args, input=None, timeout=60, cwd=None):
        return subprocess.run(
            [sys.executable, "-m", "fftelemetry.cli.main", *args],
            cwd=cwd,
            input=input,
            start_new_session=True,  # no terminal, as under cron (else getpass would use ours)
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def free_port():
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def write_server_ini(tmp_path, write_ini):
    """write_server_ini(program) -> (ini, its database, a page that needs the database's root)
    for `pserve` of the app ("fftelemetry") or the receiver ("fftelemetry receiver") on a free
    port of 127.0.0.1, served by egg:fftelemetry#waitress (SIGTERM closes the database)."""

    def write(program):
        port = free_port()
        server = f"\n[server:main]\nuse = egg:fftelemetry#waitress\nlisten = 127.0.0.1:{port}\n"
        if program == "fftelemetry":
            ini = Path(write_ini())
            ini.write_text(ini.read_text() + server)
            return ini, tmp_path / "Data.fs", "/"
        data = tmp_path / "receiver.fs"
        ini = tmp_path / "receiver.ini"
        app = f"[app:main]\nuse = egg:fftelemetry#receiver\nzodbconn.uri = file://{data}\n"
        ini.write_text(app + LOGGING_SECTIONS + server)
        return ini, data, "/stats"

    return write


def with_zeo_logger(ini, level, qualname="ZEO"):
    """The ini (a Path, written by write_ini or write_server_ini), with a logger of its own for
    ZEO's `qualname` at `level`, where the root's level decides it otherwise."""
    text = ini.read_text().replace("keys = root\n", "keys = root, zeo\n", 1)
    ini.write_text(f"{text}\n[logger_zeo]\nlevel = {level}\nhandlers =\nqualname = {qualname}\n")
    return ini


BIN = Path(sys.executable).parent


def run_pserve(ini, script=None, timeout=60):
    """CompletedProcess of `pserve ini` run until it stops (a start it refuses); with `script`,
    the real pserve run by that code (one that adds an evolve step first, say)."""
    args = [BIN / "pserve", ini] if script is None else [sys.executable, "-c", script, ini]
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


@contextmanager
def serving(app, **adjustments):
    """Serve a WSGI app with waitress on 127.0.0.1 (ephemeral port) in a thread, with waitress's
    `adjustments` (its ini settings: max_request_body_size=...); yields its URL."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=2, **adjustments)
    stop = threading.Event()

    def serve():  # server.run(), but stoppable; sockets are closed by this thread only
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        wasyncore.close_all(server._map)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    # Its worker threads count as busy until each first waits for work: a request before that
    # would log waitress's WARNING "Task queue depth is 1", which tests counting warnings see.
    while server.task_dispatcher.active_count:
        time.sleep(0.001)
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        server.task_dispatcher.shutdown(timeout=5)  # lets a running request finish first
        stop.set()
        thread.join(timeout=5)


class RunningReceiver:
    """The real receiver app behind `url`; `stats()` over HTTP, `read(fn)` on its database."""

    def __init__(self, url, app):
        self.url = url
        self.app = app

    def stats(self):
        return requests.get(self.url + "/stats", timeout=5).json()

    def read(self, fn):
        conn = self.app.registry._zodb_databases[""].open()
        try:
            return fn(conn.root()[RECEIVER_ROOT_KEY])
        finally:
            conn.close()


@pytest.fixture
def receiver(tmp_path):
    """The real receiver app on tmp_path/receiver.fs, served over HTTP."""
    app = receiver_main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs"})
    with serving(app) as url:
        yield RunningReceiver(url, app)
    close_databases(app.registry)


@pytest.fixture
def closed_port_url():
    """The URL of a port nothing listens on (bound, then released)."""
    return f"http://127.0.0.1:{free_port()}"


STUB_UUID = "0b7a6e8e-3c1f-4d2a-9a57-5d0f2c9e1b11"
STUB_ANSWER = f'{{"uuid":"{STUB_UUID}"}}'.encode()


class Stub:
    """A stand-in receiver (a bare WSGI app, not our code) that answers every request the same
    way, after `delay` seconds, and remembers each request's headers and body."""

    def __init__(self, status="200 OK", body=STUB_ANSWER, delay=0.0):
        self.status, self.body, self.delay = status, body, delay
        self.requests = []

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        headers = {k[5:]: v for k, v in environ.items() if k.startswith("HTTP_")}
        headers["CONTENT_TYPE"] = environ.get("CONTENT_TYPE")
        self.requests.append((headers, environ["wsgi.input"].read(length)))
        time.sleep(self.delay)
        start_response(self.status, [("Content-Type", "application/json")])
        return [self.body]


@contextmanager
def file_size_limit(nbytes):
    """No file of this process, nor of a process it starts, may grow past `nbytes` while the
    block runs. Such a process is not measured by coverage (`make test`'s --cov): its data file
    would hit the limit too, and its failure to write it would be on the process's stderr."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    measured = {name: value for name, value in os.environ.items() if name.startswith("COVERAGE_")}
    for name in measured:
        del os.environ[name]
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        os.environ.update(measured)
        signal.signal(signal.SIGXFSZ, old_handler)
