"""The PostgreSQL server of a RelStorage database goes away while `pserve` and `cron` run
(`pg_ctl stop -m fast`), then comes back: as for a lost ZEO server (test_zeo_outage.py), a request
that needs it gets a 503 and one log line, `/health` a 503 in plain text, a command one line,
the receiver a 503 in JSON; nothing is saved, and the app recovers by itself."""

import json
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, nullcontext
from functools import partial
from signal import SIGTERM

import psycopg2
import pytest
import zodburi
from ZODB import DB
from ZODB.utils import u64

from fftelemetry.resources import telemetry_store_in
from tests.conftest import STUB_ANSWER, Stub, serving

from .harness import (
    BIN,
    app_settings,
    child_environment,
    csrf_token,
    free_port,
    new_session,
    post_form,
    pserve,
    unavailable_said,
    wait_until,
    write_server_ini,
)
from .postgresql import PASSWORD, USER
from .test_zeo_outage import RECORDS, exported_ids, fftelemetry, pending_shown, records_in

pytestmark = pytest.mark.slow

USER_PASSWORD = "long enough password"
CHEAP = {"fftelemetry.password_profile": "cheapest"}
LOST = "the PostgreSQL server cannot be reached (connection to server at"
# RelStorage raises a conflict for a commit that was waiting for a lock: it is rerun
LOST_AS_IT_WAITED = "losing the PostgreSQL server as it waited for a lock"


def register(base, email, browser=None):
    browser = browser or new_session()
    return post_form(browser, f"{base}/register", {"email": email, "password": USER_PASSWORD})


def test_a_lost_postgresql_server_is_a_503_and_the_app_recovers(cluster, tmp_path):
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", app_settings(cluster.database(), **CHEAP), port)
    with pserve(ini, port) as base:
        signed_in = new_session()
        assert register(base, "first@example.org", signed_in).status_code == 200
        visitor = new_session()
        form = visitor.get(f"{base}/register", timeout=30)  # the form, while the server is up
        with cluster.stopped():
            health = new_session().get(f"{base}/health", timeout=60)
            assert (health.status_code, health.text) == (503, "Database unavailable\n")
            assert health.headers["Retry-After"] == "30"
            for path in ("/preferences", "/no-such-page"):
                page = signed_in.get(f"{base}{path}", timeout=60, allow_redirects=False)
                assert page.status_code == 503, (path, page.status_code)
                assert "Database unavailable" in page.text and "Nothing was changed" in page.text
            data = {"email": "second@example.org", "password": USER_PASSWORD,
                    "csrf_token": csrf_token(form.text)}
            refused = visitor.post(f"{base}/register", data=data, timeout=60,
                                   allow_redirects=False)
            assert refused.status_code == 503, refused.text
            assert "Database unavailable" in refused.text and "Welcome!" not in refused.text
            assert "Set-Cookie" not in refused.headers and refused.headers["Retry-After"] == "30"
            log = ini.with_suffix(".log").read_text()
            assert log.count(LOST) == 3, log  # /health's 503 is not logged
            assert "Traceback" not in log and PASSWORD not in log

        wait_until(lambda: register(base, "third@example.org").status_code == 200, 30,
                   "the app to reconnect")
        assert new_session().get(f"{base}/health", timeout=30).text == "OK\n"
        assert signed_in.get(f"{base}/preferences", timeout=30).status_code == 200
        second = post_form(new_session(), f"{base}/login",
                           {"email": "second@example.org", "password": USER_PASSWORD})
        assert second.status_code == 400, "the refused registration was not stored"
    assert "Traceback" not in ini.with_suffix(".log").read_text()


class StoppingReceiver:
    """A stand-in receiver (a bare WSGI app) that stops the PostgreSQL server as a batch comes
    in, then takes it: the sender loses its database between sending and marking the batch."""

    def __init__(self, cluster):
        self.cluster, self.batches = cluster, 0

    def __call__(self, environ, start_response):
        self.batches += 1
        if self.batches == 1:
            self.cluster.stop()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [STUB_ANSWER]


def cron(ini):
    return subprocess.run([str(BIN / "fftelemetry"), "cron", str(ini), "--force"],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=child_environment())


def test_cron_losing_the_postgresql_server_says_so_in_one_line(cluster, tmp_path):
    """The server is stopped as the batch comes in: the mark fails, and cron's lines are the
    sender's, exit status 1. Its use as errored is not tried, as for a lost ZEO server: the write
    would only meet the lost server (or wait for one the network lost), and its `could not write
    …; the change in progress was rolled back` ended cron's lines, as if the run's were."""
    receiver = StoppingReceiver(cluster)
    with serving(receiver) as url:
        settings = app_settings(cluster.database(), **{"fftelemetry.telemetry_url": url}, **CHEAP)
        ini = write_server_ini(tmp_path / "app.ini", settings)
        try:
            lost = cron(ini)
        finally:
            cluster.start()
        # exit status 1, as for a write a lost ZEO server refuses (2 is for a start without it)
        assert lost.returncode == 1, lost.stderr
        assert "Traceback" not in lost.stderr and PASSWORD not in lost.stderr, lost.stderr
        assert lost.stderr.splitlines()[-3:] == [
            "WARNING [fftelemetry.telemetry.sender] Telemetry submission failed: a batch was "
            "sent but could not be marked (the PostgreSQL server cannot be reached); it will be "
            "re-sent.",
            "WARNING [fftelemetry.telemetry.sender] Telemetry submission log not updated: the "
            "PostgreSQL server cannot be reached.",
            "WARNING [fftelemetry.cli.cron] This submission marked no record as sent; the "
            "records not marked stay pending for the next try.",  # the reason said once, above
        ], lost.stderr
        assert "could not write" not in lost.stderr, lost.stderr
        again = cron(ini)  # the batch that could not be marked is sent again
    assert again.returncode == 0, again.stderr
    assert receiver.batches == 2


