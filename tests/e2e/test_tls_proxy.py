"""production.ini behind a real TLS-terminating proxy: nginx running README's server blocks (a
certificate from trustme for localhost) in front of `pserve production.ini` on a ZEO server,
spoken to over HTTPS as a browser would (its Origin on every form). The client connects from
another address of 127.0.0.0/8 than nginx, so the app's idea of the client's address can be told
from the proxy's. Without nginx the test skips, saying so loudly (.ci/run installs it)."""

import os
import re
import shutil
import socket
import ssl
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import trustme
from requests.adapters import HTTPAdapter

from .harness import free_port, port_open, process, pserve_process, runzeo, wait_until, zeo_uri
from .test_production_ini import SHIPPED

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
NAME = "localhost"  # the site's name: one that resolves to loopback on every machine
CLIENT, GUESSER = "127.0.0.2", "127.0.0.3"  # nginx reaches the app from 127.0.0.1
SECRET = "a-production-secret-0123456789"
HSTS = "max-age=31536000"


def nginx_blocks():
    return re.findall(r"```nginx\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def readme_server_blocks():
    """The app's blocks (Behind a reverse proxy), not the receiver's (The receiver on the
    network)."""
    blocks = [block for block in nginx_blocks() if "127.0.0.1:6543" in block]
    assert len(blocks) == 1, "README (Behind a reverse proxy) should hold one app's nginx block"
    return blocks[0]


def swap(text, old, new):
    """`old` replaced by `new` in README's block, which must hold it."""
    assert old in text, f"README's nginx block no longer has {old!r}: update this test"
    return text.replace(old, new)


def nginx_config(folder, tls, http, app, cert, key):
    """README's blocks on ports of 127.0.0.1 (no [::]: not every container has IPv6), inside an
    nginx.conf whose every path is in `folder`: no system service, no /var/lib/nginx."""
    site = "\n".join(line for line in readme_server_blocks().splitlines() if "[::]" not in line)
    site = re.sub(r"(?m)^(\s*ssl_certificate) .*$", rf"\1 {cert};", site)
    site = re.sub(r"(?m)^(\s*ssl_certificate_key) .*$", rf"\1 {key};", site)
    site = swap(site, "server_name telemetry.example.org;", f"server_name {NAME};")
    site = swap(site, "listen 443 ", f"listen 127.0.0.1:{tls} ")
    site = swap(site, "listen 80", f"listen 127.0.0.1:{http}")
    site = swap(site, "http://127.0.0.1:6543;", f"http://127.0.0.1:{app};")
    return nginx_conf(folder, site)


def nginx_conf(folder, site, connections=64):
    """`site` inside an nginx.conf whose every path is in `folder`."""
    temp = "\n".join(f"    {kind}_temp_path {folder}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, nginx's workers would run as nobody, who cannot enter pytest's folders.
    user = "user root;" if os.geteuid() == 0 else ""
    config = folder / "nginx.conf"
    config.write_text(f"""daemon off;
{user}
worker_processes 1;
pid {folder}/nginx.pid;
error_log stderr notice;
events {{ worker_connections {connections}; }}
http {{
    access_log {folder}/access.log;
{temp}
{site}
}}
""")
    return config


@contextmanager
def nginx(folder, tls, **ports):
    with nginx_process(folder, tls, nginx_config(folder, tls, **ports)) as child:
        yield child


@contextmanager
def nginx_process(folder, tls, config):
    """nginx on the nginx.conf `config`, ready once it listens on `tls`."""
    args = [NGINX, "-e", "stderr", "-p", str(folder), "-c", str(config)]
    with process(args, folder / "nginx.log", ready=lambda: port_open(tls)) as child:
        yield child


def production_ini(folder, port):
    """The shipped file with its database (on the ZEO server in `folder`) and port changed; the
    session secret in the .env beside it, as README says."""
    text = SHIPPED.read_text()
    text = re.sub(r"(?m)^zodbconn\.uri = .*$", f"zodbconn.uri = {zeo_uri(folder, 10)}", text)
    text = re.sub(r"(?m)^listen = .*$", f"listen = 127.0.0.1:{port}", text)
    (folder / ".env").write_text(f"FFTELEMETRY_SECRET={SECRET}\n")
    ini = folder / "production.ini"
    ini.write_text(text)
    return ini


class FromAddress(HTTPAdapter):
    """Connections made from `address`, one of 127.0.0.0/8."""

    def __init__(self, address):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def client(ca_file, address):
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would win over verify
    session.verify = str(ca_file)
    session.mount("https://", FromAddress(address))
    return session


def send_form(session, base, path, page=None, headers=None, **fields):
    """GET the form's page (`path`, or `page` for a button), then POST the form to `path` with
    its token and the Origin a browser sends."""
    page = session.get(f"{base}{page or path}", timeout=10)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return session.post(f"{base}{path}", data={"csrf_token": token, **fields},
                        headers={"Origin": base, **(headers or {})}, allow_redirects=False,
                        timeout=10)


def nginx_and_certificate(folder, untried):
    """What a test of nginx needs: nginx, or the test skips, saying loudly what was `untried`;
    a throwaway CA (trustme) and its certificate for NAME, written to `folder`. The paths of the
    CA's certificate, the site's certificate and its key."""
    if NGINX is None:
        pytest.skip(f"NO NGINX HERE: {untried}. Install Debian's nginx (.ci/run does).")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(ca_file := folder / "ca.pem")
    issued = ca.issue_cert(NAME)
    issued.cert_chain_pems[0].write_to_path(cert := folder / "cert.pem")
    issued.private_key_pem.write_to_path(key := folder / "key.pem")
    return ca_file, cert, key


def test_production_ini_behind_nginx(tmp_path):
    ca_file, cert, key = nginx_and_certificate(
        tmp_path, "production.ini was not tried behind a TLS proxy"
    )
    app, tls, http = free_port(), free_port(), free_port()
    ini = production_ini(tmp_path, app)
    base = f"https://{NAME}:{tls}"

    with runzeo(tmp_path), pserve_process(ini, app), nginx(
        tmp_path, tls, http=http, app=app, cert=cert, key=key
    ):
        owner = client(ca_file, CLIENT)
        asked = owner.get(f"{base}/admin/telemetry", allow_redirects=False, timeout=10)
        assert asked.status_code == 303 and asked.headers["Strict-Transport-Security"] == HSTS
        assert asked.headers["Location"].startswith(f"{base}/login?came_from=https%3A%2F%2F")
        page = owner.get(f"{base}/register", timeout=10)
        links = re.findall(r'(?:href|action|src)="([^"]+)"', page.text)
        assert links and all(link.startswith(f"{base}/") for link in links), links
        assert re.fullmatch(r"__Host-session=[^;]+; Path=/; secure; HttpOnly; SameSite=Lax",
                            page.headers["Set-Cookie"])
        assert page.headers["Strict-Transport-Security"] == HSTS

        made = send_form(owner, base, "/register", email="owner@example.org",
                         password="correct horse battery")
        assert made.status_code == 303, made.text
        assert made.headers["Location"].startswith(f"{base}/welcome?came_from=")
        done = send_form(owner, base, "/welcome", language="en", locale="en_GB")
        assert done.status_code == 303 and done.headers["Location"].startswith(f"{base}/")
        status = owner.get(f"{base}/admin/telemetry", timeout=10)
        assert status.status_code == 200 and "Telemetry is <strong>disabled</strong>" in status.text
        out = send_form(owner, base, "/logout", page="/admin/telemetry")
        assert out.status_code == 303 and out.headers["Location"] == f"{base}/"
        assert owner.get(f"{base}/missing", timeout=10).headers["Strict-Transport-Security"] == HSTS

        user = client(ca_file, CLIENT)
        assert send_form(user, base, "/register", email="user@example.org",
                         password="another password").status_code == 303
        refused = user.get(f"{base}/admin/telemetry", timeout=10)
        assert refused.status_code == 403 and refused.headers["Strict-Transport-Security"] == HSTS

        # 21 guesses at made-up accounts, each with a forged X-Forwarded-For: nginx replaces it,
        # so they all count for the guesser's own address, which is locked out after 20.
        guesser = client(ca_file, GUESSER)
        for n in range(21):
            guess = send_form(guesser, base, "/login", email=f"nobody{n}@example.org",
                              password="not the password",
                              headers={"X-Forwarded-For": f"203.0.113.{n}"})
        assert guess.status_code == 429 and guess.headers["Strict-Transport-Security"] == HSTS
        log = ini.with_suffix(".log")
        locked = f"login: {GUESSER} is locked out of every account"
        wait_until(lambda: locked in log.read_text(), 10, "the throttle's WARNING")
        assert "203.0.113." not in log.read_text()

        # Another name: no answer over HTTPS (444), no certificate for it over TLS.
        with pytest.raises(requests.ConnectionError):
            owner.get(f"{base}/login", headers={"Host": "other.example.org"}, timeout=10)
        context = ssl.create_default_context(cafile=ca_file)
        with socket.create_connection(("127.0.0.1", tls)) as raw, pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname="other.example.org")
        # Plain HTTP: the site's name is sent to HTTPS (port 443, as README's block has it)
        plain = requests.Session()
        plain.trust_env = False
        moved = plain.get(f"http://{NAME}:{http}/login", allow_redirects=False, timeout=10)
        assert moved.status_code == 301 and moved.headers["Location"] == f"https://{NAME}/login"
        with pytest.raises(requests.ConnectionError):
            plain.get(f"http://127.0.0.1:{http}/login", timeout=10)
