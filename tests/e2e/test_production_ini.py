"""production.ini as shipped, served by pserve behind a (pretend) TLS-terminating proxy: links
and redirects follow the proxy's scheme and host, and the session cookie is Secure and
__Host-."""

import re
from pathlib import Path

import pytest
import requests

from .harness import free_port, pserve

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "production.ini"
# a log line that starts a record: the time, the level
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ +\[")
PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "telemetry.example.net"}


def production_ini(folder, port):
    """The shipped file with only what a test must change: its database and its port."""
    text = SHIPPED.read_text()
    text = re.sub(r"(?m)^zodbconn\.uri = .*$", f"zodbconn.uri = file://{folder}/Data.fs", text)
    text = re.sub(r"(?m)^listen = .*$", f"listen = 127.0.0.1:{port}", text)
    ini = folder / "production.ini"
    ini.write_text(text)
    return ini


def test_production_ini_behind_a_tls_proxy(tmp_path):
    port = free_port()
    secret = {"FFTELEMETRY_SECRET": "a-production-secret-0123456789"}
    with pserve(production_ini(tmp_path, port), port, env=secret) as url:
        proxied = requests.get(f"{url}/admin", headers=PROXY, allow_redirects=False, timeout=10)
        direct = requests.get(f"{url}/admin", allow_redirects=False, timeout=10)
        login = requests.get(f"{url}/login", headers=PROXY, timeout=10)
        huge = requests.post(f"{url}/login", data={"password": "x" * 100_000}, timeout=10)

    assert proxied.status_code == 303
    assert proxied.headers["Location"].startswith("https://telemetry.example.net/login?")
    assert direct.headers["Location"].startswith(f"{url}/login?")
    assert 'href="https://telemetry.example.net/static/' in login.text
    cookie = login.headers["Set-Cookie"].lower()
    assert "; secure" in cookie and "; httponly" in cookie
    assert cookie.startswith("__host-session=") and "; path=/;" in cookie  # bound to the host
    assert huge.status_code == 413  # refused before the app reads (and keeps) the body


def test_production_ini_logs_a_bug_quoting_the_address_as_one_record(tmp_path):
    """A 500 whose exception quotes the address (decoded: %0a is a line break) with a record
    after a line break: in pserve's log the traceback's lines are the bug's record's, and its
    text stays one line."""
    port = free_port()
    ini = production_ini(tmp_path, port)
    hook = "pyramid.includes = tests.functional.test_log_lines.any_address"
    ini.write_text(ini.read_text().replace("[app:main]\n", f"[app:main]\n{hook}\n", 1))
    forged = "%0a2026-11-27%2000:00:00,000%20ERROR%20%20%20[fftelemetry.x]%20forged%1b[2J"
    env = {"FFTELEMETRY_SECRET": "a-production-secret-0123456789", "PYTHONPATH": str(ROOT)}
    with pserve(ini, port, env=env) as url:
        answer = requests.get(f"{url}/quote/x{forged}", timeout=10)
    assert answer.status_code == 500 and "Something went wrong" in answer.text

    lines = ini.with_suffix(".log").read_text().splitlines()
    records = [line for line in lines if RECORD.match(line)]
    assert len([line for line in lines if "forged" in line]) == 2, lines  # the address, the text
    [failed] = [line for line in records if "forged" in line]
    assert failed.endswith(" ERROR   [fftelemetry.views.errors] GET /quote/x%0A2026-11-27%2000"
                           ":00:00,000%20ERROR%20%20%20%5Bfftelemetry.x%5D%20forged%1B%5B2J failed")
    text = "x\\n2026-11-27 00:00:00,000 ERROR   [fftelemetry.x] forged\\x1b[2J"
    assert f"  ValueError: cannot use {text}" in lines
    after = lines[lines.index(failed) + 1:]
    assert after and all(line.startswith("  ") for line in after), lines