def test_a_receiver_losing_its_postgresql_server_answers_503_in_json(cluster, tmp_path):
    receiver_ini, port, ini = receiver_and_sender(tmp_path, cluster.database())
    with pserve(receiver_ini, port) as base:
        with cluster.stopped():
            refused = cron(ini)
            stats = new_session().get(f"{base}/stats", timeout=60)
            assert stats.status_code == 503 and stats.headers["Retry-After"] == "30"
            assert stats.json() == {"error": "the receiver's database cannot be reached; nothing "
                                    "was stored, send the batch again later"}
        assert refused.returncode == 1, refused.stderr
        assert ("the receiver answered HTTP 503: the receiver's database cannot be reached; "
                "nothing was stored, send the batch again later; the records stay pending"
                ) in refused.stderr
        log = receiver_ini.with_suffix(".log").read_text()
        assert log.count(LOST) == 2, log
        assert "Traceback" not in log and PASSWORD not in log
        # said once a request, by the view's line: not also in RelStorage's WARNING of the
        # failed connection, nor its ERROR of the failed reconnection, before it
        assert "Unable to connect: " not in log and "] Reconnect " not in log, log
        sent = cron(ini)
        assert sent.returncode == 0, sent.stderr
        assert new_session().get(f"{base}/stats", timeout=60).json()["records"] > 0
    assert "Traceback" not in receiver_ini.with_suffix(".log").read_text()


def test_a_receiver_whose_last_attempt_loses_its_postgresql_server_answers_so(cluster, tmp_path):
    """With one attempt a request, the receiver's commit that waits for a lock as its server is
    stopped ends in RelStorage's conflict (see LOST_AS_IT_WAITED): the answer is the lost
    database's, not "the receiver is busy", and its log line says the lost server."""
    uri, name = named_database(cluster)
    receiver_ini, port, ini = receiver_and_sender(tmp_path, uri, **{"retry.attempts": "1"})
    with pserve(receiver_ini, port):
        assert cron(ini).returncode == 0  # the receiver's store, its objects to lock
        assert fftelemetry("status", ini).communicate(timeout=60)  # its use: a record to send
        refused = stopped_as_it_waits(cluster, name, objects_locked, "the receiver's commit",
                                      partial(cron, ini), timeout=120)
    assert refused.returncode == 1, refused.stderr
    assert ("the receiver answered HTTP 503: the receiver's database cannot be reached; "
            "nothing was stored, send the batch again later; the records stay pending"
            ) in refused.stderr
    log = receiver_ini.with_suffix(".log").read_text()
    assert ("POST /submit: the PostgreSQL server cannot be reached (server closed the "
            "connection unexpectedly") in log, log
    assert "conflicting writes" not in log and "Traceback" not in log and PASSWORD not in log


def test_a_commands_line_never_shows_the_password(cluster, tmp_path):
    """libpq's reason quotes the database's name, which may be the password: the command's line
    hides it, as the web's log line and the start-up's line do. The database is dropped as the
    command's commit waits for a lock the test holds: the rerun's new connection fails with
    libpq's `database "..." does not exist`. (cron's line said it, that of its use as errored
    after its mark met the dropped database: a write no longer tried after a lost server.)"""
    uri = cluster.database(name=PASSWORD)
    ini, _ = app_with_records(tmp_path, uri)
    with objects_locked(cluster, PASSWORD), fftelemetry("delete", "all", "--yes", ini) as run:
        wait_until(lambda: commit_waiting(cluster, PASSWORD), 30, "the command's commit")
        cluster.run("postgres", f'DROP DATABASE "{PASSWORD}" WITH (FORCE)')
        out, err = run.communicate(timeout=60)
    assert run.returncode == 1, err
    said = err.splitlines()[-1]
    assert said.startswith(f"fftelemetry delete: could not delete ({LOST} "), err
    assert 'database "***" does not exist' in said, err
    assert PASSWORD not in err and out == "", err


def test_a_statement_timeout_is_not_a_lost_server(cluster, tmp_path):
    """psycopg2's OperationalError is also a statement cancelled by `statement_timeout` (or a
    lock timeout, a deadlock): the server answered, so the request gets the generic 500 and its
    traceback in the log, not "cannot be reached" and no traceback. (A full disk on the server is
    one too: test_postgresql_full_disk.py.)"""
    uri, name = named_database(cluster)
    cluster.set(name, "statement_timeout", "500ms")  # for RelStorage's sessions, started after
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", app_settings(uri, **CHEAP), port)
    with pserve(ini, port) as base:
        assert new_session().get(f"{base}/health", timeout=30).text == "OK\n"
        with cluster.locked(name):
            page = new_session().get(f"{base}/login", timeout=60)
            assert page.status_code == 500, ini.with_suffix(".log").read_text()
            assert "Something went wrong" in page.text
        log = ini.with_suffix(".log").read_text()
        assert "canceling statement due to statement timeout" in log, log
        assert "Traceback" in log and "cannot be reached" not in log, log
        assert PASSWORD not in log


def test_a_receivers_statement_timeout_is_not_a_lost_server(cluster, tmp_path):
    uri, name = named_database(cluster)
    cluster.set(name, "statement_timeout", "500ms")
    port = free_port()
    ini = write_server_ini(tmp_path / "receiver.ini", {"zodbconn.uri": uri}, port,
                           use="egg:fftelemetry#receiver")
    with pserve(ini, port) as base:
        with cluster.locked(name):
            stats = new_session().get(f"{base}/stats", timeout=60)
        assert stats.status_code == 500, ini.with_suffix(".log").read_text()
        # the receiver's own 500, in JSON as every answer (not waitress's page, as when the view
        # that tells a lost server from another error raised instead of handing it on)
        assert stats.json() == {
            "error": "the receiver failed; nothing was stored, send the batch again later"
        }
    log = ini.with_suffix(".log").read_text()
    assert "canceling statement due to statement timeout" in log and "Traceback" in log, log
    assert "cannot be reached" not in log and PASSWORD not in log, log


