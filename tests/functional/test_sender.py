"""The sender over real HTTP on 127.0.0.1: the real receiver for the happy paths, tiny stub WSGI
apps (not our code) for the ways a receiver fails."""

import json
import logging
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import transaction
import trustme
import webtest
from ZODB import DB
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError

from fftelemetry import __version__
from fftelemetry.receiver import main as receiver_main
from fftelemetry.resources import telemetry_store_in
from fftelemetry.resources.store import utcnow
from fftelemetry.scripting import close_databases, own_connection
from fftelemetry.settings import load
from fftelemetry.telemetry.sender import Outcome, _write, pending_bodies, submit_pending
from fftelemetry.telemetry.status import status_facts
from tests.conftest import (
    OUTSIDE,
    OUTSIDE_SHOWN,
    SECRET,
    STUB_ANSWER,
    STUB_UUID,
    Stub,
    file_size_limit,
    serving,
)
from tests.functional.test_receiver import record


def settings_for(url, ini=None, **overrides):
    ini = {
        "fftelemetry.session_secret": SECRET,
        "fftelemetry.send_telemetry": "true",
        "fftelemetry.telemetry_url": url,
        "fftelemetry.connect_timeout": "2",
        "fftelemetry.read_timeout": "5",
        **(ini or {}),
    }
    return replace(load(ini, environ={}), **overrides)


@pytest.fixture
def fs_path(tmp_path):
    return str(tmp_path / "app.fs")


@pytest.fixture
def db(fs_path):
    db = DB(FileStorage(fs_path))
    yield db
    db.close()


def in_store(db, fn):
    """fn(store) in a transaction of its own, committed; returns its result."""
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        with tm:
            return fn(telemetry_store_in(conn.root()))
    finally:
        conn.close()


def collect(db, count):
    """`count` distinct records, oldest first; returns their ids in that order."""
    return in_store(
        db, lambda store: [store.add_feature("system.users.count", n).id for n in range(count)]
    )


def counts(db):
    return in_store(db, lambda store: store.counts())


def test_full_loop_marks_records_with_the_receivers_uuid(db, receiver, caplog):
    collect(db, 5)
    caplog.set_level(logging.INFO, logger="fftelemetry")
    outcome = submit_pending(db, settings_for(receiver.url))
    assert outcome.ok and outcome.sent == 5 and outcome.status == 200
    assert receiver.read(lambda r: list(r.batches.keys())) == [outcome.uuid]
    assert receiver.stats() == {"records": 5, "batches": 1}
    submitted = in_store(db, lambda store: [r for _, r in store.page("submitted")])
    assert {r.submission_uuid for r in submitted} == {outcome.uuid}
    assert all(r.submitted_at is not None for r in submitted)
    assert counts(db)["pending"] == 0
    assert f'Result of submission [200]: {{"uuid":"{outcome.uuid}"}}' in caplog.messages
    last = in_store(db, lambda store: store.last_submission())
    assert (last.sent, last.status, last.uuid, last.error) == (5, 200, outcome.uuid, None)
    assert outcome.message() == f"Sent 5 records; the receiver's reference is {outcome.uuid}."


def test_batches_go_oldest_first_one_post_each(db, receiver):
    ids = collect(db, 10)
    outcome = submit_pending(db, settings_for(receiver.url, batch_size=3))
    assert outcome.ok and outcome.sent == 10
    assert receiver.stats() == {"records": 10, "batches": 4}
    batches = receiver.read(
        lambda r: sorted((b.received_at, b.record_ids) for b in r.batches.values())
    )
    assert [len(ids_) for _, ids_ in batches] == [3, 3, 3, 1]
    assert [i for _, ids_ in batches for i in ids_] == ids


def test_request_carries_the_agreed_headers_and_payload(db):
    ids = collect(db, 2)
    stub = Stub()
    with serving(stub) as url:
        assert submit_pending(db, settings_for(url)).uuid == STUB_UUID
    [(headers, body)] = stub.requests
    assert headers["CONTENT_TYPE"] == "application/json"
    assert headers["ACCEPT"] == "application/json"
    assert headers["USER_AGENT"] == f"fftelemetry/{__version__}"
    sent = json.loads(body)
    assert [r["id"] for r in sent] == ids
    assert set(sent[0]) == {"id", "installation_id", "collected_at", "type", "key", "value"}
    assert sent[0]["value"] == 0 and sent[0]["collected_at"].endswith("+00:00")


