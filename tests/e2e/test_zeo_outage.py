"""The ZEO server goes away while `pserve` keeps running, then comes back. A request that needs
the server gets a 503 within one `wait_timeout` (pyramid_retry would otherwise rerun it ten
times, waiting each time), saves nothing and signs nobody in; the app recovers by itself. And
`pserve` started with no ZEO server says so in one line."""

import json
import logging
import re
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from ZEO.ClientStorage import ClientStorage
from ZODB import DB
from ZODB.Connection import TransactionMetaData
from ZODB.utils import u64

from fftelemetry.resources import telemetry_store_in
from fftelemetry.telemetry.sender import submit_pending
from tests.conftest import STUB_UUID, Stub, serving, with_zeo_logger
from tests.functional.test_receiver import record
from tests.functional.test_sender import collect, counts, in_store
from tests.functional.test_sender import settings_for as sender_settings

from .harness import (
    BIN,
    app_settings,
    child_environment,
    csrf_token,
    free_port,
    new_session,
    post_form,
    process,
    pserve,
    runzeo,
    runzeo_on_cue,
    socket_open,
    stored_batch,
    unavailable_said,
    wait_until,
    write_server_ini,
    zeo_uri,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "long enough password"
WAIT_TIMEOUT = 2


def register(base, email, browser=None):
    browser = browser or new_session()
    return post_form(browser, f"{base}/register", {"email": email, "password": PASSWORD})


def submit_registration(browser, base, form, email):
    """POST the register `form` that `browser` fetched earlier (while the server was up)."""
    data = {"email": email, "password": PASSWORD, "csrf_token": csrf_token(form.text)}
    return browser.post(f"{base}/register", data=data, timeout=120, allow_redirects=False)


def stop(zeo):
    zeo.send_signal(signal.SIGTERM)
    zeo.wait(10)


def settings_for(tmp_path, wait_timeout=WAIT_TIMEOUT):
    cheap = {"fftelemetry.password_profile": "cheapest"}
    return app_settings(zeo_uri(tmp_path, wait_timeout), **cheap)


def test_a_lost_zeo_server_is_one_quick_503_and_the_app_recovers(tmp_path):
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", settings_for(tmp_path), port)
    with runzeo(tmp_path) as zeo, pserve(ini, port) as base:
        assert register(base, "first@example.org").status_code == 200
        browser = new_session()
        form = browser.get(f"{base}/register", timeout=30)  # the form, while the server is up
        stop(zeo)

        started = time.monotonic()
        down = submit_registration(browser, base, form, "second@example.org")
        waited = time.monotonic() - started
        assert down.status_code == 503, down.text
        assert waited < 4 * WAIT_TIMEOUT, f"{waited:.1f} s: the request was rerun"
        assert "Database unavailable" in down.text and "Nothing was changed" in down.text
        assert "Welcome!" not in down.text and "Set-Cookie" not in down.headers
        assert down.headers["Retry-After"] == "30"
        log = ini.with_suffix(".log").read_text()
        assert log.count("the ZEO server cannot be reached") == 1
        assert "retrying POST" not in log

        with runzeo(tmp_path):
            wait_until(lambda: register(base, "third@example.org").status_code == 200, 30,
                       "the app to reconnect")
            second = post_form(new_session(), f"{base}/login",
                               {"email": "second@example.org", "password": PASSWORD})
            assert second.status_code == 400, "the refused registration was not stored"
            assert "Wrong email address or password." in second.text


def test_signed_in_pages_missing_the_server_are_quick_503s_not_reruns(tmp_path):
    """The outage first bites while loading the signed-in user (a fresh pserve has nothing in
    its caches), once in a view and once in the 404 page; /health, whose root is cached, says
    so too, without a log line."""
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", settings_for(tmp_path), port)
    browser = new_session()
    with runzeo(tmp_path) as zeo:
        with pserve(ini, port) as base:
            assert register(base, "first@example.org", browser).status_code == 200
        with pserve(ini, port) as base:
            assert new_session().get(f"{base}/", timeout=30).status_code == 200
            assert new_session().get(f"{base}/health", timeout=30).text == "OK\n"
            stop(zeo)
            # the root is in this process's cache: /health asks the ZEO client if it is connected
            health = new_session().get(f"{base}/health", timeout=120)
            assert (health.status_code, health.text) == (503, "Database unavailable\n")
            assert health.headers["Retry-After"] == "30"
            for path in ("/preferences", "/no-such-page"):
                started = time.monotonic()
                page = browser.get(f"{base}{path}", timeout=120, allow_redirects=False)
                waited = time.monotonic() - started
                assert page.status_code == 503, (path, page.status_code)
                assert "Database unavailable" in page.text
                assert waited < 4 * WAIT_TIMEOUT, f"{path}: {waited:.1f} s, rerun"
            log = ini.with_suffix(".log").read_text()
    assert log.count("the ZEO server cannot be reached") == 2  # /health's 503 is not logged
    assert "retrying GET" not in log
    assert "Couldn't load state" not in log and "Traceback" not in log


def test_logins_the_lost_server_kept_from_checking_lock_nobody_out(tmp_path):
    """A login whose account this process had not read as its ZEO server went is a 503, its
    password unchecked: no failed attempt. The owner who tried as often as the throttle allows
    during the outage signs in once the server is back, rather than getting a 429."""
    port = free_port()
    settings = dict(settings_for(tmp_path), **{"fftelemetry.login_attempts": "2"})
    ini = write_server_ini(tmp_path / "web.ini", settings, port)
    login = {"email": "owner@example.org", "password": PASSWORD}
    with runzeo(tmp_path) as zeo:
        with pserve(ini, port) as base:
            assert register(base, "owner@example.org").status_code == 200
        with pserve(ini, port) as base:  # a fresh process: no account in its caches
            browser = new_session()
            form = browser.get(f"{base}/login", timeout=30)
            data = {**login, "csrf_token": csrf_token(form.text)}
            stop(zeo)
            for _ in range(2):
                down = browser.post(f"{base}/login", data=data, timeout=120, allow_redirects=False)
                assert down.status_code == 503 and "Database unavailable" in down.text
            with runzeo(tmp_path):
                wait_until(lambda: new_session().get(f"{base}/health", timeout=30).ok, 30,
                           "the app to reconnect")
                back = browser.post(f"{base}/login", data=data, timeout=30, allow_redirects=False)
                assert back.status_code == 303, back.text


def test_the_503_pages_stylesheet_and_icon_need_no_database(tmp_path):
    """The files every page links (its stylesheet, script, icon) are served while the ZEO server
    is away, also by a process that has read nothing from it yet: they are no part of the
    persistent tree, and a 503 page would otherwise come without its stylesheet, after a wait of
    `wait_timeout` for each file."""
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", settings_for(tmp_path), port)
    with runzeo(tmp_path) as zeo:
        with pserve(ini, port) as base:
            assert register(base, "first@example.org").status_code == 200
        with pserve(ini, port) as base:  # a fresh process: nothing in its caches
            stop(zeo)
            for path in ("/static/style.css", "/static/confirm.js", "/favicon.ico"):
                started = time.monotonic()
                answer = new_session().get(f"{base}{path}", timeout=120)
                waited = time.monotonic() - started
                assert answer.status_code == 200, (path, answer.status_code)
                assert waited < WAIT_TIMEOUT, f"{path}: {waited:.1f} s"
            assert "Database unavailable" in new_session().get(f"{base}/", timeout=120).text
            # /health too, whose root this process never loaded: in plain text, as when cached
            health = new_session().get(f"{base}/health", timeout=120)
            assert (health.status_code, health.text) == (503, "Database unavailable\n")
            assert health.headers["Retry-After"] == "30"


def test_a_write_as_the_server_comes_back_goes_through(tmp_path):
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", settings_for(tmp_path, 10), port)
    with runzeo(tmp_path) as zeo, pserve(ini, port) as base:
        assert register(base, "first@example.org").status_code == 200
        browser = new_session()
        form = browser.get(f"{base}/register", timeout=30)
        stop(zeo)
        back, done = threading.Event(), threading.Event()

        def restart_a_second_later():
            time.sleep(1)
            with runzeo(tmp_path):
                back.set()
                done.wait(60)

        restarter = threading.Thread(target=restart_a_second_later)
        restarter.start()
        try:
            saved = submit_registration(browser, base, form, "second@example.org")
            assert back.wait(10)
            assert saved.status_code == 303, saved.text
            again = post_form(new_session(), f"{base}/login",
                              {"email": "second@example.org", "password": PASSWORD})
            assert again.status_code == 200 and "Log out" in again.text
        finally:
            done.set()
            restarter.join()


def test_pserve_without_its_zeo_server_stops_in_one_line(tmp_path):
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", app_settings(zeo_uri(tmp_path, 1)), port)
    server = subprocess.run(
        [str(BIN / "pserve"), str(ini)],
        capture_output=True, text=True, timeout=60, check=False, env=child_environment(),
    )
    assert server.returncode != 0
    assert "Traceback" not in server.stderr, server.stderr
    last = server.stderr.strip().splitlines()[-1]
    assert last == (
        f"fftelemetry: cannot reach the ZEO server named in {ini}: is runzeo running?"
    )


def test_a_receiver_losing_its_zeo_server_answers_503_in_json(tmp_path):
    """Not the generic 500 and a traceback: the sender logs the reason and keeps its records."""
    port = free_port()
    ini = write_server_ini(tmp_path / "receiver.ini", {"zodbconn.uri": zeo_uri(tmp_path, 1)},
                           port, use="egg:fftelemetry#receiver")
    with runzeo(tmp_path) as zeo:
        with pserve(ini, port):
            pass  # made the receiver's database
        with pserve(ini, port) as base:  # a fresh process: nothing in its caches
            stop(zeo)
            stats = new_session().get(f"{base}/stats", timeout=120)
            assert (stats.status_code, stats.headers["Retry-After"]) == (503, "30"), stats.text
            assert stats.json() == {"error": "the receiver's database cannot be reached; "
                                    "nothing was stored, send the batch again later"}
            log = ini.with_suffix(".log").read_text()
    assert log.count("GET /stats: the ZEO server cannot be reached; nothing was stored") == 1
    assert "Traceback" not in log and "Couldn't load state" not in log


def test_a_receiver_losing_its_zeo_server_is_not_rerun_while_it_is_away(tmp_path):
    """A batch whose reads come from the caches meets the lost server at its commit, whose
    abort waits wait_timeout for the server (ZEO logs the end of each wait at DEBUG). Rerun
    retry.attempts times (3 in receiver.ini), it waited three times over, holding every other
    batch behind it (one at a time) as long as a sender waits for an answer (30 s)."""
    port = free_port()
    settings = {"zodbconn.uri": zeo_uri(tmp_path, 1), "retry.attempts": "3"}
    ini = with_zeo_waits_logged(write_server_ini(tmp_path / "receiver.ini", settings, port,
                                                 use="egg:fftelemetry#receiver"))
    with runzeo(tmp_path) as zeo, pserve(ini, port) as base:
        sender = new_session()
        stored_batch(sender, base, [record()])
        stop(zeo)
        refused = sender.post(f"{base}/submit", json=[record()], timeout=120)
        assert (refused.status_code, refused.headers["Retry-After"]) == (503, "30"), refused.text
        log = ini.with_suffix(".log").read_text()
    assert log.count("POST /submit: the ZEO server cannot be reached; nothing was stored") == 1
    assert log.count("ClientDisconnected in tpc_abort() ignored") == 1, log


def shipped_receiver_ini_on_zeo(folder, port):
    """The shipped receiver.ini on its commented ZEO line (README, `fftelemetry pack`), serving
    on `port`: its server's socket in `folder`/var."""
    text = (ROOT / "receiver.ini").read_text()
    zeo_line = re.search(r"(?m)^# (zodbconn\.uri = zeo://.*)$", text).group(1)
    text = re.sub(r"(?m)^zodbconn\.uri = file://.*$", lambda _: zeo_line, text)
    text = re.sub(r"(?m)^listen = .*$", f"listen = 127.0.0.1:{port}", text)
    (folder / "var").mkdir()
    ini = folder / "receiver.ini"
    ini.write_text(text)
    return ini


@contextmanager
def receiver_zeo(folder):
    """The receiver's own ZEO server, at the socket and file of README's zeo-receiver.conf."""
    sock, data = folder / "var" / "receiver-zeo.sock", folder / "var" / "receiver.fs"
    args = [str(BIN / "runzeo"), "-a", str(sock), "-f", str(data)]
    with process(args, folder / "zeo.log", ready=partial(socket_open, sock)) as child:
        yield child


def test_the_shipped_receiver_ini_on_its_zeo_server_logs_no_reconnection_attempts(tmp_path):
    """receiver.ini's ZEO line: a batch that finds the server away gets its 503 in JSON, and the
    log keeps ZEO's client's reconnection attempts, two lines a second while the server is away,
    out, as production.ini does; the lines of the lost and found connection stay."""
    port = free_port()
    ini = shipped_receiver_ini_on_zeo(tmp_path, port)
    with receiver_zeo(tmp_path) as zeo, pserve(ini, port) as base:
        sender = new_session()
        stored_batch(sender, base, [record()])
        stop(zeo)
        refused = sender.post(f"{base}/submit", json=[record()], timeout=30)
        assert (refused.status_code, refused.headers["Retry-After"]) == (503, "30"), refused.text
        log = ini.with_suffix(".log").read_text()
    assert log.count("POST /submit: the ZEO server cannot be reached; nothing was stored") == 1
    assert "Disconnected from storage" in log  # ZEO.ClientStorage's line stays
    assert "[ZEO.asyncio.client]" not in log, log


RECORDS = "/admin/telemetry/view"


def exported_ids(browser, base):
    return [record["id"] for record in browser.get(f"{base}{RECORDS}/export.json",
                                                   timeout=30).json()]


def test_an_admins_delete_meeting_a_lost_zeo_server_is_a_503_and_deletes_nothing(tmp_path):
    """The records page was just read, so the delete's reads come from the caches and its commit
    is what meets the lost server (pyramid_tm's commit, not the view): the 503 page all the
    same, not the 500 of an error at commit time, and no rerun."""
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", settings_for(tmp_path), port)
    with runzeo(tmp_path) as zeo, pserve(ini, port) as base:
        admin = new_session()
        register(base, "owner@example.org", admin)  # the first account is the administrator's
        register(base, "second@example.org")
        records = exported_ids(admin, base)
        page = admin.get(f"{base}{RECORDS}", timeout=30)  # the form, while the server is up
        form = {"confirm": "yes", "shown": str(len(records)), "csrf_token": csrf_token(page.text)}
        stop(zeo)
        refused = admin.post(f"{base}{RECORDS}/delete-all", data=form, timeout=120,
                             allow_redirects=False)
        log = ini.with_suffix(".log").read_text()
        assert refused.status_code == 503, refused.text
        assert "Database unavailable" in refused.text and "Nothing was changed" in refused.text
        assert "Set-Cookie" not in refused.headers
        assert log.count("the ZEO server cannot be reached") == 1, log
        assert "Traceback" not in log and "retrying POST" not in log

        with runzeo(tmp_path):
            wait_until(lambda: admin.get(f"{base}/health", timeout=30).text == "OK\n", 30,
                       "the app to reconnect")
            assert exported_ids(admin, base) == records
            page = admin.get(f"{base}{RECORDS}", timeout=30)
            done = admin.post(f"{base}{RECORDS}/delete-all", data={
                **form, "csrf_token": csrf_token(page.text)}, timeout=30)
            assert f"Deleted {len(records)} records" in done.text, done.text
            assert exported_ids(admin, base) == []


class StoppingReceiver(Stub):
    """A stand-in receiver (a bare WSGI app) that stops `zeo`, once it is set, as a batch comes
    in, then takes the batch: the sender loses its database between sending and marking it."""

    zeo = None

    def __call__(self, environ, start_response):
        if self.zeo is not None and self.zeo.poll() is None:
            stop(self.zeo)
        return super().__call__(environ, start_response)


def test_submit_now_pressed_with_the_zeo_server_away_sends_nothing(tmp_path):
    """The pages' objects are in the caches, so the batch could be read and sent, but not
    marked: the 503 page at once, with no wait for the server, and no rerun."""
    receiver = Stub()
    port = free_port()
    with serving(receiver) as url:
        settings = {**settings_for(tmp_path), "fftelemetry.telemetry_url": url}
        ini = write_server_ini(tmp_path / "web.ini", settings, port)
        with runzeo(tmp_path) as zeo, pserve(ini, port) as base:
            admin = new_session()
            register(base, "owner@example.org", admin)
            page = admin.get(f"{base}{RECORDS}", timeout=30)
            stop(zeo)
            pressed = admin.post(f"{base}{RECORDS}/submit", timeout=120,
                                 data={"csrf_token": csrf_token(page.text)})
            log = ini.with_suffix(".log").read_text()
    assert pressed.status_code == 503 and "Database unavailable" in pressed.text, pressed.text
    assert receiver.requests == []
    assert log.count(f"POST {RECORDS}/submit: the ZEO server cannot be reached; nothing was "
                     "changed") == 1, log
    assert "retrying POST" not in log and "Traceback" not in log


def test_submit_now_losing_the_zeo_server_says_so_and_marks_nothing(tmp_path):
    """The receiver stops the server as the batch comes in: marking it meets the lost server.
    The admin is told in the sender's words on the 503 page, not "Nothing was changed" (the
    receiver has the batch), and the batch stays pending to be sent again."""
    receiver = StoppingReceiver()
    port = free_port()
    with serving(receiver) as url:
        settings = {**settings_for(tmp_path), "fftelemetry.telemetry_url": url}
        ini = write_server_ini(tmp_path / "web.ini", settings, port)
        with runzeo(tmp_path) as zeo, pserve(ini, port) as base:
            admin = new_session()
            register(base, "owner@example.org", admin)
            records = exported_ids(admin, base)
            page = admin.get(f"{base}{RECORDS}", timeout=30)
            receiver.zeo = zeo
            pressed = admin.post(f"{base}{RECORDS}/submit", timeout=120,
                                 data={"csrf_token": csrf_token(page.text)})
            assert zeo.poll() is not None, "the receiver stopped the server"
            assert pressed.status_code == 503 and len(receiver.requests) == 1, pressed.text
            assert "Database unavailable" in pressed.text, pressed.text
            assert "Nothing was changed" not in pressed.text, pressed.text
            said = unavailable_said(pressed.text)
            assert said == (  # the whole of it: nothing said twice
                "A batch was sent but not marked as sent: the database server went away (the ZEO "
                "server cannot be reached), so all the records stay pending and go with the next "
                "fftelemetry cron run, or press \"Submit pending records now\" again once the "
                "server is back; if it keeps happening, tell the administrator."
            ), said
            log = ini.with_suffix(".log").read_text()
            assert "Telemetry submission log not updated: the ZEO server cannot be reached" in log
            assert "Traceback" not in log and "ClientDisconnected" not in log, log

            with runzeo(tmp_path):
                wait_until(lambda: admin.get(f"{base}/health", timeout=30).text == "OK\n", 30,
                           "the app to reconnect")
                page = admin.get(f"{base}{RECORDS}", timeout=30)
                assert f"{len(records)} pending" in page.text, page.text
                sent = admin.post(f"{base}{RECORDS}/submit", timeout=60,
                                  data={"csrf_token": csrf_token(page.text)})
                assert f"Sent {len(records)} record" in sent.text, sent.text
    assert len(receiver.requests) == 2  # the batch not marked, sent again


class SecondBatchStoppingReceiver(Stub):
    """A stand-in receiver that takes the first batch, and the second once `marked()` says the
    first was marked, after stopping `zeo`: the sender loses its database server between sending
    the second batch and marking it, having marked the first."""

    zeo = marked = None

    def __call__(self, environ, start_response):
        if len(self.requests) == 1:  # the second batch; the first is remembered already
            wait_until(self.marked, 30, "the first batch's mark")
            stop(self.zeo)
        return super().__call__(environ, start_response)


def pending_shown(browser, base):
    """How many records the records page says are pending."""
    page = browser.get(f"{base}{RECORDS}", timeout=30)
    return int(re.search(r"collected: (\d+) pending", page.text).group(1))


def test_submit_now_losing_the_zeo_server_after_a_batch_says_what_was_sent(tmp_path):
    """One record a batch: the first is sent and marked, the server lost before the second is
    marked. The 503 page says the first record was sent and marked, not "Nothing was changed"."""
    receiver = SecondBatchStoppingReceiver()
    port = free_port()
    with serving(receiver) as url:
        settings = {**settings_for(tmp_path), "fftelemetry.telemetry_url": url,
                    "fftelemetry.batch_size": "1"}
        ini = write_server_ini(tmp_path / "web.ini", settings, port)
        with runzeo(tmp_path) as zeo, pserve(ini, port) as base:
            admin = new_session()
            register(base, "owner@example.org", admin)
            register(base, "other@example.org")
            records = exported_ids(admin, base)
            assert len(records) >= 2, records
            page = admin.get(f"{base}{RECORDS}", timeout=30)
            looking = new_session()  # the receiver's look at the records page, as the admin
            post_form(looking, f"{base}/login", {"email": "owner@example.org",
                                                 "password": PASSWORD})
            receiver.zeo = zeo
            receiver.marked = lambda: pending_shown(looking, base) == len(records) - 1
            pressed = admin.post(f"{base}{RECORDS}/submit", timeout=120,
                                 data={"csrf_token": csrf_token(page.text)})
            assert zeo.poll() is not None, "the receiver stopped the server"
            assert pressed.status_code == 503, pressed.text
            assert "Database unavailable" in pressed.text, pressed.text
            assert "Nothing was changed" not in pressed.text, pressed.text
            assert ("Sent 1 record, then the submission failed: a batch was sent but could not "
                    "be marked (the ZEO server cannot be reached); it will be re-sent. The other "
                    "records stay pending for the next try.") in pressed.text, pressed.text
            with runzeo(tmp_path):
                wait_until(lambda: admin.get(f"{base}/health", timeout=30).text == "OK\n", 30,
                           "the app to reconnect")
                assert pending_shown(admin, base) == len(records) - 1  # the first mark stands


class OidsDoomingReceiver(Stub):
    """A stand-in receiver that answers the batch and, as it comes in, writes `oids` to the file
    runzeo_on_cue's server reads: the first load of one of them ends the server."""

    def __init__(self, oids_file, **answer):
        super().__init__(**answer)
        self.oids_file, self.oids = oids_file, []

    def __call__(self, environ, start_response):
        self.oids_file.write_text("".join(f"{oid:x}\n" for oid in self.oids))
        return super().__call__(environ, start_response)


def submission_log_oid(folder):
    """The oid of the store's submission log, loaded by a client of the test's own."""
    db = DB(ClientStorage(str(folder / "zeo.sock"), wait_timeout=WAIT_TIMEOUT))
    try:
        with db.transaction() as conn:
            return u64(telemetry_store_in(conn.root()).log._p_oid)
    finally:
        db.close()


REFUSED = {"status": "500 Internal Server Error", "body": b'{"error": "the receiver failed"}'}
AS_IT_ENDED = (
    "The database server went away as the submission ended. Sent {records} records; the "
    f"receiver's reference is {STUB_UUID}. Nothing is left to send again; the submission log on "
    "the status page may not show this submission."
)
REFUSED_AND_LOST = (
    "Nothing was sent: the receiver answered HTTP 500: the receiver failed. The database server "
    "went away too (the ZEO server cannot be reached), so all the records stay pending and go "
    "with the next fftelemetry cron run, or press \"Submit pending records now\" again once the "
    "server is back; if it keeps happening, tell the administrator."
)


@pytest.mark.parametrize("answer, page_says", [({}, AS_IT_ENDED), (REFUSED, REFUSED_AND_LOST)])
def test_submit_now_losing_the_zeo_server_as_it_logs_the_run_says_so(tmp_path, answer, page_says):
    """The batch taken (every record sent and marked) or refused, then the server dies at the
    run's read of the submission log: the 503 page says what became of the records, as for a
    PostgreSQL server. The run's message was flashed on the records page, served from the
    caches as if the server were there."""
    oids_file = tmp_path / "doomed-oids"
    port = free_port()
    receiver = OidsDoomingReceiver(oids_file, **answer)
    with runzeo_on_cue(tmp_path, oids=oids_file) as zeo, serving(receiver) as url:
        settings = {**settings_for(tmp_path), "fftelemetry.telemetry_url": url}
        ini = write_server_ini(tmp_path / "web.ini", settings, port)
        # the database made by another process: pserve's cache does not hold the log then
        made = fftelemetry("status", ini)
        assert made.communicate(timeout=60) and made.returncode == 0
        with pserve(ini, port) as base:
            admin = new_session()
            register(base, "owner@example.org", admin)
            records = exported_ids(admin, base)
            page = admin.get(f"{base}{RECORDS}", timeout=30)
            receiver.oids = [submission_log_oid(tmp_path)]
            pressed = admin.post(f"{base}{RECORDS}/submit", timeout=120,
                                 data={"csrf_token": csrf_token(page.text)})
            assert zeo.poll() is not None, "the server died on cue"
    assert len(receiver.requests) == 1
    assert pressed.status_code == 503, pressed.text
    said = unavailable_said(pressed.text)
    assert said == page_says.format(records=len(records)), said
    log = ini.with_suffix(".log").read_text()
    assert "Telemetry submission log not updated: the ZEO server cannot be reached" in log, log


def test_a_submission_meeting_a_lost_zeo_server_writes_once_and_marks_nothing(tmp_path, caplog):
    """A lost server is no conflict: marking the batch is not tried again, nor is the run's
    entry in the submission log, each of which would wait once more in ZEO's abort for the
    server (its wait_timeout, 10 s in the shipped inis: three attempts, marking and logging,
    held "Submit now" a minute). ZEO logs the end of each such wait at DEBUG: they are
    counted."""
    caplog.set_level(logging.DEBUG, logger="ZEO.ClientStorage")
    receiver = Stub()
    with runzeo(tmp_path) as zeo:
        db = DB(ClientStorage(str(tmp_path / "zeo.sock"), wait_timeout=WAIT_TIMEOUT))
        try:
            collect(db, 3)  # the records and their trees are in the cache, read without the server
            stop(zeo)
            with serving(receiver) as url:
                outcome = submit_pending(db, sender_settings(url))
        finally:
            db.close()
    assert len(receiver.requests) == 1
    assert (outcome.ok, outcome.sent) == (False, 0)
    assert outcome.message() == (
        "Nothing was marked as sent: a batch was sent but could not be marked (the ZEO server "
        "cannot be reached); it will be re-sent. The records stay pending for the next try."
    )
    waits = [m for m in caplog.messages if m.endswith("ClientDisconnected in tpc_abort() ignored")]
    assert len(waits) == 1, caplog.messages
    assert "Telemetry submission log not updated: the ZEO server cannot be reached." in (
        caplog.messages
    )
    with runzeo(tmp_path):
        db = DB(ClientStorage(str(tmp_path / "zeo.sock"), wait_timeout=WAIT_TIMEOUT))
        try:
            assert counts(db) == {"all": 3, "pending": 3, "submitted": 0}
        finally:
            db.close()


class Command(subprocess.Popen):
    """A command that a failed test ends: it may be waiting for a lock the test holds, which the
    test lets go only once the command has ended; Popen's own exit would wait for it, until
    pytest-timeout's 300 s, and the failure's own message would be lost among its stacks."""

    def __exit__(self, kind, value, traceback):
        if kind is not None:
            self.kill()
        return super().__exit__(kind, value, traceback)


def fftelemetry(*args):
    return Command([str(BIN / "fftelemetry"), *map(str, args)], text=True,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_environment())


def records_in(ini):
    """How many records there are, by `delete all` without --yes, which changes nothing."""
    _, err = fftelemetry("delete", "all", ini).communicate(timeout=60)
    return int(re.search(r"would delete (\d+) record", err).group(1))


def with_zeo_waits_logged(ini):
    """The ini, with ZEO's client logging at DEBUG: the end of each wait in its abort of a
    commit that met a lost server ("ClientDisconnected in tpc_abort() ignored")."""
    return with_zeo_logger(ini, "DEBUG", "ZEO.ClientStorage")


def test_cron_losing_its_zeo_server_before_marking_says_so_and_waits_once(tmp_path):
    """The receiver stops the ZEO server as the batch comes in: cron exits 1, the batch stays
    pending, and the run's entry in the submission log is not tried for a lost server (its
    abort would wait wait_timeout again, three times), nor the command's use as errored
    (fftelemetry.cli.main): no wait in an abort, and the run's lines are the last."""
    receiver = StoppingReceiver()
    with runzeo(tmp_path) as zeo, serving(receiver) as url:
        settings = {**settings_for(tmp_path), "fftelemetry.telemetry_url": url}
        ini = with_zeo_waits_logged(write_server_ini(tmp_path / "app.ini", settings))
        made = fftelemetry("status", ini)  # the database, its use a record to send
        assert made.communicate(timeout=60) and made.returncode == 0
        receiver.zeo = zeo
        _, err = (lost := fftelemetry("cron", ini, "--force")).communicate(timeout=120)
    assert lost.returncode == 1, err
    assert "Traceback" not in err, err
    assert ("Telemetry submission failed: a batch was sent but could not be marked (the ZEO "
            "server cannot be reached); it will be re-sent.") in err
    assert "Telemetry submission log not updated: the ZEO server cannot be reached." in err
    assert err.count("ClientDisconnected in tpc_abort() ignored") == 0, err
    assert err.splitlines()[-2:] == [
        "WARNING [fftelemetry.telemetry.sender] Telemetry submission log not updated: the ZEO "
        "server cannot be reached.",
        "WARNING [fftelemetry.cli.cron] This submission marked no record as sent; the records "
        "not marked stay pending for the next try.",  # the reason said once, above
    ], err
    assert "could not write" not in err, err
    with runzeo(tmp_path):
        out, _ = fftelemetry("status", ini, "--json").communicate(timeout=60)
    counts = json.loads(out)["counts"]
    assert counts["submitted"] == 0 and counts["pending"] == counts["all"] > 0, counts


@contextmanager
def commit_lock_held(folder):
    """A transaction of the test's own, voted on the ZEO server in `folder`: it holds the
    server's commit lock, and another client's commit waits for it there, until the server is
    lost. Yields the test's client."""
    storage = ClientStorage(str(folder / "zeo.sock"), wait_timeout=10)
    txn = TransactionMetaData()
    storage.tpc_begin(txn)
    storage.tpc_vote(txn)
    try:
        yield storage
    finally:
        storage.close()


def test_runzeo_after_a_crash_yields_a_server_that_listens(tmp_path):
    """A server killed leaves its socket file: runzeo yields once the new one listens there, not
    at once, or a command started then (with its wait_timeout of 2 s) could miss it."""
    with runzeo(tmp_path) as zeo:
        zeo.kill()
        zeo.wait(10)
    assert (tmp_path / "zeo.sock").exists()
    with runzeo(tmp_path), socket.socket(socket.AF_UNIX) as client:
        assert client.connect_ex(str(tmp_path / "zeo.sock")) == 0


def test_a_receivers_pack_losing_its_zeo_server_says_so_without_a_status_page(tmp_path):
    """As the app's pack below, for the receiver's database: its line spoke of a pack "unnoted
    on the status page", which the receiver does not have."""
    ini = write_server_ini(tmp_path / "receiver.ini", {"zodbconn.uri": zeo_uri(tmp_path, 2)},
                           use="egg:fftelemetry#receiver")
    with runzeo(tmp_path):
        first = fftelemetry("pack", ini)  # the receiver's database
        assert first.communicate(timeout=60) and first.returncode == 0
        db = DB(ClientStorage(str(tmp_path / "zeo.sock"), wait_timeout=10))
        for value in (1, None):  # old revisions of the root, for the next pack to drop
            with db.transaction() as conn:
                conn.root()["scratch"] = value
        db.close()
    with (
        runzeo(tmp_path) as zeo,
        commit_lock_held(tmp_path),
        fftelemetry("pack", ini) as run,
    ):
        wait_until((tmp_path / "Data.fs.pack").exists, 30, "the pack")
        zeo.kill()
        zeo.wait(10)
        out, err = run.communicate(timeout=60)
    assert run.returncode == 1, err
    assert err.splitlines() == [
        "fftelemetry pack: the pack failed (the ZEO server cannot be reached); the server replaces "
        "its file only once its copy is complete, so nothing was lost; a server still running "
        "goes on with the pack"
    ], err
    assert out == ""


PACK_FAILED = ("the pack failed (the ZEO server cannot be reached); the server replaces its file "
               "only once its copy is complete, so nothing was lost; a server still running goes "
               "on with the pack, unnoted on the status page")


USE_NOT_WRITTEN = ("could not write (the ZEO server cannot be reached); the change in progress "
                   "was rolled back")


@pytest.mark.parametrize(("command", "line", "exit_status"), [
    (("delete", "all", "--yes"),
     "could not delete (the ZEO server cannot be reached); nothing was deleted", 1),
    # its first run: it writes its use before it reads; a lost server is a database it cannot
    # use (2, a monitor's CRITICAL), whichever step met it
    (("status",), USE_NOT_WRITTEN, 2),
    (("status", "--check"), USE_NOT_WRITTEN, 2),
    (("pack",), PACK_FAILED, 1),
])
def test_a_command_losing_its_zeo_server_mid_run_says_so_in_one_line(tmp_path, command, line,
                                                                     exit_status):
    """The server is lost (killed) while the command waits on it: its commit waiting for the
    commit lock the test holds, or its pack, which needs that lock to end. Deterministic: the
    test sees the command waiting before it takes the server away. `status` exited 1 when the
    write of its use lost it, and 2 when its read did."""
    ini = write_server_ini(tmp_path / "app.ini", settings_for(tmp_path))
    with runzeo(tmp_path):
        first = fftelemetry("pack", ini)  # a database, with records and old revisions to pack
        assert first.communicate(timeout=60) and first.returncode == 0
        before = records_in(ini)
    with (
        runzeo(tmp_path) as zeo,
        commit_lock_held(tmp_path) as holder,
        fftelemetry(*command, ini) as run,
    ):
        if command[0] == "pack":  # the server's pack has begun its copy
            wait_until((tmp_path / "Data.fs.pack").exists, 30, "the pack")
        else:
            wait_until(lambda: holder.server_status()["waiting"] == 1, 30, "the commit")
        zeo.kill()  # lost as in a crash (SIGTERM would abort the test's transaction first)
        zeo.wait(10)
        out, err = run.communicate(timeout=60)
    assert run.returncode == exit_status, err
    assert err.splitlines() == [f"fftelemetry {command[0]}: {line}"], err
    assert out == ""
    with runzeo(tmp_path):
        assert records_in(ini) == before


class FlaggingReceiver(Stub):
    """A stand-in receiver that takes the first batch, creating the file `flag` as it comes in:
    that arms runzeo_on_cue's server, which dies at the first load after the next commit (the
    first batch's mark), the sender's read of a batch no cache holds. It answers the batches
    after the first once `released` is set: the one sent as the server dies is still in flight
    as the run ends."""

    def __init__(self, flag):
        super().__init__()
        self.flag, self.released = flag, threading.Event()

    def __call__(self, environ, start_response):
        if self.requests:
            self.released.wait(60)
        else:
            self.flag.touch()
        return super().__call__(environ, start_response)


# Batches of 100 records, trees' buckets of 30: the third batch's read, right after the first's
# mark, loads buckets that the reads before it did not (they read one record past their batch)
CUE_BATCH = 100
CUE_RECORDS = 400


def collected_elsewhere(folder, count):
    """`count` records added to the database by a client of the test's own, closed then: they
    are in no cache of the app's or a command's."""
    db = DB(ClientStorage(str(folder / "zeo.sock"), wait_timeout=10))
    try:  # counts no installation has had yet: each a record
        in_store(db, lambda store: [store.add_feature("system.users.count", 10_000 + n)
                                    for n in range(count)])
    finally:
        db.close()


@contextmanager
def submit_now_on_cue(tmp_path, receiver, doom=lambda: None, **cue):
    """"Submit now" pressed on a site whose ZEO server dies on cue (runzeo_on_cue's `cue`), with
    CUE_RECORDS records collected elsewhere, sent in batches of CUE_BATCH; `doom` is called just
    before the press. The press must get the 503 page: yields the site's admin session, its
    address, its log file, the records pending before the press, and the page's paragraph."""
    port = free_port()
    with serving(receiver) as url:
        settings = {**settings_for(tmp_path), "fftelemetry.telemetry_url": url,
                    "fftelemetry.batch_size": str(CUE_BATCH)}
        ini = write_server_ini(tmp_path / "web.ini", settings, port)
        with runzeo_on_cue(tmp_path, **cue) as zeo, pserve(ini, port) as base:
            admin = new_session()
            register(base, "owner@example.org", admin)
            collected_elsewhere(tmp_path, CUE_RECORDS)
            records = pending_shown(admin, base)
            page = admin.get(f"{base}{RECORDS}", timeout=30)
            doom()
            try:
                pressed = admin.post(f"{base}{RECORDS}/submit", timeout=120,
                                     data={"csrf_token": csrf_token(page.text)})
            finally:
                receiver.released.set()
            assert zeo.poll() is not None, "the server died on cue"
            assert pressed.status_code == 503, pressed.text
            said = unavailable_said(pressed.text)
            yield admin, base, ini.with_suffix(".log").read_text(), records, said


def submits_the_rest_once_back(tmp_path, admin, base, pending):
    """With the server back, the site reconnects by itself, `pending` records are pending, and
    "Submit now" sends them."""
    with runzeo(tmp_path):
        wait_until(lambda: admin.get(f"{base}/health", timeout=30).text == "OK\n", 30,
                   "the app to reconnect")
        assert pending_shown(admin, base) == pending
        page = admin.get(f"{base}{RECORDS}", timeout=30)
        sent = admin.post(f"{base}{RECORDS}/submit", timeout=60,
                          data={"csrf_token": csrf_token(page.text)})
        assert f"Sent {pending} records" in sent.text, sent.text


def test_submit_now_losing_the_zeo_server_reading_a_later_batch_says_what_it_sent(tmp_path):
    """As below, through "Submit now": the 503 page says what was sent and marked, and what goes
    with the next try. It said "Nothing was changed", the first batch marked."""
    flag = tmp_path / "received"
    with submit_now_on_cue(tmp_path, FlaggingReceiver(flag), flag=flag) as (
        admin, base, log, records, said,
    ):
        assert said == (
            f"The database server went away during the submission. Sent {CUE_BATCH} records, "
            "then the submission failed: a batch was sent but not marked, as the next one "
            "could not be read (the ZEO server cannot be reached); it will be re-sent. The "
            "other records stay pending for the next try. What is still pending goes with the "
            "next fftelemetry cron run, or press \"Submit pending records now\" again once "
            "the server is back; if it keeps happening, tell the administrator."
        ), said
        assert log.count("Telemetry submission log not updated: the ZEO server cannot be "
                         "reached.") == 1, log
        assert "Traceback" not in log and "retrying POST" not in log, log
        submits_the_rest_once_back(tmp_path, admin, base, records - CUE_BATCH)  # the mark stands


@contextmanager
def cron_on_cue(tmp_path, receiver, doom=lambda: None, **cue):
    """`fftelemetry cron --force` run on a database whose ZEO server dies on cue (runzeo_on_cue's
    `cue`), with CUE_RECORDS records collected elsewhere, sent in batches of CUE_BATCH to
    `receiver`, which serves until the block ends; `doom` is called just before the run. Yields
    the ini, the run's process and its stderr."""
    with runzeo_on_cue(tmp_path, **cue) as zeo, serving(receiver) as url:
        settings = {**settings_for(tmp_path), "fftelemetry.telemetry_url": url,
                    "fftelemetry.batch_size": str(CUE_BATCH)}
        ini = write_server_ini(tmp_path / "app.ini", settings)
        made = fftelemetry("status", ini)  # the database, its use a record to send
        assert made.communicate(timeout=60) and made.returncode == 0
        collected_elsewhere(tmp_path, CUE_RECORDS)
        doom()
        try:
            _, err = (lost := fftelemetry("cron", ini, "--force")).communicate(timeout=120)
        finally:
            receiver.released.set()
        assert zeo.poll() is not None, "the server died on cue"
        yield ini, lost, err


def test_cron_losing_its_zeo_server_reading_a_later_batch_says_what_it_sent(tmp_path):
    """The server dies as the third batch is read, the first sent and marked, the second in
    flight: cron says what became of them and exits 1, and the first batch's mark stands. It
    said "could not write …; the change in progress was rolled back"."""
    flag = tmp_path / "received"
    with cron_on_cue(tmp_path, FlaggingReceiver(flag), flag=flag) as (ini, lost, err):
        assert lost.returncode == 1, err
        assert "Traceback" not in err, err
        assert err.splitlines()[-4:] == [
            'INFO [fftelemetry.telemetry.sender] Result of submission [200]: {"uuid":"'
            f"{STUB_UUID}\"}}",  # the first batch's; the second was cut
            "WARNING [fftelemetry.telemetry.sender] Telemetry submission failed: a batch was sent "
            "but not marked, as the next one could not be read (the ZEO server cannot be reached); "
            "it will be re-sent.",
            "WARNING [fftelemetry.telemetry.sender] Telemetry submission log not updated: the ZEO "
            "server cannot be reached.",
            f"WARNING [fftelemetry.cli.cron] This submission sent and marked {CUE_BATCH} records; "
            "the records not marked stay pending for the next try.",  # what the log could not keep
        ], err
        with runzeo(tmp_path):
            out, _ = fftelemetry("status", ini, "--json").communicate(timeout=60)
        counts = json.loads(out)["counts"]
        assert counts["submitted"] == CUE_BATCH, counts
        assert counts["pending"] == counts["all"] - CUE_BATCH, counts


class HoldingReceiver(Stub):
    """A stand-in receiver that answers no batch until `released` is set: the first is still in
    flight as a run that cannot read the second ends."""

    def __init__(self):
        super().__init__()
        self.released = threading.Event()

    def __call__(self, environ, start_response):
        self.released.wait(60)
        return super().__call__(environ, start_response)


def doom_the_read_of(folder, position, oids):
    """Write to the file `oids` the oid of the bucket of the pending records' tree that holds the
    `position`th pending record (from 1, oldest first): runzeo_on_cue's server dies at the first
    load of it, by a read that reaches that record and has none of the caches hold it. Loaded here
    by a client of the test's own, closed then, before the file exists."""
    db = DB(ClientStorage(str(folder / "zeo.sock"), wait_timeout=10))
    try:
        with db.transaction() as conn:
            tree = telemetry_store_in(conn.root()).pending.records
            seq = list(tree.keys())[position - 1]
            bucket = tree.__getstate__()[1]  # a tree of several buckets: (children, first one)
            while True:  # a bucket's state: its keys and values, then the next bucket
                bucket._p_activate()
                state = bucket.__getstate__()
                if seq in state[0][::2]:
                    break
                bucket = state[1]
            oid = u64(bucket._p_oid)
    finally:
        db.close()
    oids.write_text(f"{oid:x}\n")


SECOND_BATCH_AND_NO_CACHE = 2 * CUE_BATCH  # its last record: the first's read goes to the 101st


def test_submit_now_losing_the_zeo_server_reading_the_second_batch_says_nothing_was_marked(
    tmp_path,
):
    """The server dies as the second batch is read, the first in flight and nothing marked: the
    503 page says a batch was sent and not marked, and all the records stay pending. It said
    "Nothing was changed", though the receiver may have had the first batch."""
    doomed = tmp_path / "doomed"
    doom = partial(doom_the_read_of, tmp_path, SECOND_BATCH_AND_NO_CACHE, doomed)
    with submit_now_on_cue(tmp_path, HoldingReceiver(), doom, oids=doomed) as (
        admin, base, log, records, said,
    ):
        assert said == (
            "A batch was sent but not marked as sent: the database server went away (the ZEO "
            "server cannot be reached), so all the records stay pending and go with the next "
            "fftelemetry cron run, or press \"Submit pending records now\" again once the "
            "server is back; if it keeps happening, tell the administrator."
        ), said
        assert ("Telemetry submission failed: a batch was sent but not marked, as the next "
                "one could not be read (the ZEO server cannot be reached); it will be "
                "re-sent.") in log, log
        assert "Traceback" not in log, log
        submits_the_rest_once_back(tmp_path, admin, base, records)  # nothing was marked


def cron_sends_every_record_once_back(tmp_path, ini):
    """With the server back, no record is marked yet, and the next cron run sends them all."""
    with runzeo(tmp_path):
        out, _ = fftelemetry("status", ini, "--json").communicate(timeout=60)
        assert json.loads(out)["counts"]["submitted"] == 0, out
        again = fftelemetry("cron", ini, "--force")
        _, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        out, _ = fftelemetry("status", ini, "--json").communicate(timeout=60)
    counts = json.loads(out)["counts"]
    assert counts["pending"] == 0 and counts["submitted"] == counts["all"] > CUE_RECORDS, counts


def test_cron_losing_its_zeo_server_reading_the_second_batch_says_nothing_was_marked(tmp_path):
    """The server dies as the second batch is read, the first in flight and nothing marked: cron
    says what became of the batch and exits 1, and the next run sends every record. It said
    "could not write …; the change in progress was rolled back"."""
    doomed = tmp_path / "doomed"
    doom = partial(doom_the_read_of, tmp_path, SECOND_BATCH_AND_NO_CACHE, doomed)
    with cron_on_cue(tmp_path, HoldingReceiver(), doom, oids=doomed) as (ini, lost, err):
        assert lost.returncode == 1, err
        assert "Traceback" not in err and "could not write" not in err, err
        assert err.splitlines()[-3:] == [
            "WARNING [fftelemetry.telemetry.sender] Telemetry submission failed: a batch was "
            "sent but not marked, as the next one could not be read (the ZEO server cannot be "
            "reached); it will be re-sent.",
            "WARNING [fftelemetry.telemetry.sender] Telemetry submission log not updated: the "
            "ZEO server cannot be reached.",
            "WARNING [fftelemetry.cli.cron] This submission marked no record as sent; the "
            "records not marked stay pending for the next try.",
        ], err
        cron_sends_every_record_once_back(tmp_path, ini)


def test_cron_losing_its_zeo_server_reading_the_first_batch_says_so_in_one_line(tmp_path):
    """The server dies as the first batch is read, nothing sent yet: cron says so in one line
    and exits 1, and the next run sends every record. (The sender's re-raise of that read's
    error is what says it: with nothing to report, the run has no outcome of its own.)"""
    doomed = tmp_path / "doomed"
    doom = partial(doom_the_read_of, tmp_path, 2, doomed)  # the first record collected elsewhere
    receiver = HoldingReceiver()
    with cron_on_cue(tmp_path, receiver, doom, oids=doomed) as (ini, lost, err):
        assert lost.returncode == 1, err
        assert "Traceback" not in err, err
        assert err.splitlines()[-1] == (
            "fftelemetry cron: could not write (the ZEO server cannot be reached); the change in "
            "progress was rolled back"
        ), err
        assert receiver.requests == [], err
        cron_sends_every_record_once_back(tmp_path, ini)