def test_a_replica_that_cannot_be_reached_is_logged(cluster, tmp_path):
    """RelStorage's replica_conf: a replica it cannot connect to is logged as it tries the next,
    which connects; that WARNING is the only sign that one is down, at start-up and after (a
    replica_timeout of a millisecond: each request tries the first again)."""
    uri = cluster.database()
    closed = free_port()
    replicas = tmp_path / "replicas.conf"
    replicas.write_text(f"127.0.0.1:{closed}\n127.0.0.1:{cluster.port}\n")
    port = free_port()
    settings = app_settings(f"{uri}?replica_conf={replicas}&replica_timeout=0.001", **CHEAP)
    ini = write_server_ini(tmp_path / "web.ini", settings, port)
    with pserve(ini, port) as base:
        assert new_session().get(f"{base}/login", timeout=30).status_code == 200
    started, serving_ = ini.with_suffix(".log").read_text().split("INFO [waitress] Serving on")
    down = f"Unable to connect to replica 127.0.0.1:{closed}: connection to server at"
    assert down in started and down in serving_, started + serving_
    assert "Traceback" not in serving_ and PASSWORD not in started + serving_


@contextmanager
def objects_locked(cluster, name):
    """Every object of database `name` held by a session of the test's, with a shared advisory
    lock on its oid: RelStorage's commit takes an exclusive one on each object it changes, and
    waits there (its readCurrent, a shared one, does not). The server's stop ends the session."""
    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user=USER, password=PASSWORD,
                            dbname=name)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock_shared(zoid) "
                           "FROM (SELECT DISTINCT zoid FROM object_state) AS objects")
        yield
    finally:
        conn.close()


def commit_waiting(cluster, name):
    """Whether a session of database `name` waits for an advisory lock (a commit, for ours)."""
    return cluster.query(name, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                         "wait_event_type = 'Lock' AND wait_event = 'advisory'", name) == [(1,)]


def named_database(cluster):
    """A new database of the cluster: its URI, and its name."""
    uri = cluster.database()
    return uri, uri.rsplit("/", 1)[1]


def stopped_as_it_waits(cluster, name, hold, what, work, timeout):
    """`work` run in the background while `hold` (objects_locked, held_at_commit) holds the
    commit of database `name` it makes, the server stopped once that commit waits: what `work`
    returned, the server started again."""
    with ThreadPoolExecutor(1) as background:
        with hold(cluster, name):
            running = background.submit(work)
            wait_until(lambda: commit_waiting(cluster, name), 30, what)
            cluster.stop(immediate=True)
        try:
            return running.result(timeout=timeout)
        finally:
            cluster.start()


def command_stopped_as_it_waits(cluster, name, hold, what, *args):
    """`fftelemetry *args` run as stopped_as_it_waits runs its work (`hold` None where the
    caller holds the commit): the finished process, its output and its errors."""
    try:
        with hold(cluster, name) if hold else nullcontext(), fftelemetry(*args) as run:
            wait_until(lambda: commit_waiting(cluster, name), 30, what)
            cluster.stop(immediate=True)
            out, err = run.communicate(timeout=60)
    finally:
        cluster.start()
    return run, out, err


def app_with_records(tmp_path, uri, **settings):
    """The ini of an app on database `uri` that a first `pack` gave records, and how many."""
    ini = write_server_ini(tmp_path / "app.ini", app_settings(uri, **CHEAP, **settings))
    first = fftelemetry("pack", ini)  # a database, with records
    assert first.communicate(timeout=60) and first.returncode == 0
    return ini, records_in(ini)


def receiver_and_sender(tmp_path, uri, **receiver):
    """The ini of a receiver on database `uri`, its port, and the ini of a sender (on a
    FileStorage) whose telemetry goes to it."""
    port = free_port()
    receiver_ini = write_server_ini(tmp_path / "receiver.ini", {"zodbconn.uri": uri, **receiver},
                                    port, use="egg:fftelemetry#receiver")
    settings = {"fftelemetry.telemetry_url": f"http://127.0.0.1:{port}", **CHEAP}
    ini = write_server_ini(tmp_path / "app.ini", app_settings(f"file://{tmp_path}/Data.fs",
                                                              **settings))
    return receiver_ini, port, ini


def admin_and_delete_all_form(base, *others):
    """The administrator's session (the first account), the ids of the records it exports once
    `others` are registered too, and the records page's form that deletes them all."""
    admin = new_session()
    register(base, "owner@example.org", admin)  # the first account is the administrator's
    for email in others:
        register(base, email)
    records = exported_ids(admin, base)
    page = admin.get(f"{base}{RECORDS}", timeout=30)
    form = {"confirm": "yes", "shown": str(len(records)), "csrf_token": csrf_token(page.text)}
    return admin, records, form


def delete_all(admin, base, form):
    """The records page's "Delete all" pressed with `form`: the answer."""
    return admin.post(f"{base}{RECORDS}/delete-all", data=form, timeout=60,
                      allow_redirects=False)


def wait_until_it_reconnects(base):
    wait_until(lambda: new_session().get(f"{base}/health", timeout=30).text == "OK\n", 30,
               "the app to reconnect")


def test_an_admins_delete_whose_commit_meets_a_lost_postgresql_server(cluster, tmp_path):
    """The server is stopped while the delete's commit waits for a lock the test holds: the
    admin gets the 503 page, one log line, and nothing is deleted."""
    uri, name = named_database(cluster)
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", app_settings(uri, **CHEAP), port)
    with pserve(ini, port) as base:
        admin, records, form = admin_and_delete_all_form(base, "second@example.org")
        refused = stopped_as_it_waits(cluster, name, objects_locked, "the delete's commit",
                                      partial(delete_all, admin, base, form), timeout=60)
        assert refused.status_code == 503, refused.text
        assert "Database unavailable" in refused.text and "Nothing was changed" in refused.text
        assert "Set-Cookie" not in refused.headers
        log = ini.with_suffix(".log").read_text()
        assert log.count(LOST) == 1, log
        assert "Traceback" not in log and "lock debug info" not in log, log
        assert PASSWORD not in log and "UnableToLock" not in log
        assert (f"retrying POST {RECORDS}/delete-all after {LOST_AS_IT_WAITED} (attempt 2 of 10)"
                in log), log

        wait_until_it_reconnects(base)
        assert exported_ids(admin, base) == records
        page = admin.get(f"{base}{RECORDS}", timeout=30)
        done = admin.post(f"{base}{RECORDS}/delete-all", timeout=30,
                          data={**form, "csrf_token": csrf_token(page.text)})
        assert f"Deleted {len(records)} records" in done.text, done.text
        assert exported_ids(admin, base) == []