FAILURES = {  # case: (the receiver's answer, status seen, words of the reason)
    "server error": (dict(status="500 Internal Server Error", body=b"oops"), 500, "HTTP 500"),
    "not json": (dict(body=b"<html>hello</html>"), 200, "not JSON"),
    "no uuid": (dict(body=b'{"ok": true}'), 200, "holds no uuid"),
    "not an object": (dict(body=b'["uuid"]'), 200, "holds no uuid"),
    "nested too deeply": (dict(body=b"[" * 100_000 + b"]" * 100_000), 200, "not JSON"),
    "refused, nested too deeply": (
        dict(status="400 Bad Request", body=b"[" * 100_000), 400, "answered HTTP 400"
    ),
    "empty uuid": (dict(body=b'{"uuid": ""}'), 200, "holds no valid uuid"),
    "not a uuid": (dict(body=b'{"uuid": "n/a", "error": "db down"}'), 200, "holds no valid uuid"),
    "the nil uuid": (
        dict(body=b'{"uuid": "00000000-0000-0000-0000-000000000000"}'), 200, "(the nil uuid)"
    ),
    "the nil uuid, undashed": (dict(body=b'{"uuid": "' + b"0" * 32 + b'"}'), 200, "(the nil uuid)"),
    "the max uuid": (dict(body=b'{"uuid": "' + b"F" * 32 + b'"}'), 200, "(the max uuid)"),
    # uuid.UUID reads the digits with int(): these were taken for references
    "a uuid in hexadecimal notation": (
        dict(body=b'{"uuid": "0x' + b"1" * 30 + b'"}'), 200, "holds no valid uuid"
    ),
    "a uuid with a sign": (dict(body=b'{"uuid": "+' + b"1" * 31 + b'"}'), 200, "no valid uuid"),
    "too slow": (dict(delay=1.0), None, "/submit within 0.3s"),
    # only a 200 acknowledges a stored batch, whatever the body says
    "accepted, not stored": (dict(status="202 Accepted"), 202, "answered HTTP 202"),
    "a redirect": (dict(status="307 Temporary Redirect"), 307, "answered HTTP 307"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_a_failing_receiver_leaves_everything_pending(db, case, caplog):
    answer, status, reason = FAILURES[case]
    stub = Stub(**answer)
    collect(db, 4)
    with serving(stub) as url:
        outcome = submit_pending(db, settings_for(url, read_timeout=0.3, batch_size=2))
    assert not outcome.ok and outcome.sent == 0 and reason in outcome.error
    assert outcome.status == status
    assert len(stub.requests) == 1, "stops at the first failure"
    assert counts(db) == {"all": 4, "pending": 4, "submitted": 0}
    last = in_store(db, lambda store: store.last_submission())
    assert not last.ok and reason in last.error
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is None
    assert reason in warnings[0].getMessage()


@pytest.mark.parametrize(("connect", "read"), [(0.3, 30), (0.6, 0.2)])
def test_https_to_a_plain_http_receiver_says_what_timed_out(db, connect, read):
    collect(db, 1)
    with serving(Stub()) as url:
        url = url.replace("http://", "https://")
        outcome = submit_pending(db, settings_for(url, connect_timeout=connect, read_timeout=read))
    assert outcome.error == (
        f"no answer from {url}/submit within {connect:g}s "
        "(the TLS handshake got no answer: does the receiver speak https?)"
    )
    assert counts(db)["pending"] == 1


def test_https_to_a_web_server_that_answers_in_plain_http_names_the_handshakes_failure(
    db, tmp_path
):
    # http.server answers the TLS ClientHello with its plain-HTTP 400 page, at once: the reason
    # is OpenSSL's, as a handshake of the standard library's own gets it
    collect(db, 1)
    with file_server(str(tmp_path)) as url:
        address = url.replace("http://", "https://")
        outcome = submit_pending(db, settings_for(address))
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock, pytest.raises(
            ssl.SSLError
        ) as refused:
            ssl.create_default_context().wrap_socket(sock, server_hostname="127.0.0.1")
    assert refused.value.reason
    assert outcome.error == (
        f"the TLS handshake with {address}/submit failed ({refused.value.reason})"
    )
    assert counts(db)["pending"] == 1


def test_a_redirect_is_not_followed_and_the_records_stay_pending(db):
    elsewhere = Stub()  # would acknowledge anything it gets
    collect(db, 2)
    with serving(elsewhere) as other_url:

        def moved(environ, start_response):
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            start_response("307 Temporary Redirect", [
                ("Location", other_url + "/submit"), ("Content-Type", "application/json"),
            ])
            return [b'{"error":"moved"}']

        with serving(moved) as url:
            outcome = submit_pending(db, settings_for(url))
    assert elsewhere.requests == [], "the records go to the configured receiver or nowhere"
    assert (outcome.ok, outcome.status) == (False, 307)
    assert outcome.error == "the receiver answered HTTP 307: moved"
    assert counts(db) == {"all": 2, "pending": 2, "submitted": 0}


def test_a_receiver_that_is_down(db, closed_port_url, caplog):
    collect(db, 1)
    outcome = submit_pending(db, settings_for(closed_port_url))
    assert outcome.error == (
        f"cannot connect to {closed_port_url}/submit (connection refused; tried 3 times)"
    )
    assert outcome.status is None and counts(db)["pending"] == 1
    assert outcome.message().startswith("Nothing was sent: cannot connect")
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # no urllib3 retry chatter


def test_a_receiver_that_never_takes_the_connection_says_connecting_timed_out(db):
    # a listener whose queue is full (a server too busy to accept): the kernel drops the
    # connection's SYN, as a firewall that drops would
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    queued = [socket.socket() for _ in range(3)]
    try:
        for sock in queued:
            sock.setblocking(False)
            sock.connect_ex(listener.getsockname())
        collect(db, 1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        outcome = submit_pending(db, settings_for(url, connect_timeout=0.2))
    finally:
        for sock in [*queued, listener]:
            sock.close()
    assert outcome.error == f"connecting to {url}/submit timed out after 0.2s"
    assert counts(db)["pending"] == 1


def test_only_urllib3s_retry_notices_are_kept_out_of_the_log(db, closed_port_url, caplog):
    # an operator who turns urllib3's log up to DEBUG still gets its other lines
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    collect(db, 1)
    submit_pending(db, settings_for(closed_port_url))
    urllib3s = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    # and it tried three times, as the failure says
    assert sum(m.startswith("Starting new HTTP connection") for m in urllib3s) == 3, urllib3s
    assert not any(m.startswith("Retrying (") for m in urllib3s), urllib3s


def test_a_host_name_that_does_not_resolve_is_not_said_to_refuse(db):
    # a typo in the host would otherwise read exactly as a receiver that is down
    collect(db, 1)
    url = "http://user:s3cret@receiver.invalid:6544"  # RFC 6761: .invalid never resolves
    outcome = submit_pending(db, settings_for(url))
    said = re.fullmatch(
        r"cannot connect to http://user:\*\*\*@receiver.invalid:6544/submit "
        r"\(([^;]+); tried 3 times\)",
        outcome.error,
    )
    assert said, outcome.error
    assert said[1] != "connection refused"  # the resolver's words: "name or service not known"
    assert counts(db)["pending"] == 1


def test_a_failure_after_some_batches_keeps_the_rest(db):
    answers = iter([STUB_ANSWER, b"broken"])
    stub = Stub()

    def app(environ, start_response):
        stub.body = next(answers)
        return stub(environ, start_response)

    collect(db, 5)
    with serving(app) as url:
        outcome = submit_pending(db, settings_for(url, batch_size=2))
    assert (outcome.sent, outcome.ok) == (2, False)
    assert counts(db) == {"all": 5, "pending": 3, "submitted": 2}
    assert outcome.message().startswith("Sent 2 records, then the submission failed")
    assert outcome.message().endswith(" The other records stay pending for the next try.")


def test_a_crash_between_post_and_commit_resends_and_counts_once(db, fs_path, receiver):
    ids = collect(db, 3)
    db.close()
    # The marking transaction cannot commit on a read-only storage: the POST went through,
    # the process "dies" before the records are marked.
    read_only = DB(FileStorage(fs_path, read_only=True))
    failed = submit_pending(read_only, settings_for(receiver.url))
    assert (failed.ok, failed.sent) == (False, 0)
    assert "could not be marked (the database is read-only)" in failed.error
    read_only.close()
    assert receiver.stats() == {"records": 3, "batches": 1}

    reopened = DB(FileStorage(fs_path))
    try:
        assert counts(reopened)["pending"] == 3, "nothing marked without a commit"
        outcome = submit_pending(reopened, settings_for(receiver.url))
        assert outcome.ok and outcome.sent == 3
        assert counts(reopened)["submitted"] == 3
    finally:
        reopened.close()
    assert receiver.stats() == {"records": 3, "batches": 2}, "re-sent, counted once"
    assert receiver.read(lambda r: sorted(rec.id for rec in r.records.values())) == sorted(ids)


def test_a_mark_that_fails_says_the_batch_sent_after_it_stays_pending_too(db, fs_path, receiver,
                                                                         caplog):
    """The second batch is sent as the first is marked: the first's mark fails, and the second,
    cut or acknowledged, is not marked either; the run says so, not only of the first."""
    collect(db, 3)
    db.close()
    read_only = DB(FileStorage(fs_path, read_only=True))
    try:
        failed = submit_pending(read_only, settings_for(receiver.url, batch_size=2))
    finally:
        read_only.close()
    assert (failed.ok, failed.sent, failed.cut) == (False, 0, True)
    assert failed.error == (
        "a batch was sent but could not be marked (the database is read-only); it will be "
        "re-sent, as will the batch sent after it"
    )
    assert f"Telemetry submission failed: {failed.error}." in caplog.messages
    reopened = DB(FileStorage(fs_path))
    try:
        assert counts(reopened)["pending"] == 3
        assert submit_pending(reopened, settings_for(receiver.url, batch_size=2)).sent == 3
    finally:
        reopened.close()
    assert receiver.read(lambda r: len(r.records)) == 3, "each counted once"


def test_a_run_overtaken_by_another_counts_only_what_it_marked(db, receiver):
    # "Submit now" pressed while cron's run is sending: both POST the same batch, the first to
    # mark it is the one that sent it.
    collect(db, 3)
    posts, other_runs, settings = [], [], {}

    def another_run_first(environ, start_response):  # in front of the real receiver
        posts.append(environ["REQUEST_METHOD"])
        if posts == ["POST"]:  # the first run's POST waits for a whole run of another
            other_runs.append(submit_pending(db, settings["value"]))
        return receiver.app(environ, start_response)

    with serving(another_run_first) as url:
        settings["value"] = settings_for(url)
        outcome = submit_pending(db, settings["value"])
    [other] = other_runs
    assert (other.ok, other.sent) == (True, 3)
    assert (outcome.ok, outcome.sent, outcome.uuid) == (True, 0, None), "no reference of its own"
    assert outcome.message() == "Nothing to send: there are no pending records."
    log = in_store(db, lambda store: [(run.sent, run.uuid) for run in store.submissions()])
    assert log == [(3, other.uuid)], "the three records are in the log once"
    submitted = in_store(db, lambda store: {r.submission_uuid for _, r in store.page("submitted")})
    assert submitted == {other.uuid}
    assert receiver.stats() == {"records": 3, "batches": 2}


def test_nothing_is_sent_while_telemetry_is_off(db):
    collect(db, 3)
    stub = Stub()
    with serving(stub) as url:
        outcome = submit_pending(db, settings_for(url, send_telemetry=False))
    assert stub.requests == [], "the receiver must never be called"
    assert outcome == Outcome(sent=0, status=None, uuid=None, error="telemetry is off")
    assert outcome.message() == "Telemetry is off: nothing was sent."
    assert in_store(db, lambda store: store.last_submission()) is None
    assert counts(db)["pending"] == 3


def test_nothing_pending_makes_no_request(db):
    stub = Stub()
    with serving(stub) as url:
        outcome = submit_pending(db, settings_for(url))
    assert stub.requests == [] and outcome.ok and outcome.sent == 0
    assert outcome.message() == "Nothing to send: there are no pending records."
    assert in_store(db, lambda store: store.last_submission()) is None, "no run to log"


def test_a_run_with_nothing_to_send_after_a_failure_says_all_is_well_again(db, closed_port_url):
    collect(db, 2)
    assert not submit_pending(db, settings_for(closed_port_url)).ok
    in_store(db, lambda store: store.delete_all())
    empty = submit_pending(db, settings_for(closed_port_url))
    assert (empty.ok, empty.sent) == (True, 0)
    last, success = in_store(db, lambda store: (store.last_submission(), store.last_success_at))
    assert last.ok and success == last.at


def test_a_run_with_nothing_to_send_keeps_the_last_real_one(db, receiver):
    collect(db, 2)
    sent = submit_pending(db, settings_for(receiver.url))
    empty = submit_pending(db, settings_for(receiver.url))
    assert (sent.sent, empty.sent, empty.ok) == (2, 0, True)
    runs, last_success = in_store(db, lambda store: (store.submissions(), store.last_success_at))
    assert [run.uuid for run in runs] == [sent.uuid]
    assert last_success == runs[0].at


def test_the_submission_log_keeps_as_many_runs_as_configured(db):
    with serving(Stub()) as url:
        for n in range(3):
            in_store(db, lambda store, n=n: store.add_feature("system.users.count", n))
            assert submit_pending(db, settings_for(url, submission_log_size=2)).sent == 1
    runs = in_store(db, lambda store: store.submissions(limit=10))
    assert [run.sent for run in runs] == [1, 1]


class QuietFileHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # not the test's output
        pass


@contextmanager
def file_server(folder):
    """`python -m http.server` (the standard library's, not our code) serving `folder` on
    127.0.0.1: a POST gets its HTML 501 page; yields the URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietFileHandler, directory=folder))
    with served(server, "http") as url:
        yield url


@contextmanager
def served(server, scheme):
    """A standard library server, made on 127.0.0.1, served from a thread; yields its URL."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def nginx_bad_gateway(environ, start_response):
    """nginx's own page for a receiver that is down behind it."""
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("502 Bad Gateway", [("Content-Type", "text/html")])
    return [b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
            b"</body>\r\n</html>\r\n"]


def answering(status, body, content_type=None):
    """A web server's answer to anything, with this Content-Type (None: without one)."""

    def app(environ, start_response):
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response(status, [("Content-Type", content_type)] if content_type else [])
        return [body]

    return app


@pytest.mark.parametrize(
    ("server", "status", "page", "words"),
    [
        (file_server, 501, "an HTML page", "Unsupported method ('POST')"),
        (lambda _: serving(nginx_bad_gateway), 502, "an HTML page", "<center>nginx</center>"),
        (lambda _: serving(Stub("502 Bad Gateway", b"")), 502, "an empty answer", "]: "),
        (lambda _: serving(answering("404 Not Found", b"no such page", "text/plain")), 404,
         "an answer of type text/plain", "no such page"),
        (lambda _: serving(answering("404 Not Found", b"no such page")), 404,
         "an answer with no Content-Type", "no such page"),
        (lambda _: serving(answering("500 Internal Server Error", b"{oops", "application/json")),
         500, "an answer of type application/json that does not parse", "{oops"),
    ],
)
def test_an_answer_that_is_no_receivers_json_says_so(db, tmp_path, caplog, server, status, page,
                                                     words):
    # a TELEMETRY_URL that names a web server, or a proxy in front of a receiver that is down:
    # "the receiver answered HTTP 501" alone sent the operator to look at the receiver
    collect(db, 1)
    caplog.set_level(logging.INFO, logger="fftelemetry")
    with server(str(tmp_path)) as url:
        outcome = submit_pending(db, settings_for(url))
    assert outcome.error == (
        f"the receiver answered HTTP {status} with {page}, not a receiver's JSON: "
        f"is {url}/submit the receiver's address?"
    )
    assert outcome.status == status and counts(db)["pending"] == 1
    # the question ends the sentence: "…the receiver's address?. The records…" was shown
    assert outcome.message() == (
        f"Nothing was sent: {outcome.error} The records stay pending for the next try."
    )
    [answer] = [m for m in caplog.messages if m.startswith(f"Result of submission [{status}]: ")]
    assert words in answer and "\n" not in answer, "the answer itself is logged as it was"


def test_the_receivers_server_refusing_a_batch_too_large_says_so(db, tmp_path, caplog):
    # waitress's own plain-text 413, before the receiver reads the body: the line asked "is
    # …/submit the receiver's address?" of the right address
    app = receiver_main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs"})
    collect(db, 10)
    caplog.set_level(logging.INFO, logger="fftelemetry")
    try:
        with serving(app, max_request_body_size=1000) as url:
            outcome = submit_pending(db, settings_for(url))
            assert outcome.error == (
                "the receiver's server refused the batch as too large (HTTP 413 from waitress: "
                "exceeds max_body of 1000): lower fftelemetry.batch_size, now 1000"
            )
            assert outcome.status == 413 and counts(db)["pending"] == 10
            assert "(generated by waitress)" in caplog.text, "the answer itself is logged"
            assert submit_pending(db, settings_for(url, batch_size=2)).sent == 10  # as it says
    finally:
        close_databases(app.registry)


def test_the_receiver_refusing_a_batch_too_large_says_to_lower_the_batch_size(db, tmp_path):
    # the receiver's own JSON 413 (receiver.max_records), not its server's: the same advice
    app = receiver_main(
        {}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs", "receiver.max_records": "5"}
    )
    collect(db, 10)
    try:
        with serving(app) as url:
            outcome = submit_pending(db, settings_for(url))
            assert outcome.error == (
                "the receiver answered HTTP 413: at most 5 records per batch, got 10: lower "
                "fftelemetry.batch_size, now 1000"
            )
            assert outcome.status == 413 and counts(db)["pending"] == 10
            assert submit_pending(db, settings_for(url, batch_size=5)).sent == 10  # as it says
    finally:
        close_databases(app.registry)


def failing(environ, start_response):
    raise RuntimeError("a bug past the receiver's error views")


def nginx_too_large(environ, start_response):
    """nginx's own page for a body past its client_max_body_size, in front of a receiver."""
    start_response("413 Request Entity Too Large", [("Content-Type", "text/html")])
    return [b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
            b"<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx"
            b"</center>\r\n</body>\r\n</html>\r\n"]


@pytest.mark.parametrize(
    ("app", "status", "said"),
    [
        (failing, 500, "the receiver's server failed (HTTP 500 from waitress: The server "
                       "encountered an unexpected internal server error)"),
        (nginx_too_large, 413, "the receiver's server refused the batch as too large (HTTP 413 "
                               "with an HTML page): lower fftelemetry.batch_size, now 1000"),
    ],
)
def test_the_receivers_server_is_not_taken_for_another_address(db, app, status, said):
    collect(db, 1)
    with serving(app) as url:
        outcome = submit_pending(db, settings_for(url))
    assert (outcome.error, outcome.status) == (said, status)
    assert counts(db)["pending"] == 1

def test_json_of_a_long_media_type_is_json(db):
    # a vendor's +json type past the 40 characters a line quotes of it: judged by the type
    # whole, not by its cut, which ends in "…" and was called "not a receiver's JSON"
    media = "application/vnd.example.telemetry-receiver.error.v1+json"

    def refusing(environ, start_response):
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("400 Bad Request", [("Content-Type", media)])
        return [b'{"error": "record 1: no such key"}']

    collect(db, 1)
    with serving(refusing) as url:
        outcome = submit_pending(db, settings_for(url))
    assert outcome.error == "the receiver answered HTTP 400: record 1: no such key"

def test_a_long_answer_is_cut_in_the_log_line(db, caplog):
    collect(db, 1)
    caplog.set_level(logging.INFO, logger="fftelemetry")
    with serving(Stub(status="502 Bad Gateway", body=b"x" * 5000 + b"\nsecond line")) as url:
        submit_pending(db, settings_for(url))
    [line] = [m for m in caplog.messages if m.startswith("Result of submission [502]: ")]
    assert len(line) < 400 and "\n" not in line and "… (5,012 characters)" in line


def test_an_answer_that_is_not_utf8_is_logged_with_replacement_characters(db, caplog):
    # a proxy's page in Latin-1, say: its bytes are not UTF-8, and the run still fails in words
    collect(db, 1)
    caplog.set_level(logging.INFO, logger="fftelemetry")
    with serving(Stub(status="502 Bad Gateway", body=b"Passerelle d\xe9faillante")) as url:
        outcome = submit_pending(db, settings_for(url))
    assert "Result of submission [502]: Passerelle d\ufffdfaillante" in caplog.messages
    assert outcome.error.startswith("the receiver answered HTTP 502")
    assert counts(db)["pending"] == 1


def test_the_real_receivers_cut_reads_as_a_cut_in_the_log_line(db, receiver, caplog):
    # the receiver's 404 repeats the address it was asked, cut: its "…" was logged \\u2026
    collect(db, 1)
    caplog.set_level(logging.INFO, logger="fftelemetry")
    submit_pending(db, settings_for(receiver.url + "/" + "x" * 200))
    [line] = [m for m in caplog.messages if m.startswith("Result of submission [404]: ")]
    assert f"POST /{'x' * 99}… (208 characters); POST batches to /submit" in line, line


def refusing(reason):
    return Stub(status="400 Bad Request", body=json.dumps({"error": reason}).encode())


def test_what_a_terminal_would_act_on_in_an_answer_is_shown_escaped(db, caplog):
    # A receiver's answer reaches the operator's terminal (cron's log, `fftelemetry status`):
    # an escape sequence in it could clear the screen, retitle the window or rewrite the lines
    # above it; a right-to-left override would turn the text around.
    hostile = "\x1b[2J\x1b]0;owned\x07\x08\x9b1A\u202eok"
    collect(db, 1)
    caplog.set_level(logging.INFO, logger="fftelemetry")
    with serving(refusing(hostile)) as url:
        outcome = submit_pending(db, settings_for(url))
    assert outcome.error == (
        "the receiver answered HTTP 400: \\x1b[2J\\x1b]0;owned\\x07\\x08\\x9b1A\\u202eok"
    )
    logged = [m for m in caplog.messages if "owned" in m]
    assert len(logged) == 2  # the answer, and the failure
    assert all(ch.isprintable() for line in logged for ch in line), logged
    # escaped, a character is up to ten: still cut to the same length
    invisible = "\U000e0001" * 1000  # LANGUAGE TAG, written \U000e0001
    with serving(refusing(invisible)) as url:
        outcome = submit_pending(db, settings_for(url))
    assert outcome.error.endswith("\\U000e0001\\U000e0001… (1,000 characters)")
    assert len(outcome.error) < 400


def test_a_backslash_in_an_answer_is_escaped_so_no_escape_is_forged(db, caplog):
    # the two characters \n, with nothing else to escape, would read as an escaped line break
    collect(db, 1)
    caplog.set_level(logging.INFO, logger="fftelemetry")
    errors = []
    for reason in ("ok\\nFAKE", "ok\nFAKE"):
        with serving(refusing(reason)) as url:
            errors.append(submit_pending(db, settings_for(url)).error)
    assert errors == [
        "the receiver answered HTTP 400: ok\\\\nFAKE",
        "the receiver answered HTTP 400: ok\\nFAKE",
    ]
    # the answer as it came: the backslash of its JSON's own escapes is written \\ too
    answers = [m for m in caplog.messages if m.startswith("Result of submission")]
    assert answers == [
        'Result of submission [400]: {"error": "ok\\\\\\\\nFAKE"}',
        'Result of submission [400]: {"error": "ok\\\\nFAKE"}',
    ]


def test_an_answer_is_cut_between_two_escapes_not_inside_one(db):
    # "a" then ESC: 1 + 4 * 74 characters escaped, and a 75th \x1b would pass 300
    collect(db, 1)
    with serving(refusing("a" + "\x1b" * 400)) as url:
        outcome = submit_pending(db, settings_for(url))
    assert outcome.error == (
        "the receiver answered HTTP 400: a" + "\\x1b" * 74 + "… (401 characters)"
    )


def test_pending_bodies_walks_every_batch_and_changes_nothing(db):
    ids = collect(db, 5)
    bodies = list(pending_bodies(db, 2))
    assert [len(json.loads(b)) for b in bodies] == [2, 2, 1]
    assert [r["id"] for b in bodies for r in json.loads(b)] == ids
    assert counts(db)["pending"] == 5


def store_one_this_version_refuses(db):
    """Records as an older version may have stored them: between good ones, a command name the
    catalog no longer allows."""
    return in_store(db, lambda store: [
        store.add_feature("system.users.count", 1).id,
        store.add_feature("system.command.executed", "migrate").id,
        store.add_feature("system.users.count", 2).id,
        store.add_feature("system.users.count", 3).id,
    ])


def test_a_record_this_version_may_not_send_is_discarded_and_the_rest_sent(db, receiver, caplog):
    first, _refused, *rest = store_one_this_version_refuses(db)
    bodies = list(pending_bodies(db, batch_size=2))  # what --dry-run shows: never the refused
    assert [[r["id"] for r in json.loads(body)] for body in bodies] == [[first], rest]
    # a batch read past the refused one goes on after its own last record, not before it
    bodies = list(pending_bodies(db, batch_size=3))
    assert [[r["id"] for r in json.loads(body)] for body in bodies] == [[first, rest[0]], [rest[1]]]
    assert counts(db)["pending"] == 4, "looking changes nothing"

    outcome = submit_pending(db, settings_for(receiver.url, batch_size=2))

    assert (outcome.ok, outcome.sent) == (True, 3), outcome
    assert receiver.stats() == {"records": 3, "batches": 2}
    assert counts(db) == {"all": 3, "pending": 0, "submitted": 3}
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith("Discarded 1 record that this version may not send "
                              "(system.command.executed)")


def test_a_refused_record_that_cannot_be_discarded_is_not_said_discarded(db, fs_path, receiver,
                                                                        caplog):
    store_one_this_version_refuses(db)
    db.close()
    read_only = DB(FileStorage(fs_path, read_only=True))
    try:
        outcome = submit_pending(read_only, settings_for(receiver.url))
    finally:
        read_only.close()
    assert (outcome.ok, outcome.sent) == (False, 0)
    # the refused record stays pending, to be discarded by a run that can write
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "Telemetry submission failed: a batch was sent but could not be marked (the database is "
        "read-only); it will be re-sent.",
        "Telemetry submission log not updated: the database is read-only.",
    ]


def test_a_batch_of_nothing_but_refused_records_is_walked_past(db, receiver):
    """One record a batch: the refused one fills a batch alone; the run goes on past it."""
    first, _refused, *rest = store_one_this_version_refuses(db)
    bodies = list(pending_bodies(db, batch_size=1))
    assert [r["id"] for body in bodies for r in json.loads(body)] == [first, *rest]
    assert len(bodies) == 3
    outcome = submit_pending(db, settings_for(receiver.url, batch_size=1))
    assert (outcome.ok, outcome.sent) == (True, 3), outcome
    assert receiver.stats() == {"records": 3, "batches": 3}
    assert counts(db) == {"all": 3, "pending": 0, "submitted": 3}


def test_a_record_of_another_type_than_the_catalog_says_is_discarded_not_sent(db, receiver):
    # An older version stored this key as recurring: the receiver would refuse the whole batch
    # ("type"), every run, and nothing after it would ever be sent.
    _other_type, feature = in_store(db, lambda store: [
        store.add_recurring("system.users.count", 7, 7).id,
        store.add_feature("system.users.count", 8).id,
    ])
    outcome = submit_pending(db, settings_for(receiver.url))
    assert (outcome.ok, outcome.sent) == (True, 1), outcome
    assert receiver.read(lambda r: [rec.id for rec in r.records.values()]) == [feature]
    assert counts(db) == {"all": 1, "pending": 0, "submitted": 1}


def test_the_receivers_reason_for_a_refusal_is_kept(db, tmp_path):
    # A receiver of another version, whose catalog lacks a key ours has: its 400 names it.
    stub = Stub(status="400 Bad Request",
                body=b'{"error":"record 0, field \'key\': not a telemetry key","record":0}')
    collect(db, 1)
    with serving(stub) as url:
        outcome = submit_pending(db, settings_for(url))
    assert outcome.error == (
        "the receiver answered HTTP 400: record 0, field 'key': not a telemetry key"
    )
    assert counts(db)["pending"] == 1, "what this version may send stays pending"


def test_a_value_the_receiver_refuses_is_escaped_once_where_the_sender_shows_it(db, tmp_path,
                                                                                 caplog):
    # A receiver of another version refuses a value of ours: the real receiver's answer to such
    # a value, replayed. It repr()'d the value, and the sender escaped that again: C:\\dir came
    # out as C:\\\\dir in the log and on the status page.
    receiver = receiver_main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs"})
    try:
        batch = json.dumps([record(value=OUTSIDE)]).encode()
        answer = webtest.TestApp(receiver).post(
            "/submit", batch, content_type="application/json", status=400
        )
    finally:
        close_databases(receiver.registry)
    collect(db, 1)
    caplog.set_level(logging.INFO, logger="fftelemetry")
    with serving(Stub(status="400 Bad Request", body=answer.body)) as url:
        outcome = submit_pending(db, settings_for(url))
    reason = (
        f"record 0, field 'value': '{OUTSIDE_SHOWN}' is not a valid Python version"
    )
    assert outcome.error == f"the receiver answered HTTP 400: {reason}"
    assert f"Telemetry submission failed: {outcome.error}; the records stay pending." in (
        caplog.messages
    )


def test_a_mark_that_may_have_been_saved_is_not_said_as_nothing_marked():
    # its words as tests/e2e/test_postgresql_outage.py has the sender say them for a mark whose
    # COMMIT lost the server; "Submit now" shows message() on the records page
    error = (
        "a batch was sent, which may have been marked as sent or not (the ZEO server cannot be "
        "reached, as the mark was being saved); if not, it will be re-sent"
    )
    first = Outcome(sent=0, status=200, uuid="u", error=error, marked_or_not=True)
    assert first.message() == f"A{error[1:]}."
    later = replace(first, sent=100)
    assert later.message() == (
        f"Sent 100 records, then the submission failed: {error}. The records not marked stay "
        "pending for the next try."
    )


def test_a_full_disk_while_marking_keeps_the_batch_pending_and_says_so(db, fs_path, caplog):
    collect(db, 300)
    stub = Stub()
    with serving(stub) as url, file_size_limit(Path(fs_path).stat().st_size):
        outcome = submit_pending(db, settings_for(url, batch_size=100))
    assert (outcome.ok, outcome.sent, outcome.server_lost) == (False, 0, None)
    error = (
        "a batch was sent but could not be marked (File too large); it will be re-sent, as "
        "will the batch sent after it"
    )
    assert outcome.error == error
    # no room for the run in the submission log either: the console says so
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"Telemetry submission failed: {error}.",
        "Telemetry submission log not updated: File too large.",
    ]
    assert outcome.message().startswith("Nothing was marked as sent: a batch was sent but")
    assert counts(db) == {"all": 300, "pending": 300, "submitted": 0}

    with serving(stub) as url:  # room again: the next run sends it all, the first batch again
        assert submit_pending(db, settings_for(url, batch_size=100)).sent == 300
    assert counts(db)["submitted"] == 300


def test_a_mark_that_fails_on_a_full_disk_is_a_failed_run_not_a_lost_server(db, fs_path, caplog):
    # Room for the run's small entry in the submission log (~450 bytes here), not for the mark
    # of 100 records (~12 kB): the failure is what the log keeps and the status page shows.
    # A run that took it for a lost server would log nothing, and "Submit now" would show the
    # database-unavailable page.
    collect(db, 300)
    with serving(Stub()) as url, file_size_limit(Path(fs_path).stat().st_size + 4096):
        outcome = submit_pending(db, settings_for(url, batch_size=100))
    error = (
        "a batch was sent but could not be marked (File too large); it will be re-sent, as will "
        "the batch sent after it"
    )
    assert (outcome.ok, outcome.sent, outcome.error, outcome.server_lost) == (
        False, 0, error, None
    )
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"Telemetry submission failed: {error}."]
    last = in_store(db, lambda store: store.last_submission())
    assert (last.sent, last.status, last.uuid, last.error) == (0, 200, STUB_UUID, error)
    assert counts(db) == {"all": 300, "pending": 300, "submitted": 0}


