"""production.ini as shipped, served by pserve behind a (pretend) TLS-terminating proxy: links
and redirects follow the proxy's scheme and host, and the session cookie is Secure."""

import re
from pathlib import Path

import pytest
import requests

from .harness import free_port, pserve

pytestmark = pytest.mark.slow

SHIPPED = Path(__file__).resolve().parents[2] / "production.ini"
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
    assert huge.status_code == 413  # refused before the app reads (and keeps) the body