def test_an_admins_delete_whose_last_attempt_meets_a_lost_postgresql_server(cluster, tmp_path):
    """With one attempt a request, the delete's commit that waits for a lock as the server is
    stopped ends in RelStorage's conflict (see LOST_AS_IT_WAITED), not rerun: the admin gets the
    503 page of a lost server, not the "Busy" one of writes that kept conflicting."""
    uri, name = named_database(cluster)
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini",
                           app_settings(uri, **CHEAP, **{"retry.attempts": "1"}), port)
    with pserve(ini, port) as base:
        admin, records, form = admin_and_delete_all_form(base)
        refused = stopped_as_it_waits(cluster, name, objects_locked, "the delete's commit",
                                      partial(delete_all, admin, base, form), timeout=60)
        assert refused.status_code == 503, refused.text
        assert "Database unavailable" in refused.text and "Nothing was changed" in refused.text
        assert refused.headers["Retry-After"] == "30"
        log = ini.with_suffix(".log").read_text()
        assert (f"POST {RECORDS}/delete-all: the PostgreSQL server cannot be reached (server "
                "closed the connection unexpectedly") in log, log
        assert "conflicting writes" not in log and "Traceback" not in log, log
        assert PASSWORD not in log
        wait_until_it_reconnects(base)
        assert exported_ids(admin, base) == records


def test_a_delete_losing_its_postgresql_server_mid_run_says_so(cluster, tmp_path):
    """The server is stopped while the command's commit waits for a lock the test holds: the
    transaction is rerun (see LOST_AS_IT_WAITED), and the rerun stops in one line. (Any other
    command's commit, `status` writing its use say, is the same: test_zeo_outage.py has them.)"""
    command = ("delete", "all", "--yes")
    uri, name = named_database(cluster)
    ini, before = app_with_records(tmp_path, uri)
    run, out, err = command_stopped_as_it_waits(cluster, name, objects_locked,
                                                "the command's commit", *command, ini)
    assert run.returncode == 1, err
    retried, said = err.splitlines()
    assert retried == ("INFO [fftelemetry.scripting] retrying a console transaction after "
                       f"{LOST_AS_IT_WAITED} (attempt 2 of 10)"), err
    assert said.startswith(f"fftelemetry delete: could not delete ({LOST} "), err
    assert said.endswith("); nothing was deleted"), err
    assert PASSWORD not in err and out == ""
    assert records_in(ini) == before


def test_a_delete_whose_last_attempt_loses_its_postgresql_server_says_no_try_again(
    cluster, tmp_path
):
    """With one attempt a transaction, the delete's commit that waits for a lock as the server
    is stopped ends in RelStorage's conflict (see LOST_AS_IT_WAITED): the line says the lost
    server, and not "try again", which is for a busy moment, not for a server to see to."""
    uri, name = named_database(cluster)
    ini, before = app_with_records(tmp_path, uri, **{"retry.attempts": "1"})
    run, out, err = command_stopped_as_it_waits(cluster, name, objects_locked,
                                                "the command's commit",
                                                "delete", "all", "--yes", ini)
    assert run.returncode == 1, err
    said = err.splitlines()[-1]
    assert said.startswith("fftelemetry delete: could not delete (the PostgreSQL server cannot "
                           "be reached ("), err
    assert said.endswith("); nothing was deleted"), err
    assert PASSWORD not in err and out == ""
    assert records_in(ini) == before


def test_a_pack_whose_note_meets_a_lost_postgresql_server_says_it_packed(cluster, tmp_path):
    """RelStorage's pack is done, and the server is stopped while noting it in the store waits
    for a lock the test holds: the line says the pack was done and only its note failed."""
    uri, name = named_database(cluster)
    ini, before = app_with_records(tmp_path, uri)  # its use collected
    run, out, err = command_stopped_as_it_waits(cluster, name, objects_locked,
                                                "the pack's note", "pack", ini)
    assert run.returncode == 1, err
    assert out.startswith("Packed the RelStorage database"), out
    assert "the size after unknown (the server cannot be reached); no history kept." in out, out
    said = err.splitlines()[-1]
    assert said.startswith("fftelemetry pack: the database was packed, but the time of the pack "
                           f"could not be recorded ({LOST} "), err
    assert said.endswith("); the status page still shows the pack before it"), err
    assert "Traceback" not in err and PASSWORD not in err
    assert records_in(ini) == before


def size_cancelled_once_packed(cluster, name):
    """Database `name`'s server answers the query for its size (RelStorage's getSize) as for a
    statement cancelled by its statement_timeout once a pack has marked a transaction packed: a
    function of the database's own, found before PostgreSQL's by the search_path of the
    sessions started after. The pack's own statements are not cancelled, nor the size before."""
    cluster.run(name, """
        CREATE FUNCTION public.pg_database_size(name) RETURNS bigint LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM "transaction" WHERE packed) THEN
                RAISE 'canceling statement due to statement timeout' USING ERRCODE = '57014';
            END IF;
            RETURN pg_catalog.pg_database_size($1);
        END $$""")
    cluster.run(name, f"ALTER DATABASE {name} SET search_path = public, pg_catalog")