def test_a_write_that_conflicts_is_tried_again(db):
    """The sender's writes (marking a batch, logging the run) are rerun on a conflict: another
    process committed the same object between the transaction's read and its commit."""
    theirs, ours = utcnow(), utcnow()
    seen = []

    def change(store):
        seen.append(store.last_success_at)
        if len(seen) == 1:  # another writer commits the same object meanwhile
            in_store(db, lambda other: setattr(other, "last_success_at", theirs))
        store.last_success_at = ours
        return len(seen)

    with own_connection(db) as (tm, conn):
        assert _write(tm, conn, change) == 2
    assert seen == [None, theirs], "the rerun read the other's commit"
    assert in_store(db, lambda store: store.last_success_at) == ours


def test_a_write_that_conflicts_every_time_is_tried_three_times_then_fails(db):
    """As docs/telemetry.md says: three tries, then the conflict is the run's error."""
    tries = []

    def change(store):
        tries.append(store.last_success_at)
        in_store(db, lambda other: setattr(other, "last_success_at", utcnow()))
        store.last_success_at = utcnow()

    with own_connection(db) as (tm, conn), pytest.raises(ConflictError):
        _write(tm, conn, change)
    assert len(tries) == 3


class RefusesToAbort:
    """A resource in the transaction whose abort fails, as RelStorage's does when it asks its
    lost PostgreSQL server."""

    def abort(self, txn):
        raise OSError("the server went away")

    def sortKey(self):
        return "refuses-to-abort"


