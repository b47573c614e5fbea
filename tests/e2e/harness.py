"""Real processes for end-to-end tests: runzeo, pserve, ini files, ports on 127.0.0.1."""

import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
import requests

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
ZEO_CONF = ROOT / "zeo.conf"  # the shipped one, the Procfile's


def child_environment(extra=None):
    """The test's environment for a child process, without what only the test process wants
    (tests/functional/conftest.py points Chameleon at a cache, and Chameleon then says so)."""
    env = {k: v for k, v in os.environ.items() if k != "CHAMELEON_CACHE"}
    env.update(extra or {})
    return env
SECRET = "end-to-end-secret-0123456789"


@contextmanager
def tmpfs(folder, options, what_did_not_run):
    """A tmpfs of its own mounted on `folder`, made for it and removed after. Mounting needs root
    (the tests run as root in CI, .ci/run); elsewhere the test skips, saying what did not run."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, folder.name, str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode:
        pytest.skip(f"CANNOT MOUNT A TMPFS HERE ({mounted.stderr.strip()}): {what_did_not_run} "
                    "did not run. Mounting needs root, as .ci/run has it.")
    try:
        yield
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)
        os.rmdir(folder)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready, timeout=30, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def port_open(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def socket_open(path):
    """Whether a server listens on the unix socket `path`: one killed leaves the file there."""
    with socket.socket(socket.AF_UNIX) as sock:
        return sock.connect_ex(str(path)) == 0


def write_server_ini(path, app_settings, port=None, use="egg:fftelemetry"):
    """An ini like development.ini: [app:main] with `app_settings`, waitress on `port`."""
    lines = ["[app:main]", f"use = {use}"]
    lines += [f"{key} = {value}" for key, value in app_settings.items()]
    lines += ["", "[server:main]", "use = egg:fftelemetry#waitress"]
    lines += [f"listen = 127.0.0.1:{port or 0}", "threads = 8", ""]
    lines += [
        "[loggers]", "keys = root", "", "[handlers]", "keys = console", "",
        "[formatters]", "keys = generic", "", "[logger_root]", "level = INFO",
        "handlers = console", "", "[handler_console]", "class = StreamHandler",
        "args = (sys.stderr,)", "level = NOTSET", "formatter = generic", "",
        "[formatter_generic]", "class = fftelemetry.logs.Formatter",
        "format = %(levelname)s [%(name)s] %(message)s", "",
    ]
    Path(path).write_text("\n".join(lines))
    return Path(path)


def app_settings(uri, **extra):
    settings = {
        "zodbconn.uri": uri,
        "fftelemetry.session_secret": SECRET,
        "fftelemetry.send_telemetry": "true",
        "retry.attempts": "10",
    }
    settings.update(extra)
    return settings


@contextmanager
def process(args, log_path, ready=None, timeout=30, env=None, cwd=None, preexec_fn=None):
    """A child process with its output in `log_path`; ended (SIGTERM, then SIGKILL) after."""
    log = open(log_path, "wb")  # noqa: SIM115 - closed below, after the process
    child = subprocess.Popen(
        args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, preexec_fn=preexec_fn
    )
    try:
        if ready is not None:
            try:
                wait_until(lambda: ready() or child.poll() is not None, timeout, str(args))
            finally:
                if child.poll() is not None:
                    raise RuntimeError(
                        f"{args[0]} exited with {child.returncode}: "
                        f"{Path(log_path).read_text()[-2000:]}"
                    )
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        log.close()


def zeo_uri(folder, wait_timeout=30):
    return f"zeo://{Path(folder) / 'zeo.sock'}?wait_timeout={wait_timeout}"


@contextmanager
def runzeo(folder, file_size_limit=None):
    """runzeo on a unix socket in `folder` (see zeo_uri); yields its process. With
    `file_size_limit`, no file of the server grows past that many bytes (a full disk: EFBIG)."""
    sock = Path(folder) / "zeo.sock"
    args = [str(BIN / "runzeo"), "-a", str(sock), "-f", str(Path(folder) / "Data.fs")]

    def limited():  # Python ignores SIGXFSZ: a write past the limit fails, nothing is killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    limits = {}
    if file_size_limit is not None:  # not measured by coverage: its data file would not fit
        unmeasured = {k: v for k, v in child_environment().items() if not k.startswith("COVERAGE_")}
        limits = {"preexec_fn": limited, "env": unmeasured}
    ready = partial(socket_open, sock)
    with process(args, Path(folder) / "zeo.log", ready=ready, **limits) as child:
        yield child


@contextmanager
def runzeo_on_cue(folder, flag=None, oids=None):
    """runzeo as runzeo(folder) starts it, on a storage that ends the server at the first load
    after the first commit once the file `flag` exists, or at the first load of an object the
    file `oids` lists once it exists (tests/e2e/zeo_on_cue). Yields its process."""
    sock = Path(folder) / "zeo.sock"
    conf = Path(folder) / "zeo-on-cue.conf"
    cues = "".join(f"  {key} {path}\n" for key, path in (("flag", flag), ("oids", oids)) if path)
    conf.write_text(
        "%import tests.e2e.zeo_on_cue\n"
        f"<zeo>\n  address {sock}\n</zeo>\n"
        f"<dyingfilestorage>\n  path {Path(folder) / 'Data.fs'}\n{cues}"
        "</dyingfilestorage>\n"
    )
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    args = [str(BIN / "runzeo"), "-C", str(conf)]
    ready = partial(socket_open, sock)
    env = child_environment({"PYTHONPATH": path})
    with process(args, Path(folder) / "zeo.log", ready=ready, env=env) as child:
        yield child


@contextmanager
def runzeo_shipped(root):
    """`runzeo -C zeo.conf` as the Procfile runs it, from `root`: the shipped file's relative
    paths put the socket and Data.fs in root/var (zeo_uri(root / "var")). Yields its process."""
    var = Path(root) / "var"
    var.mkdir(exist_ok=True)
    args = [str(BIN / "runzeo"), "-C", str(ZEO_CONF)]
    ready = partial(socket_open, var / "zeo.sock")
    with process(args, Path(root) / "zeo.log", ready=ready, cwd=root) as zeo:
        yield zeo


@contextmanager
def zeo_server(folder):
    """runzeo on a unix socket in `folder`; yields the zodburi URI."""
    with runzeo(folder):
        yield zeo_uri(folder)


@contextmanager
def pserve_process(ini_path, port, env=None):
    """`pserve ini` listening on `port`, its output in the ini's name with .log; yields the
    process."""
    args = [str(BIN / "pserve"), str(ini_path)]
    log = Path(ini_path).with_suffix(".log")
    with process(args, log, ready=lambda: port_open(port), env=child_environment(env)) as child:
        yield child


@contextmanager
def pserve(ini_path, port, env=None):
    """`pserve ini` listening on `port`; yields its base URL."""
    with pserve_process(ini_path, port, env):
        yield f"http://127.0.0.1:{port}"


def csrf_token(html):
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    if match is None:
        match = re.search(r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def unavailable_said(html):
    """The paragraph of the app's "Database unavailable" page (its 503), whole."""
    match = re.search(r"<h1>Database unavailable</h1>\s*<p>(.*?)</p>", html)
    assert match, "not the Database unavailable page"
    return match[1]


def post_form(session, url, data, timeout=30):
    """GET the page for its CSRF token, then POST the form as a browser would."""
    page = session.get(url, timeout=timeout)
    page.raise_for_status()
    return session.post(url, data={**data, "csrf_token": csrf_token(page.text)}, timeout=timeout)


def new_session():
    return requests.Session()


def stored_batch(session, base, batch, timeout=30):
    """POST `batch` to the receiver at `base` as a sender does; its uuid, once it was stored."""
    answer = session.post(f"{base}/submit", json=batch, timeout=timeout)
    assert answer.status_code == 200, answer.text
    return answer.json()["uuid"]