def test_a_pack_whose_size_after_is_cancelled_says_it_packed(cluster, tmp_path):
    """A server that answers the size after the pack with an error, not a lost one: the pack
    is done and noted, so its line is printed with the size after unknown and why, and the
    command exits 0 (the error, raised from the line, was said as "could not write (…); the
    change in progress was rolled back", exit 1, with no line of the pack)."""
    uri, name = named_database(cluster)
    ini = write_server_ini(tmp_path / "app.ini", app_settings(uri, **CHEAP))
    first = fftelemetry("status", ini)  # a database, with records, never packed
    assert first.communicate(timeout=60) and first.returncode == 0
    before = records_in(ini)
    size_cancelled_once_packed(cluster, name)
    run = fftelemetry("pack", ini)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert out.startswith("Packed the RelStorage database"), out
    assert (" bytes before, the size after unknown (QueryCanceled: canceling statement due to "
            "statement timeout") in out, out
    assert out.endswith("); no history kept.\n"), out
    assert "cannot be reached" not in out + err and "Traceback" not in err, err
    status = fftelemetry("status", ini)
    shown, _ = status.communicate(timeout=60)
    assert "Database packed: never" not in shown and "Database packed: " in shown, shown
    assert records_in(ini) == before + 1  # + the pack's use, collected on its first run


@pytest.mark.parametrize("check", [(), ("--check",)])
def test_status_whose_read_meets_a_lost_postgresql_server_says_it_could_not_read(
    cluster, tmp_path, check
):
    """`status` writes its use (its first run, telemetry on), then reads. With one attempt a
    transaction, the write that waits for a lock the test holds as the server is stopped ends in
    RelStorage's conflict (see LOST_AS_IT_WAITED), which leaves the use uncollected; the read
    after meets the lost server, and the line says that read failed, not "could not write".
    Exit status 2, as for a server lost before the command starts: `--check` gave 1, a monitor's
    WARNING and its "overdue", for a database it could not read."""
    uri, name = named_database(cluster)
    ini, before = app_with_records(tmp_path, uri, **{"retry.attempts": "1"})
    run, out, err = command_stopped_as_it_waits(cluster, name, objects_locked,
                                                "the write of its use", "status", ini, *check)
    assert run.returncode == 2, err
    said = err.splitlines()[-1]
    # the conflict RelStorage raised for it says what was behind it
    assert "'status' not collected (the PostgreSQL server cannot be reached (" in err, err
    assert said.startswith(f"fftelemetry status: could not read ({LOST} "), err
    assert said.endswith("); nothing was changed"), err
    assert "Traceback" not in err and PASSWORD not in err and out == ""
    assert records_in(ini) == before


@pytest.mark.parametrize("check", [(), ("--check",)])
def test_status_whose_use_meets_a_lost_postgresql_server_exits_2(cluster, tmp_path, check):
    """`status` writes its use (its first run, telemetry on), then reads. The write that waits
    for a lock the test holds as the server is stopped ends in RelStorage's conflict, and its
    rerun meets the lost server: a database it cannot use, 2 as for a failed read, whichever
    step met the server (it exited 1, `--check`'s "overdue", a monitor's WARNING)."""
    uri, name = named_database(cluster)
    ini, before = app_with_records(tmp_path, uri)
    run, out, err = command_stopped_as_it_waits(cluster, name, objects_locked,
                                                "the write of its use", "status", ini, *check)
    assert run.returncode == 2, err
    retried, said = err.splitlines()
    assert retried == ("INFO [fftelemetry.scripting] retrying a console transaction after "
                       f"{LOST_AS_IT_WAITED} (attempt 2 of 10)"), err
    assert said.startswith(f"fftelemetry status: could not write ({LOST} "), err
    assert said.endswith("); the change in progress was rolled back"), err
    assert PASSWORD not in err and out == ""
    assert records_in(ini) == before


@contextmanager
def newest_transaction_locked(cluster, name):
    """The row of the newest transaction of database `name` locked by a session of the test's:
    RelStorage's pack, which marks each transaction packed as it goes, oldest first, waits there
    for the last. The server's stop ends the session."""
    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user=USER, password=PASSWORD,
                            dbname=name)
    try:
        with conn.cursor() as cursor:
            cursor.execute('SELECT tid FROM "transaction" ORDER BY tid DESC LIMIT 1 FOR UPDATE')
        yield
    finally:
        conn.close()


def states_in(cluster, name):
    """How many object states (revisions) RelStorage's tables hold."""
    return cluster.query(name, "SELECT count(*) FROM object_state")[0][0]


def test_a_pack_losing_its_postgresql_server_says_what_relstorage_leaves(cluster, tmp_path):
    """RelStorage's pack deletes rows in place and commits as it goes (every transaction it
    packs, with pack_batch_timeout=0). It waits for the newest transaction's row, which the test
    holds, when the server is stopped: what it deleted before stays deleted, the line says so,
    not a FileStorage's "replaced only once its copy is complete", and the next pack ends it."""
    uri, name = named_database(cluster)
    ini = write_server_ini(tmp_path / "app.ini",
                           app_settings(f"{uri}?pack_batch_timeout=0", **CHEAP))
    for command in (("pack",), ("status",), ("delete", "submitted", "--yes")):
        run = fftelemetry(*command, ini)  # records, then revisions of them a pack drops
        assert run.communicate(timeout=60) and run.returncode == 0
    before, states = records_in(ini), states_in(cluster, name)
    try:
        with newest_transaction_locked(cluster, name), fftelemetry("pack", ini) as run:
            wait_until(lambda: lock_waits(cluster, name) == 1, 30, "the pack")
            packed_before = states_in(cluster, name)
            cluster.stop(immediate=True)
            out, err = run.communicate(timeout=60)
    finally:
        cluster.start()
    assert run.returncode == 1, err
    assert out == ""
    said = err.splitlines()[-1]  # after RelStorage's INFO lines and its failed statement's
    assert said.startswith("fftelemetry pack: the pack failed (the PostgreSQL server cannot be "
                           "reached (server closed the connection unexpectedly"), err
    assert said.endswith(
        "); RelStorage deletes what a pack drops (old revisions, unreachable objects) in "
        "transactions of its own: what it deleted before the failure is gone, the rest stays "
        "until the next pack, and nothing current was lost"), err
    assert "Traceback" not in err and "pack: failed" not in err and PASSWORD not in err
    assert states_in(cluster, name) == packed_before < states
    assert records_in(ini) == before
    again = fftelemetry("pack", ini)
    assert again.communicate(timeout=60) and again.returncode == 0
    assert records_in(ini) == before