def test_an_own_connection_goes_back_to_the_pool_when_its_abort_fails(db):
    with pytest.raises(OSError, match="the server went away"), own_connection(db) as (tm, conn):
        tm.get().join(RefusesToAbort())
    assert conn.opened is None, "the connection was not closed"
    assert conn in [available for _, available in db.pool.available]


# -- receivers that break HTTP itself: raw sockets, since a WSGI server would not misbehave so ----


@contextmanager
def raw_receiver(answer):
    """A TCP server on 127.0.0.1 that reads each request, then calls answer(sock) (which may
    trickle, flood or hang up); yields (url, what) where what counts requests and bytes sent."""
    server = socket.create_server(("127.0.0.1", 0))
    what = {"requests": 0, "sent": 0}
    stop = threading.Event()

    def read_request(conn):
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536) or b"\r\n\r\n"
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")), 0,
        )
        while len(body) < length:
            body += conn.recv(65536) or b"x" * length
        what["requests"] += 1

    def send(conn, data):
        conn.sendall(data)
        what["sent"] += len(data)

    def handle(conn):
        with conn:
            try:
                read_request(conn)
                answer(conn, send, stop)
            except OSError:
                pass  # the sender hung up: what it should do with such a receiver

    def serve():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", what
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def trickled_body(conn, send, stop):
    send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               b"Content-Length: 100000\r\n\r\n")
    while not stop.wait(0.1):  # a byte every 0.1s: never a read timeout, never an end
        send(conn, b" ")


