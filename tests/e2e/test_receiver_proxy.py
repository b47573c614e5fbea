"""The receiver behind a real nginx running README's server block (The receiver on the network; a
certificate from trustme for localhost) in front of `pserve receiver.ini` as shipped: clients
that hold POSTs half-sent, which take every one of waitress's connections when it serves alone,
keep no batch out; nginx's own answers are the receiver's JSON; its access log keeps what
docs/telemetry.md says of a sender. Without nginx the test skips, saying so loudly (.ci/run
installs it)."""

import json
import re
import socket
import ssl
import threading
from contextlib import ExitStack, contextmanager
from urllib.parse import urlsplit

import pytest
import requests
from pyramid.paster import get_appsettings

from tests.functional.test_receiver import record

from .harness import free_port, pserve
from .test_production_ini import SHIPPED
from .test_tls_proxy import (
    NAME,
    ROOT,
    nginx_and_certificate,
    nginx_blocks,
    nginx_conf,
    nginx_process,
    readme_server_blocks,
    swap,
)

pytestmark = pytest.mark.slow

HELD = 120  # more than waitress's 100 connections


def readme_receiver_block():
    (block,) = [block for block in nginx_blocks() if "127.0.0.1:6544" in block]
    return block


def test_production_ini_sends_to_the_receivers_name_in_readme_not_the_apps():
    """An operator who follows README for both sites, and puts their names in place of its, sends
    to their receiver: production.ini's placeholder was the name README gives the app itself."""
    host = urlsplit(get_appsettings(str(SHIPPED))["fftelemetry.telemetry_url"]).hostname
    assert f"server_name {host};" in readme_receiver_block()
    assert host not in readme_server_blocks()


def receiver_site(tls, receiver, cert, key):
    site = "\n".join(line for line in readme_receiver_block().splitlines() if "[::]" not in line)
    site = re.sub(r"(?m)^(\s*ssl_certificate) .*$", rf"\1 {cert};", site)
    site = re.sub(r"(?m)^(\s*ssl_certificate_key) .*$", rf"\1 {key};", site)
    site = swap(site, "server_name receiver.example.org;", f"server_name {NAME};")
    site = swap(site, "listen 443 ", f"listen 127.0.0.1:{tls} ")
    return swap(site, "http://127.0.0.1:6544;", f"http://127.0.0.1:{receiver};")


def receiver_ini(folder, port):
    """The shipped file with only what a test must change: its database and its port."""
    text = (ROOT / "receiver.ini").read_text()
    text = re.sub(r"(?m)^zodbconn\.uri = file://.*$", f"zodbconn.uri = file://{folder}/r.fs", text)
    text = re.sub(r"(?m)^listen = .*$", f"listen = 127.0.0.1:{port}", text)
    ini = folder / "receiver.ini"
    ini.write_text(text)
    return ini


def half_sent_post(tls, context):
    """A POST whose headers promise a body of which one byte is sent, over TLS."""
    raw = socket.create_connection(("127.0.0.1", tls))
    held = context.wrap_socket(raw, server_hostname=NAME)
    held.sendall(b"POST /submit HTTP/1.1\r\nHost: " + NAME.encode() + b"\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[")
    return held


@contextmanager
def trickling(sockets, every=2):
    """A byte to each of `sockets` every `every` seconds, within the 10 s after which nginx
    drops a client that sends nothing, until the block ends: they are never done, never
    dropped."""
    done = threading.Event()

    def trickle():
        while not done.wait(every):
            for held in sockets:
                held.sendall(b" ")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def test_the_receiver_behind_readmes_nginx_block(tmp_path):
    ca_file, cert, key = nginx_and_certificate(
        tmp_path, "the receiver was not tried behind README's nginx block"
    )
    receiver, tls = free_port(), free_port()
    site = receiver_site(tls, receiver, cert, key)
    submit = f"https://{NAME}:{tls}/submit"
    sender = requests.Session()
    sender.trust_env = False
    sender.verify = str(ca_file)
    context = ssl.create_default_context(cafile=ca_file)

    # more connections than the test's 64, for the holders (Debian's nginx.conf: 768)
    with nginx_process(tmp_path, tls, nginx_conf(tmp_path, site, connections=1024)):
        with pserve(receiver_ini(tmp_path, receiver), receiver), ExitStack() as held:
            sockets = [held.enter_context(half_sent_post(tls, context)) for _ in range(HELD)]
            with trickling(sockets):  # never dropped while the sender waits for its answer
                stored = sender.post(submit, json=[record()], timeout=30,
                                     auth=("tok3n", ""))  # a token: https://tok3n@…
            assert stored.status_code == 200 and "uuid" in stored.json(), stored.text
            # past receiver.max_body_bytes (1 MiB): refused by nginx, or by the receiver itself
            too_large = [
                sender.post(submit, data=b" " * size, timeout=30,
                            headers={"Content-Type": "application/json"})
                for size in (1024 * 1024 + 1, 3 * 1024 * 1024)
            ]
        stopped = sender.post(submit, json=[record()], timeout=30)

    # what nginx's access log keeps of the sender (docs/telemetry.md, What the receiver keeps)
    [logged] = [line for line in (tmp_path / "access.log").read_text().splitlines()
                if " tok3n " in line]
    assert logged.startswith("127.0.0.1 - tok3n [") and '"POST /submit HTTP/1.1" 200 ' in logged
    assert logged.endswith(f'"{requests.utils.default_user_agent()}"')

    # in the receiver's words, whichever refused it: not "the receiver takes 2 MiB"
    assert [(answer.status_code, answer.json()) for answer in too_large] == [
        (413, {"error": "the body is larger than 1048576 bytes"})
    ] * 2
    assert stopped.status_code == 503 and stopped.headers["Content-Type"] == "application/json"
    assert json.loads(stopped.text) == {
        "error": "the receiver cannot be reached behind its proxy (stopped for its pack?); "
        "nothing was stored, send the batch again later"
    }