def lock_waits(cluster, name):
    return cluster.query(name, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                         "wait_event_type = 'Lock'", name)[0][0]


HELD = 4711  # the advisory lock's key a commit held by held_at_commit waits for


@contextmanager
def held_at_commit(cluster, name):
    """Every commit of database `name` that writes an object held in its COMMIT itself, by a
    deferred constraint trigger on RelStorage's object_state that waits for an advisory lock a
    session of the test's holds: RelStorage has sent COMMIT, in tpc_finish, the second phase.
    The server's stop ends the session; the trigger stays, and lets every commit after it by
    (its shared lock, taken for the transaction, is held by nobody else)."""
    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user=USER, password=PASSWORD,
                            dbname=name)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "CREATE FUNCTION held() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN PERFORM pg_advisory_xact_lock_shared({HELD}); RETURN NULL; END $$;"
                "CREATE CONSTRAINT TRIGGER held AFTER INSERT OR UPDATE ON object_state "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION held();"
                f"SELECT pg_advisory_lock({HELD})"
            )
        yield
    finally:
        conn.close()


# what is said of a commit that lost its server in its second phase: saved or not, unknown
MAY_HAVE_BEEN_SAVED = "it may have been saved or not"


def test_an_admins_delete_whose_commit_is_lost_as_it_is_saved(cluster, tmp_path):
    """The server is stopped while the delete's COMMIT waits (in the second phase of the
    two-phase commit): whether it was saved is unknown, so the 503 page does not say "Nothing
    was changed", and the request is not run again."""
    uri, name = named_database(cluster)
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", app_settings(uri, **CHEAP), port)
    with pserve(ini, port) as base:
        admin, records, form = admin_and_delete_all_form(base)
        refused = stopped_as_it_waits(cluster, name, held_at_commit, "the delete's COMMIT",
                                      partial(delete_all, admin, base, form), timeout=60)
        assert refused.status_code == 503, refused.text
        assert "Database unavailable" in refused.text and MAY_HAVE_BEEN_SAVED in refused.text
        assert "Nothing was changed" not in refused.text and "Set-Cookie" not in refused.headers
        log = ini.with_suffix(".log").read_text()
        assert (f"POST {RECORDS}/delete-all: the PostgreSQL server cannot be reached (server "
                "closed the connection unexpectedly") in log, log
        assert f"; {MAY_HAVE_BEEN_SAVED}" in log and "nothing was changed" not in log, log
        assert "retrying" not in log and "Traceback" not in log and PASSWORD not in log, log
        wait_until_it_reconnects(base)
        assert exported_ids(admin, base) == records  # its COMMIT never ended: not saved here


def test_a_delete_whose_commit_is_lost_as_it_is_saved_says_it_may_be_done(cluster, tmp_path):
    """The server is stopped while the command's COMMIT waits (the second phase): its line says
    the delete may have been done or not, not "nothing was deleted", and it is not rerun."""
    uri, name = named_database(cluster)
    ini, before = app_with_records(tmp_path, uri)
    run, out, err = command_stopped_as_it_waits(cluster, name, held_at_commit,
                                                "the command's COMMIT",
                                                "delete", "all", "--yes", ini)
    assert run.returncode == 1, err
    said = err.splitlines()[-1]
    assert said.startswith("fftelemetry delete: could not delete (the PostgreSQL server cannot "
                           "be reached (server closed the connection unexpectedly"), err
    assert said.endswith(") as the delete was being saved: the records may have been deleted "
                         "or not; run it without --yes to see what is left"), err
    assert "retrying" not in err and "Traceback" not in err and PASSWORD not in err, err
    assert out == ""
    assert records_in(ini) == before  # its COMMIT never ended: not saved here


def test_a_receiver_whose_commit_is_lost_as_it_is_saved_says_it_may_be_stored(cluster, tmp_path):
    """The receiver's COMMIT of a batch waits (the second phase) as its server is stopped: the
    answer says the batch may have been stored or not, not "nothing was stored"; the sender
    keeps its records pending, right either way (the receiver counts a record once)."""
    uri, name = named_database(cluster)
    receiver_ini, port, ini = receiver_and_sender(tmp_path, uri)
    with pserve(receiver_ini, port):
        assert cron(ini).returncode == 0  # the receiver's store
        assert fftelemetry("status", ini).communicate(timeout=60)  # its use: a record to send
        refused = stopped_as_it_waits(cluster, name, held_at_commit, "the receiver's COMMIT",
                                      partial(cron, ini), timeout=120)
    assert refused.returncode == 1, refused.stderr
    assert ("the receiver answered HTTP 503: the receiver's database server went away as the "
            "batch was being stored: it may have been stored or not; send the batch again later "
            "(its records are counted once); the records stay pending") in refused.stderr
    log = receiver_ini.with_suffix(".log").read_text()
    assert ("POST /submit: the PostgreSQL server cannot be reached (server closed the "
            "connection unexpectedly") in log, log
    assert f"; {MAY_HAVE_BEEN_SAVED}" in log and "nothing was stored" not in log, log
    assert "retrying" not in log and "Traceback" not in log and PASSWORD not in log, log


class HoldingReceiver:
    """A stand-in receiver that, as the first batch comes in, holds every commit of the
    sender's database at its COMMIT (held_at_commit), then takes the batch: the sender's mark
    of it waits in its second phase. `held` ends the hold."""

    def __init__(self, cluster, name):
        self.cluster, self.name, self.held = cluster, name, ExitStack()
        self.batches = 0

    def __call__(self, environ, start_response):
        self.batches += 1
        if self.batches == 1:
            self.held.enter_context(held_at_commit(self.cluster, self.name))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [STUB_ANSWER]