def trickled_headers(conn, send, stop):
    send(conn, b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not stop.wait(0.1):
        send(conn, b"a")


def submit_in_thread(db, settings, wait=30):
    """submit_pending in a thread: its outcome, or None if still running after `wait` seconds (a
    guard against a hang, far past the deadlines the tests set: a slow machine is no failure)."""
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(outcome=submit_pending(db, settings)), daemon=True
    )
    thread.start()
    thread.join(timeout=wait)
    return result.get("outcome")


@pytest.mark.parametrize("answer", [trickled_body, trickled_headers])
def test_an_answer_that_never_ends_is_cut_at_the_deadline(db, answer):
    collect(db, 2)
    settings = settings_for("", connect_timeout=0.1, read_timeout=0.5)  # deadline 0.3+0.5+1
    with raw_receiver(answer) as (url, _):
        outcome = submit_in_thread(db, replace(settings, telemetry_url=url))
    assert outcome is not None, "the run must not last as long as the receiver trickles"
    assert outcome.error == f"no complete answer from {url}/submit within 1.8s"
    assert counts(db)["pending"] == 2


def stalled_body(conn, send, stop):
    send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               b"Content-Length: 100\r\n\r\n{")
    stop.wait()


def test_an_answer_that_stops_half_way_says_which_timeout_ran_out(db):
    # the read timeout runs out in the body, where requests raises a ConnectionError (around
    # urllib3's ReadTimeoutError): not "cannot connect to" a receiver that answered
    collect(db, 1)
    with raw_receiver(stalled_body) as (url, _):
        outcome = submit_pending(db, settings_for(url, connect_timeout=0.1, read_timeout=0.3))
    assert outcome.error == f"no answer from {url}/submit within 0.3s"
    assert counts(db)["pending"] == 1