def test_cron_whose_mark_is_lost_as_it_is_saved_says_it_may_be_marked(cluster, tmp_path):
    """The server is stopped while the COMMIT of the batch's mark waits (the second phase): the
    sender says the batch may have been marked or not, not "could not be marked"; its records,
    pending or not, are right either way (the receiver counts a record once)."""
    uri, name = named_database(cluster)
    receiver = HoldingReceiver(cluster, name)
    with serving(receiver) as url, receiver.held:
        settings = app_settings(uri, **{"fftelemetry.telemetry_url": url}, **CHEAP)
        ini = write_server_ini(tmp_path / "app.ini", settings)
        run, out, err = command_stopped_as_it_waits(cluster, name, None, "the mark's COMMIT",
                                                    "cron", ini, "--force")
        assert run.returncode == 1, err
        assert ("Telemetry submission failed: a batch was sent, which may have been marked as "
                "sent or not (the PostgreSQL server cannot be reached, as the mark was being "
                "saved); if not, it will be re-sent.") in err, err
        assert "could not be marked" not in err and "Traceback" not in err, err
        assert err.splitlines()[-1] == (
            "WARNING [fftelemetry.cli.cron] This submission sent and marked 0 records, and maybe "
            "the batch it was marking; the records not marked stay pending for the next try."
        ), err
        assert PASSWORD not in err and out == ""
        again = cron(ini)  # its COMMIT never ended, so not marked here: the batch is sent again
        assert again.returncode == 0, again.stderr
        assert "Sent 1 record" in again.stderr, again.stderr


def test_cron_whose_mark_is_lost_as_it_is_saved_says_the_batch_after_it_goes_again(cluster,
                                                                                   tmp_path):
    """As above, with batches of one record: the second was sent as the first's mark waited,
    and stays pending whatever became of the first's, which the sender's line says."""
    uri, name = named_database(cluster)
    receiver = HoldingReceiver(cluster, name)
    with serving(receiver) as url, receiver.held:
        settings = app_settings(uri, **{"fftelemetry.telemetry_url": url,
                                        "fftelemetry.batch_size": "1"}, **CHEAP)
        ini = write_server_ini(tmp_path / "app.ini", settings)
        made = fftelemetry("status", ini)  # the database, its use a record to send
        assert made.communicate(timeout=60) and made.returncode == 0
        run, _, err = command_stopped_as_it_waits(cluster, name, None, "the mark's COMMIT",
                                                  "cron", ini, "--force")
        assert run.returncode == 1, err
        assert ("Telemetry submission failed: a batch was sent, which may have been marked as "
                "sent or not (the PostgreSQL server cannot be reached, as the mark was being "
                "saved); if not, it will be re-sent, and the batch sent after it will be in any "
                "case.") in err, err
    # not `receiver.batches == 2`: the second POST is submitted before the mark, deterministically,
    # but whether it reaches the receiver before the run cuts it is a race


class GatedReceiver:
    """A stand-in receiver that takes every batch at once but the second, whose answer waits
    until `go` is set: the sender marks the first batch meanwhile (its POST of the second went
    out before), then waits for the second's answer."""

    def __init__(self):
        self.batches, self.second, self.go = 0, threading.Event(), threading.Event()

    def __call__(self, environ, start_response):
        self.batches += 1
        if self.batches == 2:
            self.second.set()
            self.go.wait(60)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [STUB_ANSWER]


def test_submit_now_losing_the_server_after_a_batch_says_what_was_sent(cluster, tmp_path):
    """One record a batch: the first is sent and marked, then the mark of the second waits for
    a lock the test holds as the server is stopped (the run's closing abort, which RelStorage
    asks of the server, fails too). The 503 page says the first record was sent and marked and
    the second will be re-sent, not "Nothing was changed"."""
    uri, name = named_database(cluster)
    receiver = GatedReceiver()
    port = free_port()
    with serving(receiver) as url:
        settings = app_settings(uri, **CHEAP, **{"fftelemetry.telemetry_url": url,
                                                 "fftelemetry.batch_size": "1"})
        ini = write_server_ini(tmp_path / "web.ini", settings, port)
        with pserve(ini, port) as base:
            admin, records, _ = admin_and_delete_all_form(base, "other@example.org")
            assert len(records) >= 2, records
            page = admin.get(f"{base}{RECORDS}", timeout=30)
            press = partial(admin.post, f"{base}{RECORDS}/submit", timeout=120,
                            data={"csrf_token": csrf_token(page.text)})
            with ThreadPoolExecutor(1) as background:
                pressed = background.submit(press)
                try:
                    assert receiver.second.wait(60), "the second batch to come in"
                    wait_until(lambda: pending_shown(admin, base) == len(records) - 1, 30,
                               "the first batch's mark")
                    with objects_locked(cluster, name):
                        receiver.go.set()
                        wait_until(lambda: commit_waiting(cluster, name), 30,
                                   "the second batch's mark")
                        cluster.stop(immediate=True)
                    refused = pressed.result(timeout=120)
                finally:
                    receiver.go.set()
                    cluster.start()
            assert refused.status_code == 503, refused.text
            assert "Database unavailable" in refused.text, refused.text
            assert "Nothing was changed" not in refused.text, refused.text
            assert ("Sent 1 record, then the submission failed: a batch was sent but could not "
                    "be marked (the PostgreSQL server cannot be reached); it will be re-sent. "
                    "The other records stay pending for the next try. What is still pending goes "
                    "with the next fftelemetry cron run, or press") in refused.text
            assert "again once the server is back" in refused.text
            assert refused.headers["Retry-After"] == "30"
            log = ini.with_suffix(".log").read_text()
            assert "Traceback" not in log and PASSWORD not in log, log
            assert ("Telemetry submission log not updated: the PostgreSQL server cannot be "
                    "reached.") in log, log
            wait_until_it_reconnects(base)
            assert pending_shown(admin, base) == len(records) - 1  # the first batch's mark stands


@contextmanager
def submission_log_locked(cluster, name, uri):
    """The store and its submission log (the objects a run's log writes, and a batch's mark does
    not) held by a session of the test's, with shared advisory locks on their oids, as
    objects_locked holds every object: the log's commit waits there."""
    factory, db_args = zodburi.resolve_uri(uri)
    db = DB(factory(), **db_args)
    try:
        with db.transaction() as conn:
            store = telemetry_store_in(conn.root())
            zoids = [u64(store._p_oid), u64(store.log._p_oid)]
    finally:
        db.close()
    conn = psycopg2.connect(host="127.0.0.1", port=cluster.port, user=USER, password=PASSWORD,
                            dbname=name)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock_shared(zoid) FROM unnest(%s) AS zoid",
                           (zoids,))
        yield
    finally:
        conn.close()


def test_submit_now_losing_the_server_once_all_was_sent_says_nothing_is_left(cluster, tmp_path):
    """Every record sent and marked in one batch, then the run's log waits for a lock the test
    holds as the server is stopped (and the run's closing abort fails on it): the 503 page said
    "Sent N records" and then "Try again in a minute", with nothing left to send."""
    uri, name = named_database(cluster)
    port = free_port()
    receiver = Stub()
    with serving(receiver) as url:
        settings = app_settings(uri, **CHEAP, **{"fftelemetry.telemetry_url": url})
        ini = write_server_ini(tmp_path / "web.ini", settings, port)
        with pserve(ini, port) as base:
            admin, records, _ = admin_and_delete_all_form(base, "other@example.org")
            page = admin.get(f"{base}{RECORDS}", timeout=30)
            press = partial(admin.post, f"{base}{RECORDS}/submit", timeout=120,
                            data={"csrf_token": csrf_token(page.text)})
            refused = stopped_as_it_waits(
                cluster, name, partial(submission_log_locked, uri=uri), "the run's log", press,
                120,
            )
            assert refused.status_code == 503, refused.text
            assert (f"The database server went away as the submission ended. Sent "
                    f"{len(records)} records; the receiver's reference is ") in refused.text
            assert ("Nothing is left to send again; the submission log on the status page may "
                    "not show this submission.") in refused.text
            assert "Try again" not in refused.text
            wait_until_it_reconnects(base)
            assert len(receiver.requests) == 1
            assert pending_shown(admin, base) == 0  # every record marked: none to send again


def submitted_in(ini):
    """How many records are marked as submitted, by `status --json`."""
    out, _ = fftelemetry("status", ini, "--json").communicate(timeout=60)
    return json.loads(out)["counts"]["submitted"]


def test_cron_stopped_with_its_postgresql_server_lost_says_it_was_stopped(cluster, tmp_path):
    """One record a batch: the first is sent and marked, the server is stopped while the run
    waits for the second's answer, then SIGTERM. The run's closing abort, which RelStorage asks
    of the lost server, fails too: that error took the stop's place (exit status 1, `could not
    write`, what was sent and marked unsaid)."""
    receiver = GatedReceiver()
    with serving(receiver) as url:
        sending = {"fftelemetry.telemetry_url": url, "fftelemetry.batch_size": "1"}
        ini, _ = app_with_records(tmp_path, cluster.database(), **sending)
        try:
            with fftelemetry("cron", ini, "--force") as run:
                assert receiver.second.wait(60), "the second batch to come in"
                wait_until(lambda: submitted_in(ini) == 1, 30, "the first batch's mark")
                cluster.stop(immediate=True)
                run.send_signal(SIGTERM)
                _, err = run.communicate(timeout=60)
        finally:
            receiver.go.set()
            cluster.start()
    assert run.returncode == 143, err
    assert "Traceback" not in err and PASSWORD not in err, err
    assert err.splitlines()[-2:] == [
        "WARNING [fftelemetry.telemetry.sender] Telemetry submission log not updated: the "
        "PostgreSQL server cannot be reached.",
        "fftelemetry cron: stopped by SIGTERM: 1 record sent and marked, the rest stay pending",
    ], err
    assert submitted_in(ini) == 1


class RefusingReceiver(StoppingReceiver):
    """A stand-in receiver that stops the PostgreSQL server as a batch comes in, then refuses
    the batch: the sender sends nothing, and its run's end (the log of the run, RelStorage's
    closing abort) meets the lost server."""

    def __call__(self, environ, start_response):
        self.batches += 1
        self.cluster.stop()
        start_response("500 Internal Server Error", [("Content-Type", "application/json")])
        return [b'{"error": "the receiver failed"}']


def test_submit_now_refused_and_losing_the_server_says_nothing_was_sent(cluster, tmp_path):
    """The receiver refuses the batch as the server stops: the run's end (its log, RelStorage's
    closing abort) meets the lost server. The 503 page says so in one statement: it said the
    records stay pending, and then that what is still pending goes with the next run."""
    uri, _ = named_database(cluster)
    port = free_port()
    receiver = RefusingReceiver(cluster)
    with serving(receiver) as url:
        settings = app_settings(uri, **CHEAP, **{"fftelemetry.telemetry_url": url})
        ini = write_server_ini(tmp_path / "web.ini", settings, port)
        with pserve(ini, port) as base:
            admin, records, _ = admin_and_delete_all_form(base)
            page = admin.get(f"{base}{RECORDS}", timeout=30)
            try:
                refused = admin.post(f"{base}{RECORDS}/submit", timeout=120,
                                     data={"csrf_token": csrf_token(page.text)})
            finally:
                cluster.start()
            assert refused.status_code == 503 and receiver.batches == 1, refused.text
            said = unavailable_said(refused.text)
            assert said == (  # the whole of it: nothing said twice
                "Nothing was sent: the receiver answered HTTP 500: the receiver failed. The "
                "database server went away too (the PostgreSQL server cannot be reached), so all "
                "the records stay pending and go with the next fftelemetry cron run, or press "
                "\"Submit pending records now\" again once the server is back; if it keeps "
                "happening, tell the administrator."
            ), said
            wait_until_it_reconnects(base)
            assert pending_shown(admin, base) == len(records)