def flood(conn, send, stop):
    size = 100 * 1024 * 1024
    send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % size)
    block = b" " * 65536
    for _ in range(size // len(block)):
        send(conn, block)


def test_a_huge_answer_is_not_read_whole(db):
    collect(db, 2)
    with raw_receiver(flood) as (url, what):
        outcome = submit_pending(db, settings_for(url))
    assert outcome.error == "the receiver's answer (HTTP 200) is larger than 1048576 bytes"
    assert what["sent"] < 20 * 1024 * 1024, "stops reading soon after the limit"
    assert counts(db)["pending"] == 2


def hang_up(conn, send, stop):
    conn.shutdown(socket.SHUT_RDWR)


def test_a_receiver_that_hangs_up_after_the_request_is_not_called_unreachable(db):
    collect(db, 1)
    with raw_receiver(hang_up) as (url, what):
        outcome = submit_pending(db, settings_for(url))
    assert outcome.error == f"{url}/submit closed the connection without a complete answer"
    assert what["requests"] == 1, "a POST that reached the receiver is not retried"
    assert counts(db)["pending"] == 1


def test_a_password_in_the_url_is_sent_but_never_shown(db, closed_port_url, caplog):
    collect(db, 1)
    stub = Stub(status="500 Internal Server Error", body=b"")
    with serving(stub) as url:
        submit_pending(db, settings_for(url.replace("://", "://alice:s3cret@")))
    [(headers, _)] = stub.requests
    assert headers["AUTHORIZATION"].startswith("Basic ")
    settings = settings_for(closed_port_url.replace("://", "://alice:s3cret@"))
    outcome = submit_pending(db, settings)
    assert "alice:***@127.0.0.1" in outcome.error
    last = in_store(db, lambda store: store.last_submission())
    endpoint = in_store(db, lambda store: status_facts(store, settings).endpoint)
    shown = [outcome.error, last.error, endpoint, *caplog.messages]
    assert not [text for text in shown if "s3cret" in text]


def test_a_login_in_netrc_is_never_sent_to_the_receiver(db, tmp_path, monkeypatch):
    # requests adds ~/.netrc's login for a URL without one (its `default` line: for any host),
    # so a login kept there for other tools went to the receiver, over plain HTTP too
    netrc = tmp_path / "netrc"
    netrc.write_text("default login bob password netrc-s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))  # requests reads it in place of ~/.netrc
    collect(db, 1)
    stub = Stub()
    with serving(stub) as url:
        assert submit_pending(db, settings_for(url)).error is None
        in_store(db, lambda store: store.add_feature("system.users.count", 2))
        assert submit_pending(db, settings_for(url.replace("://", "://alice:s3cret@"))).sent
    [(plain, _), (with_password, _)] = stub.requests
    assert sorted(plain) == [  # everything in the POST's headers (docs/telemetry.md)
        "ACCEPT", "ACCEPT_ENCODING", "CONNECTION", "CONTENT_TYPE", "HOST", "USER_AGENT"
    ]
    assert with_password["AUTHORIZATION"] == "Basic YWxpY2U6czNjcmV0"  # the URL's: alice:s3cret


def setting_a_cookie(app):
    """`app` with a cookie set in each answer, as a load balancer's sticky one is."""
    def wrapped(environ, start_response):
        def with_cookie(status, headers, *exc_info):
            return start_response(status, [*headers, ("Set-Cookie", "lb=node-2; Path=/")],
                                  *exc_info)

        return app(environ, with_cookie)

    return wrapped


def test_a_cookie_the_receiver_sets_is_not_sent_back(db):
    # the session kept it for the run's next batches: a receiver, or a balancer in front of it,
    # could tell one run's batches apart from another's, and docs/telemetry.md says no cookie
    collect(db, 2)
    stub = Stub()
    with serving(setting_a_cookie(stub)) as url:
        assert submit_pending(db, settings_for(url, batch_size=1)).sent == 2
    assert [sorted(headers) for headers, _ in stub.requests] == [[
        "ACCEPT", "ACCEPT_ENCODING", "CONNECTION", "CONTENT_TYPE", "HOST", "USER_AGENT"
    ]] * 2


def test_a_user_name_alone_in_the_url_is_sent_as_a_token(db):
    # README: a user name alone (a token) is sent; requests' get_auth_from_url finds no login
    # in an address without a password, so none was
    collect(db, 1)
    stub = Stub()
    with serving(stub) as url:
        assert submit_pending(db, settings_for(url.replace("://", "://t%40ken@"))).sent == 1
    [(headers, _)] = stub.requests
    assert headers["AUTHORIZATION"] == "Basic dEBrZW46"  # t@ken: with no password


@pytest.mark.parametrize(
    "url", ["http://telemetry.example..org", "http://alice:pw%E2%82%AC@127.0.0.1:1"]
)
def test_a_url_the_sender_cannot_use_fails_the_run_not_the_process(db, url):
    # An ini from before the start-up check, say: the run fails as any other, and says why.
    collect(db, 1)
    settings = settings_for("http://127.0.0.1:1", telemetry_url=url)
    outcome = submit_pending(db, settings)
    assert not outcome.ok and "is not a URL the sender can use" in outcome.error
    assert in_store(db, lambda store: store.last_submission()).error == outcome.error
    assert counts(db)["pending"] == 1


def test_an_answer_that_does_not_decode_is_not_said_to_be_a_bad_url(db):
    # the body is not the gzip its Content-Encoding names: requests' ContentDecodingError, also
    # urllib3's HTTPError, read as "… is not a URL the sender can use (ContentDecodingError)"
    def gzip_that_is_not(environ, start_response):
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
        start_response("200 OK", headers)
        return [STUB_ANSWER]

    collect(db, 1)
    with serving(gzip_that_is_not) as url:
        outcome = submit_pending(db, settings_for(url))
    expected = f"the answer from {url}/submit does not decode as its Content-Encoding says"
    assert outcome.error == expected
    assert in_store(db, lambda store: store.last_submission()).error == expected
    assert counts(db)["pending"] == 1


def test_a_timer_late_past_its_exchange_cuts_nothing(db, monkeypatch):
    """The timer's thread saw the deadline pass, then ran only once the exchange had ended and
    the next batch was on the same pooled connection: that one must not be cut."""
    stub = Stub(delay=0.5)
    late = []

    class LateTimer(threading.Timer):
        def run(self):
            if late:  # the first timer only; the others as usual
                return super().run()
            late.append(self)
            give_up = time.monotonic() + 10
            while len(stub.requests) < 2 and time.monotonic() < give_up:
                time.sleep(0.001)  # until the next batch has reached the receiver
            self.function()  # too late to be cancelled

    monkeypatch.setattr(threading, "Timer", LateTimer)
    collect(db, 2)
    with serving(stub) as url:
        outcome = submit_pending(db, settings_for(url, batch_size=1))
    assert (outcome.ok, outcome.sent) == (True, 2), outcome.error
    assert counts(db)["pending"] == 0


def use_proxy(monkeypatch, url, variable="HTTP_PROXY"):
    """HTTP_PROXY=url, as a machine-wide proxy setting: requests reads it for every request."""
    for name in ("NO_PROXY", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv(variable, url)


def test_a_proxy_that_never_ends_its_answer_is_cut_at_the_deadline(db, monkeypatch):
    collect(db, 1)
    settings = settings_for("http://192.0.2.1:6544", connect_timeout=0.1, read_timeout=0.5)
    with raw_receiver(trickled_body) as (url, what):
        use_proxy(monkeypatch, url)
        outcome = submit_in_thread(db, settings)
    assert what["requests"] == 1, "the proxy carried the POST"
    assert outcome is not None, "the proxy's connection is cut too"
    assert outcome.error == "no complete answer from http://192.0.2.1:6544/submit within 1.8s"
    assert counts(db)["pending"] == 1


def test_an_https_exchange_that_never_ends_is_cut_at_the_deadline_too(db, monkeypatch):
    # https goes through the same cuttable adapter as http: here its proxy's answer to CONNECT
    # never ends, and the run still fails in one line (with requests' own adapter, it crashed)
    collect(db, 1)
    settings = settings_for("https://192.0.2.1:6544", connect_timeout=0.5, read_timeout=0.5)
    with raw_receiver(trickled_headers) as (url, what):
        use_proxy(monkeypatch, url, "HTTPS_PROXY")
        outcome = submit_in_thread(db, settings)
    assert what["requests"] == 1, "the proxy was asked for the tunnel"
    assert outcome is not None, "the run must not last as long as the proxy trickles"
    assert outcome.error == "no complete answer from https://192.0.2.1:6544/submit within 3s"
    assert counts(db)["pending"] == 1


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "ALL_PROXY", "all_proxy"])
def test_a_proxy_that_is_down_is_named_with_the_systems_reason(db, monkeypatch, closed_port_url,
                                                               variable):
    # every proxy variable requests reads, as docs/telemetry.md lists them
    collect(db, 1)
    use_proxy(monkeypatch, closed_port_url, variable)
    outcome = submit_pending(db, settings_for("http://192.0.2.1:6544"))
    assert outcome.error == (
        f"cannot connect to the proxy {closed_port_url} ({variable}) for "
        "http://192.0.2.1:6544/submit (connection refused; tried 3 times)"
    )


def test_a_proxy_whose_name_does_not_resolve_is_named_without_its_password(db, monkeypatch,
                                                                          caplog):
    # a typo in a crontab's https_proxy line: the receiver is not at fault, and offline the
    # resolver fails at once too ("temporary failure in name resolution")
    collect(db, 1)
    use_proxy(monkeypatch, "http://alice:s3cret@proxy.invalid:3128", variable="https_proxy")
    outcome = submit_pending(db, settings_for("https://192.0.2.1:6544"))
    said = re.fullmatch(
        r"cannot connect to the proxy http://alice:\*\*\*@proxy.invalid:3128 \(https_proxy\) "
        r"for https://192.0.2.1:6544/submit \(([^;]+); tried 3 times\)",
        outcome.error,
    )
    assert said, outcome.error
    assert said[1] != "connection refused"  # the resolver's words: "name or service not known"
    last = in_store(db, lambda store: store.last_submission())
    assert not [text for text in (last.error, *caplog.messages) if "s3cret" in text]
    assert counts(db)["pending"] == 1


@pytest.mark.parametrize(
    ("proxy", "shown_as"),
    [
        ("localhost:3128", "localhost:3128"),
        ("alice:s3cret@localhost:3128", "alice:***@localhost:3128"),
    ],
)
def test_a_proxy_written_without_its_scheme_is_named_not_the_receivers_url(
    db, monkeypatch, caplog, proxy, shown_as
):
    # requests reads "localhost" as the scheme and finds no host: the line said the receiver's
    # URL was "not a URL the sender can use (InvalidProxyURL)", which sent the operator to
    # TELEMETRY_URL
    collect(db, 1)
    use_proxy(monkeypatch, proxy, variable="HTTPS_PROXY")
    outcome = submit_pending(db, settings_for("https://192.0.2.1:6544"))
    assert outcome.error == (
        "the proxy for https://192.0.2.1:6544/submit cannot be used: "
        f"HTTPS_PROXY='{shown_as}' names no host (write http://host:port)"
    )
    assert not [text for text in caplog.messages if "s3cret" in text]
    assert counts(db)["pending"] == 1


WITHOUT_PYSOCKS = """
import sys
sys.modules["socks"] = None  # `import socks` fails, as where PySocks is not installed
from ZODB import DB
from fftelemetry.telemetry.sender import submit_pending
from tests.functional.test_sender import collect, counts, settings_for
db = DB(sys.argv[1])
collect(db, 1)
print(submit_pending(db, settings_for("http://192.0.2.1:6544")).error)
print(counts(db)["pending"])
"""


@pytest.mark.parametrize("proxy", ["socks5h://127.0.0.1:1080", "SOCKS5://bob:s3cret@proxy:1080"])
def test_a_socks_proxy_without_pysocks_says_what_to_install(tmp_path, monkeypatch, proxy):
    # requests' stand-in for the missing PySocks raises InvalidSchema: the line read "the request
    # to http://…/submit failed (InvalidSchema)", as if the receiver's URL were at fault
    use_proxy(monkeypatch, proxy)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYSOCKS, str(tmp_path / "app.fs")],
        cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=60, check=True,
    )
    shown = proxy.replace("s3cret", "***")
    assert result.stdout.splitlines() == [
        "the proxy for http://192.0.2.1:6544/submit cannot be used: "
        f"HTTP_PROXY='{shown}' is a SOCKS proxy, which needs PySocks "
        "(pip install 'requests[socks]')",
        "1",
    ]


def test_a_socks_proxy_that_is_down_is_named_with_the_systems_reason(db, monkeypatch,
                                                                      closed_port_url):
    # PySocks' failure comes wrapped as the receiver's connection's: "cannot connect to
    # http://…/submit (tried 3 times)" named neither the proxy nor the reason
    pytest.importorskip("socks")  # PySocks: selenium's urllib3[socks] brings it to the tests
    proxy = closed_port_url.replace("http://", "socks5://")
    collect(db, 1)
    use_proxy(monkeypatch, proxy)
    outcome = submit_pending(db, settings_for("http://192.0.2.1:6544"))
    assert outcome.error == (
        "cannot connect to http://192.0.2.1:6544/submit through the SOCKS proxy "
        f"HTTP_PROXY='{proxy}' (connection refused; tried 3 times)"
    )
    assert counts(db)["pending"] == 1


@pytest.mark.parametrize(
    ("scheme", "variable", "proxy", "why"),
    [
        ("https", "HTTPS_PROXY", "ftp://host:21", "is not an http(s):// or socks proxy URL"),
        ("http", "HTTP_PROXY", "ftp://host:21", "is not an http(s):// or socks proxy URL"),
        ("https", "https_proxy", "http://127.0.0.1:99999", "has no valid port"),
        ("http", "ALL_PROXY", "http://alice:s3cret@127.0.0.1:abc", "has no valid port"),
        ("https", "HTTPS_PROXY", "http://[::1", "has no valid host"),
    ],
)
def test_a_proxy_urllib3_cannot_use_is_named_not_the_receivers_url(db, monkeypatch, caplog, scheme,
                                                                    variable, proxy, why):
    # urllib3 refuses it (ProxySchemeUnknown, LocationParseError), which requests raises as
    # InvalidURL: the line said "https://…/submit is not a URL the sender can use (InvalidURL)"
    collect(db, 1)
    use_proxy(monkeypatch, proxy, variable)
    url = f"{scheme}://192.0.2.1:6544"
    outcome = submit_pending(db, settings_for(url))
    shown = proxy.replace("s3cret", "***")
    assert outcome.error == f"the proxy for {url}/submit cannot be used: {variable}='{shown}' {why}"
    assert not [text for text in caplog.messages if "s3cret" in text]
    assert counts(db)["pending"] == 1


def test_an_unusable_proxy_is_named_by_the_variable_requests_took(db, monkeypatch):
    # both cases set: urllib (so requests) takes the lower-case one; a NO_PROXY naming other
    # hosts leaves the proxy in use
    collect(db, 1)
    use_proxy(monkeypatch, "http://127.0.0.1:3128", "HTTPS_PROXY")
    monkeypatch.setenv("https_proxy", "ftp://host:21")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    outcome = submit_pending(db, settings_for("https://192.0.2.1:6544"))
    assert outcome.error == (
        "the proxy for https://192.0.2.1:6544/submit cannot be used: https_proxy='ftp://host:21' "
        "is not an http(s):// or socks proxy URL"
    )
    assert counts(db)["pending"] == 1

# -- a resolver that is slow to answer, or never does: its own network and resolv.conf, in a
# namespace of a process of its own (unshare), so nothing but that process sees them ------------

RESOLVER_IN_A_NAMESPACE = """
import socket, struct, sys, threading, time
from ZODB import DB
from fftelemetry.telemetry.sender import submit_pending
from tests.conftest import Stub, serving
from tests.functional.test_sender import collect, counts, settings_for

delay = float(sys.argv[2])  # before each answer (127.0.0.1 for receiver.test); < 0: never
resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
resolver.bind(("127.0.0.1", 53))


def answer(query, client):
    time.sleep(delay)
    question = query[12:]
    a = question.endswith(b"\\x00\\x01\\x00\\x01")  # type A, class IN; else AAAA: no address
    header = query[:2] + b"\\x81\\x80" + struct.pack(">HHHH", 1, int(a), 0, 0)
    address = b"\\xc0\\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
    resolver.sendto(header + question + (address if a else b""), client)


def serve():
    while True:
        query, client = resolver.recvfrom(512)
        if delay >= 0:
            threading.Thread(target=answer, args=(query, client), daemon=True).start()


threading.Thread(target=serve, daemon=True).start()
db = DB(sys.argv[1])
collect(db, 1)
stub = Stub()
with serving(stub) as url:
    port = url.rpartition(":")[2]
    settings = settings_for(f"http://receiver.test:{port}", connect_timeout=0.1, read_timeout=0.5)
    print(submit_pending(db, settings).error)
    for thread in threading.enumerate() if delay >= 0 else ():
        if thread.name == "telemetry-exchange":  # left behind: on once its look-up is answered
            thread.join(60)
print(counts(db)["pending"], len(stub.requests))
"""


def in_a_namespace_of_its_own(tmp_path, resolver_delay):
    """The run of RESOLVER_IN_A_NAMESPACE (its lines), in a network of its own whose resolver,
    on 127.0.0.1, answers after `resolver_delay` seconds, or never."""
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text("nameserver 127.0.0.1\noptions timeout:30 attempts:1\n")
    setup = 'ip link set lo up && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
    command = ["unshare", "-rmn", "sh", "-c", setup, "sh", str(resolv_conf), sys.executable,
               "-c", RESOLVER_IN_A_NAMESPACE, str(tmp_path / "app.fs"), str(resolver_delay)]
    probe = ["unshare", "-rmn", "true"]
    if not shutil.which("unshare") or subprocess.run(probe, capture_output=True).returncode:
        pytest.skip("unshare -rmn is not allowed here")
    if not shutil.which("ip"):  # Debian's iproute2, which a container's image may leave out
        pytest.skip("no ip command here (iproute2, which .ci/run installs) to bring lo up with")
    result = subprocess.run(command, cwd=Path(__file__).parents[2], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


CUT_AT_THE_DEADLINE = r"no complete answer from http://receiver\.test:\d+/submit within 1\.8s"


@pytest.mark.slow
def test_a_resolver_that_never_answers_is_bounded_by_the_deadline(tmp_path):
    # the look-up (30s, at each of the 3 tries) held the run past its 1.8s deadline: 90s
    error, left = in_a_namespace_of_its_own(tmp_path, resolver_delay=-1)
    assert re.fullmatch(CUT_AT_THE_DEADLINE, error), error
    assert left == "1 0"  # pending, and nothing reached the receiver


@pytest.mark.slow
def test_a_look_up_answered_past_the_deadline_sends_nothing(tmp_path):
    # the exchange left behind connects once its look-up is answered: cut as it is made, where
    # the batch went to the receiver after the run had said it failed
    error, left = in_a_namespace_of_its_own(tmp_path, resolver_delay=5)
    assert re.fullmatch(CUT_AT_THE_DEADLINE, error), error
    assert left == "1 0"


def test_an_interrupted_run_leaves_no_exchange_going_on_behind_it(db):
    # Ctrl-C while a POST was in flight: the exchange went on in the background until its
    # deadline (here 10 minutes), and `fftelemetry cron` waited for it before it said it stopped
    hung_up = threading.Event()

    def held(conn, send, stop):
        if conn.recv(1) == b"":  # the sender shut its connection down
            hung_up.set()

    def ctrl_c_once_sent(what):
        # never once the run is over: a SIGINT then stopped whichever test ran, and the session
        if wait_until_true(lambda: what["requests"] == 1):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    collect(db, 1)
    with raw_receiver(held) as (url, what):
        threading.Thread(target=ctrl_c_once_sent, args=(what,), daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            submit_pending(db, settings_for(url, read_timeout=600))
        assert hung_up.wait(30), "the POST in flight was not cut"
    assert counts(db)["pending"] == 1


def wait_until_true(condition, timeout=60):
    """Whether `condition` came true within `timeout` seconds."""
    give_up = time.monotonic() + timeout
    while not condition() and time.monotonic() < give_up:
        time.sleep(0.01)
    return condition()


# -- a receiver behind https: its certificate is checked; a CA of one's own is given the way
# requests takes it (REQUESTS_CA_BUNDLE); a refusal says why --------------------------------------


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # not the test's output
        pass


@contextmanager
def tls_serving(app, cert):
    """`app` served over https on 127.0.0.1 with `cert` (a trustme certificate); yields the URL."""
    server = make_server("127.0.0.1", 0, app, handler_class=QuietHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with served(server, "https") as url:
        yield url


@pytest.fixture
def ca():
    return trustme.CA()


def trust(ca, folder, monkeypatch):
    """Make requests trust `ca`, as an operator with a private CA would."""
    bundle = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    return ca


@pytest.fixture
def trusted(ca, tmp_path, monkeypatch):
    return trust(ca, tmp_path, monkeypatch)


def test_a_receiver_whose_ca_is_trusted_is_sent_to(db, trusted):
    collect(db, 2)
    stub = Stub()
    with tls_serving(stub, trusted.issue_cert("127.0.0.1")) as url:
        outcome = submit_pending(db, settings_for(url))
    assert (outcome.ok, outcome.sent, outcome.uuid) == (True, 2, STUB_UUID), outcome.error
    assert counts(db)["submitted"] == 2

def test_curls_ca_bundle_variable_is_read_too(db, ca, tmp_path, monkeypatch):
    # requests reads CURL_CA_BUNDLE when REQUESTS_CA_BUNDLE is not set (docs/telemetry.md)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
    collect(db, 1)
    with tls_serving(Stub(), ca.issue_cert("127.0.0.1")) as url:
        outcome = submit_pending(db, settings_for(url))
    assert (outcome.ok, outcome.sent) == (True, 1), outcome.error



@pytest.mark.parametrize(
    ("issued_for", "why"),
    [
        ("127.0.0.1", "unable to get local issuer certificate"),  # a CA nobody told us of
        ("receiver.example.org", "IP address mismatch"),  # trusted, but another name's
    ],
)
def test_a_certificate_refused_says_why_and_keeps_the_records(db, ca, tmp_path, monkeypatch,
                                                               issued_for, why):
    if issued_for != "127.0.0.1":
        trust(ca, tmp_path, monkeypatch)
    collect(db, 1)
    stub = Stub()
    with tls_serving(stub, ca.issue_cert(issued_for)) as url:
        outcome = submit_pending(db, settings_for(url))
    assert outcome.error.startswith(f"the certificate of {url}/submit was not accepted: ")
    assert why in outcome.error
    assert stub.requests == [] and counts(db)["pending"] == 1


def test_a_ca_bundle_that_is_not_there_fails_the_run_not_the_database(db, ca, tmp_path,
                                                                      monkeypatch, caplog):
    # requests raises a bare OSError for it, which "submit now" took for the database's (a 503
    # "could not store this") and cron for a write rolled back, with no run in the log
    missing = tmp_path / "no-such-ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(missing))
    collect(db, 1)
    stub = Stub()
    with tls_serving(stub, ca.issue_cert("127.0.0.1")) as url:
        outcome = submit_pending(db, settings_for(url))
    assert outcome.error == (
        f"the certificate of {url}/submit cannot be checked: "
        f"REQUESTS_CA_BUNDLE={missing} does not exist"
    )
    assert in_store(db, lambda store: store.last_submission()).error == outcome.error
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert stub.requests == [] and counts(db)["pending"] == 1


@pytest.mark.parametrize(
    "bundle",
    [None, "another CA's", "another CA's, in CURL_CA_BUNDLE", "ours, for another name",
     "ours, for another host name"],
)
def test_a_refused_certificate_says_which_cas_it_was_checked_against(db, ca, tmp_path,
                                                                     monkeypatch, bundle):
    # cron's environment holds none of a login shell's variables, nor does .env set them: the
    # operator reading cron.log learns whether REQUESTS_CA_BUNDLE was seen at all
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    if bundle == "another CA's":
        trust(trustme.CA(), tmp_path, monkeypatch)
    elif bundle == "another CA's, in CURL_CA_BUNDLE":  # requests' own fallback
        trustme.CA().cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "ca.pem"))
    elif bundle is not None:
        trust(ca, tmp_path, monkeypatch)
    collect(db, 1)
    issued_for = "receiver.example.org" if bundle and bundle.startswith("ours") else "127.0.0.1"
    with tls_serving(Stub(), ca.issue_cert(issued_for)) as url:
        if bundle == "ours, for another host name":  # a receiver named, not addressed
            url = url.replace("127.0.0.1", "localhost")
        outcome = submit_pending(db, settings_for(url))
    refused = f"the certificate of {url}/submit was not accepted: "
    expected = {
        None: f"{refused}unable to get local issuer certificate (checked against certifi's "
        "CAs: name a CA of your own in TELEMETRY_CA_BUNDLE)",
        "another CA's": f"{refused}unable to get local issuer certificate (checked against "
        f"REQUESTS_CA_BUNDLE={tmp_path / 'ca.pem'})",
        "another CA's, in CURL_CA_BUNDLE": f"{refused}unable to get local issuer certificate "
        f"(checked against CURL_CA_BUNDLE={tmp_path / 'ca.pem'})",
        # its CA trusted: nothing about CAs, and one full stop, the sentence's, not two
        "ours, for another name": f"{refused}IP address mismatch, certificate is not valid "
        "for '127.0.0.1'",
        "ours, for another host name": f"{refused}Hostname mismatch, certificate is not valid "
        "for 'localhost'",
    }[bundle]
    assert outcome.error == expected
    assert counts(db)["pending"] == 1


# -- the CAs named by fftelemetry.telemetry_ca_bundle (TELEMETRY_CA_BUNDLE), read like every other
# setting: they, not requests' own, check the receiver's certificate ------------------------------


def with_ca_bundle(url, bundle):
    return settings_for(url, ini={"fftelemetry.telemetry_ca_bundle": str(bundle)})


@pytest.mark.parametrize("setting_names", ["ours", "another CA"])
def test_the_setting_names_the_cas_whatever_requests_variable_says(db, ca, tmp_path, monkeypatch,
                                                                   setting_names):
    # REQUESTS_CA_BUNDLE may name the machine's bundle (a login shell's, a container's): the
    # setting is what the operator gave this application
    ours, another = tmp_path / "ours.pem", tmp_path / "another.pem"
    ca.cert_pem.write_to_path(str(ours))
    trustme.CA().cert_pem.write_to_path(str(another))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(another if setting_names == "ours" else ours))
    bundle = ours if setting_names == "ours" else another
    collect(db, 2)
    stub = Stub()
    with tls_serving(stub, ca.issue_cert("127.0.0.1")) as url:
        outcome = submit_pending(db, with_ca_bundle(url, bundle))
    if setting_names == "ours":
        assert (outcome.ok, outcome.sent, outcome.uuid) == (True, 2, STUB_UUID), outcome.error
        assert counts(db)["submitted"] == 2
    else:
        assert outcome.error == (
            f"the certificate of {url}/submit was not accepted: unable to get local issuer "
            f"certificate (checked against fftelemetry.telemetry_ca_bundle={another})"
        )
        assert stub.requests == [] and counts(db)["pending"] == 2


def test_a_folder_of_hashed_cas_checks_the_receivers_certificate(db, ca, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl makes the hashed names of a CA folder")
    folder = tmp_path / "cas"
    folder.mkdir()
    ca.cert_pem.write_to_path(str(folder / "ours.pem"))
    subprocess.run(["openssl", "rehash", str(folder)], check=True, capture_output=True)
    collect(db, 1)
    with tls_serving(Stub(), ca.issue_cert("127.0.0.1")) as url:
        outcome = submit_pending(db, with_ca_bundle(url, folder))
    assert (outcome.ok, outcome.sent) == (True, 1), outcome.error


def test_a_ca_bundle_deleted_after_start_up_fails_the_run_in_one_line(db, ca, tmp_path,
                                                                      monkeypatch, caplog):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    bundle = tmp_path / "ours.pem"
    ca.cert_pem.write_to_path(str(bundle))
    collect(db, 1)
    stub = Stub()
    with tls_serving(stub, ca.issue_cert("127.0.0.1")) as url:
        settings = with_ca_bundle(url, bundle)  # checked at start-up: there
        bundle.unlink()  # a certificate renewal's mistake
        outcome = submit_pending(db, settings)
    assert outcome.error == (
        f"the certificate of {url}/submit cannot be checked: "
        f"fftelemetry.telemetry_ca_bundle={bundle} does not exist"
    )
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert stub.requests == [] and counts(db)["pending"] == 1


@pytest.mark.parametrize("held", ["nothing", "a key", "a certificate in DER"])
def test_a_ca_bundle_that_holds_no_certificate_is_named(db, ca, tmp_path, monkeypatch, held):
    # one handed a key, or an empty file, for the CA's: the handshake's own reason named neither
    # the file nor the setting
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    bundle = tmp_path / "ours.pem"
    bundle.write_bytes({
        "nothing": b"",
        "a key": ca.private_key_pem.bytes(),
        "a certificate in DER": ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode()),
    }[held])
    collect(db, 1)
    stub = Stub()
    with tls_serving(stub, ca.issue_cert("127.0.0.1")) as url:
        outcome = submit_pending(db, with_ca_bundle(url, bundle))
    assert outcome.error == (
        f"the certificate of {url}/submit cannot be checked: "
        f"fftelemetry.telemetry_ca_bundle={bundle} holds no PEM certificate"
    )
    assert stub.requests == [] and counts(db)["pending"] == 1


def proxy_wanting_credentials(conn, send, stop):
    send(conn, b"HTTP/1.1 407 Proxy Authentication Required\r\n"
               b'Proxy-Authenticate: Basic realm="proxy"\r\nContent-Length: 0\r\n\r\n')


def test_a_proxy_that_refuses_the_tunnel_says_its_answer_once(db, monkeypatch):
    # it answered, so it is no connection failure retried: "tried 3 times" and no reason sent
    # the operator to look for a proxy that is down
    collect(db, 1)
    with raw_receiver(proxy_wanting_credentials) as (url, what):
        use_proxy(monkeypatch, url, variable="https_proxy")
        outcome = submit_pending(db, settings_for("https://192.0.2.1:6544"))
    assert what["requests"] == 1, "asked once"
    assert outcome.error == (
        f"cannot connect to the proxy {url} (https_proxy) for https://192.0.2.1:6544/submit "
        "(it answered 407 Proxy Authentication Required)"
    )
    assert counts(db)["pending"] == 1
