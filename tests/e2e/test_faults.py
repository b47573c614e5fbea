"""Faults: the cron command killed mid-submission, a corrupted .env, an unreadable ini. Each ends
in a clear error or a clean recovery, and no record is lost or marked twice."""

import logging
import os
import re
import subprocess
import sys
import threading
from contextlib import contextmanager
from signal import SIGINT, SIGKILL, SIGTERM

import pytest
import webtest
from ZEO.ClientStorage import ClientStorage
from ZODB import DB
from ZODB.FileStorage import FileStorage
from ZODB.fsIndex import fsIndex

from fftelemetry.receiver import main as receiver_main
from fftelemetry.resources import telemetry_store_in
from fftelemetry.resources.store import SUBMITTED
from fftelemetry.scripting import close_databases
from tests.conftest import RunningReceiver, serving
from tests.functional.test_faults import EVOLVE_NOT_WRITTEN
from tests.functional.test_generations import WITH_A_STEP

from .harness import (
    BIN,
    app_settings,
    child_environment,
    free_port,
    runzeo,
    wait_until,
    write_server_ini,
    zeo_uri,
)
from .test_zeo_outage import with_zeo_waits_logged

pytestmark = pytest.mark.slow


@contextmanager
def store_of(path):
    db = DB(FileStorage(str(path)))
    try:
        with db.transaction() as conn:
            yield telemetry_store_in(conn.root())
    finally:
        db.close()


def seed(path, count):
    with store_of(path) as store:
        for i in range(count):
            store.add_feature("system.users.count", i)


def fftelemetry(*args, timeout=120):
    return subprocess.run(
        [str(BIN / "fftelemetry"), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, check=False, env=child_environment(),
    )


def one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_cron_killed_mid_submission_then_rerun_marks_each_record_once(tmp_path, receiver):
    total = 30_000
    data = tmp_path / "Data.fs"
    seed(data, total)
    ini = write_server_ini(
        tmp_path / "app.ini",
        app_settings(
            f"file://{data}",
            **{"fftelemetry.telemetry_url": receiver.url, "fftelemetry.batch_size": "100"},
        ),
    )
    cron = subprocess.Popen(
        [str(BIN / "fftelemetry"), "cron", str(ini), "--force"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_environment(),
    )
    try:
        wait_until(lambda: receiver.stats()["records"] >= 3_000, 60, "the first batches")
    finally:
        cron.send_signal(SIGKILL)
        cron.wait()
    assert cron.returncode == -SIGKILL
    received_before_rerun = receiver.stats()["records"]
    assert received_before_rerun < total, "the cron run ended before it could be killed"

    rerun = fftelemetry("cron", ini, "--force")
    assert rerun.returncode == 0, rerun.stderr
    total += 1  # the first run collected its own first use (system.command.executed: cron)
    assert_each_record_sent_and_marked_once(receiver, data, total)


def assert_each_record_sent_and_marked_once(receiver, data, total):
    batches = receiver.read(
        lambda root: {uuid: set(batch.record_ids) for uuid, batch in root.batches.items()}
    )
    receiver_ids = receiver.read(lambda root: {r.id for r in root.records.values()})
    assert receiver.stats()["records"] == len(receiver_ids) == total
    with store_of(data) as store:
        assert store.counts() == {"all": total, "pending": 0, "submitted": total}
        records = [record for _, record in store.page(SUBMITTED, size=total + 1)]
    assert len({record.id for record in records}) == total
    assert {record.id for record in records} == receiver_ids
    for record in records:  # marked once, with the batch that really holds it
        assert record.id in batches[record.submission_uuid]


class HeldAnswer:
    """The real receiver's app behind a gate: the answer to request number `held` (stored by the
    receiver all the same) waits until `release` is set; `holding` is set once it waits."""

    def __init__(self, app, held):
        self.app, self.held = app, held
        self.count, self.lock = 0, threading.Lock()
        self.holding, self.release = threading.Event(), threading.Event()

    def __call__(self, environ, start_response):
        with self.lock:
            self.count += 1
            number = self.count
        answer = list(self.app(environ, start_response))
        if number == self.held:
            self.holding.set()
            self.release.wait(60)
        return answer


@contextmanager
def receiver_holding_answer(folder, held):
    """(RunningReceiver, HeldAnswer): the real receiver on folder/receiver.fs, its answer to
    request number `held` held."""
    app = receiver_main({}, **{"zodbconn.uri": f"file://{folder}/receiver.fs"})
    gate = HeldAnswer(app, held)
    try:
        with serving(gate) as url:
            try:
                yield RunningReceiver(url, app), gate
            finally:
                gate.release.set()
    finally:
        close_databases(app.registry)


STOPPED = re.compile(
    r"fftelemetry cron: stopped by SIGTERM: (\d+) records sent and marked, the rest stay pending"
)


def test_cron_stopped_by_sigterm_mid_submission_closes_the_database(tmp_path):
    # SIGTERM (systemd stopping a timer's service, `docker stop`) ended cron at once: no saved
    # index (the next open read the whole file again), and a log with no word of why it ended
    total, batch_size, answered = 20_000, 200, 30
    data = tmp_path / "Data.fs"
    seed(data, total)
    os.remove(f"{data}.index")  # the seeding's; the run's own close is to write it again
    with receiver_holding_answer(tmp_path, answered + 1) as (receiver, gate):
        ini = write_server_ini(tmp_path / "app.ini", app_settings(
            f"file://{data}",
            **{"fftelemetry.telemetry_url": receiver.url, "fftelemetry.batch_size": batch_size},
        ))
        cron = subprocess.Popen(
            [str(BIN / "fftelemetry"), "cron", str(ini), "--force"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=child_environment(),
        )
        try:
            assert gate.holding.wait(60), "the batch after the answered ones did not come"
            cron.send_signal(SIGTERM)
            _, stderr = cron.communicate(timeout=30)
        finally:
            if cron.poll() is None:
                cron.kill()
                cron.wait()
        assert cron.returncode == 143, stderr
        assert "Traceback" not in stderr, stderr
        said = STOPPED.fullmatch(stderr.splitlines()[-1])
        assert said, stderr
        saved = fsIndex.load(f"{data}.index")
        assert saved["pos"] == os.path.getsize(data), "the database was closed"
        with store_of(data) as store:
            # only batches answered: the last one's mark may have been cut before its commit
            assert store.counts()["submitted"] == int(said[1])
            assert int(said[1]) in ((answered - 1) * batch_size, answered * batch_size)

        gate.release.set()
        rerun = fftelemetry("cron", ini, "--force")
        assert rerun.returncode == 0, rerun.stderr
        # the held batch reached the receiver unmarked, and is sent again: stored once
        assert_each_record_sent_and_marked_once(receiver, data, total + 1)  # + cron's first use


def stop_cron_as_it_waits(ini, gate, stop, before_the_stop=lambda cron: ""):
    """`fftelemetry cron --force` stopped by signal `stop` once the receiver holds its answer
    (`gate`), after before_the_stop(cron), which returns what it read of cron's standard error:
    the finished process and its standard error."""
    cron = subprocess.Popen(
        [str(BIN / "fftelemetry"), "cron", str(ini), "--force"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=child_environment(),
    )
    try:
        assert gate.holding.wait(60), "the held batch did not come"
        read = before_the_stop(cron)
        cron.send_signal(stop)
        _, stderr = cron.communicate(timeout=60)
        stderr = read + stderr
    finally:
        if cron.poll() is None:
            cron.kill()
            cron.wait()
    assert "Traceback" not in stderr, stderr
    return cron, stderr


STOPPED_AS_SAID = re.compile(
    r"fftelemetry cron: (?:stopped by SIGTERM|interrupted): (\d+) records sent and marked, the "
    r"rest stay pending"
)


@pytest.mark.parametrize(("stop", "exit_status", "how"), [
    (SIGTERM, 143, "stopped by SIGTERM"),
    (SIGINT, 130, "interrupted (Ctrl-C)"),
])
def test_cron_stopped_mid_submission_is_kept_in_the_submission_log(tmp_path, stop, exit_status,
                                                                   how):
    # it was not: the status page showed the run before it as the last one, and cron stopped by
    # a systemd timer every week left "overdue" to see, never why
    total, batch_size, answered = 1_000, 100, 3
    data = tmp_path / "Data.fs"
    seed(data, total)
    with receiver_holding_answer(tmp_path, answered + 1) as (receiver, gate):
        ini = write_server_ini(tmp_path / "app.ini", app_settings(
            f"file://{data}",
            **{"fftelemetry.telemetry_url": receiver.url, "fftelemetry.batch_size": batch_size},
        ))
        cron, stderr = stop_cron_as_it_waits(ini, gate, stop)
    assert cron.returncode == exit_status, stderr
    said = STOPPED_AS_SAID.fullmatch(stderr.splitlines()[-1])
    assert said, stderr
    sent = int(said[1])
    with store_of(data) as store:
        [logged] = store.submissions()
        assert store.counts()["submitted"] == sent
        assert store.last_success_at is None
    error = f"{how} after {sent} records sent and marked; the rest stay pending"
    assert (logged.sent, logged.status, logged.uuid, logged.error) == (sent, None, None, error)
    shown = fftelemetry("status", ini)
    assert f"sent {sent}  no answer  FAILED: {error}" in shown.stdout, shown.stdout
    assert "Next submission due: now (on the next cron run)" in shown.stdout, shown.stdout


def test_cron_stopped_with_its_zeo_server_away_loses_nothing_more(tmp_path):
    # the stopped run's entry in the submission log is not tried (its abort would wait ZEO's
    # wait_timeout for the server): one WARNING line, then the command's own, exit status 143
    batch_size = 100
    data = tmp_path / "Data.fs"
    seed(data, 2 * batch_size - 1)  # and cron's first use: two batches, the second held
    with receiver_holding_answer(tmp_path, 2) as (receiver, gate), runzeo(tmp_path) as zeo:
        ini = with_zeo_waits_logged(write_server_ini(tmp_path / "app.ini", app_settings(
            zeo_uri(tmp_path, wait_timeout=2),
            **{"fftelemetry.telemetry_url": receiver.url, "fftelemetry.batch_size": batch_size},
        )))

        def server_lost_once_the_first_batch_is_marked(cron):
            # then the run only waits for the held answer: no read or write of it meets the
            # lost server before the stop
            db = DB(ClientStorage(str(tmp_path / "zeo.sock"), wait_timeout=10))
            try:
                wait_until(lambda: submitted_by_zeo(db) == batch_size, 30, "the first mark")
            finally:
                db.close()
            zeo.kill()
            zeo.wait(10)
            return read_until(cron.stderr, "Disconnected from storage")  # cron's client knows

        cron, stderr = stop_cron_as_it_waits(ini, gate, SIGTERM,
                                             server_lost_once_the_first_batch_is_marked)
    assert cron.returncode == 143, stderr
    assert "ClientDisconnected in tpc_abort() ignored" not in stderr, stderr
    assert stderr.splitlines()[-2:] == [
        "WARNING [fftelemetry.telemetry.sender] Telemetry submission log not updated: the ZEO "
        "server cannot be reached.",
        f"fftelemetry cron: stopped by SIGTERM: {batch_size} records sent and marked, the rest "
        "stay pending",
    ], stderr
    with store_of(data) as store:
        assert store.submissions() == []
        assert store.counts() == {"all": 2 * batch_size, "pending": batch_size,
                                  "submitted": batch_size}


def read_until(stream, words):
    """The lines read from `stream` up to the first that holds `words` (or its end: the held
    answer is let go after 60 s, and cron ends)."""
    read = ""
    while line := stream.readline():
        read += line
        if words in line:
            break
    return read


def submitted_by_zeo(db):
    with db.transaction() as conn:
        return telemetry_store_in(conn.root()).counts()["submitted"]


def test_pack_stopped_by_sigterm_during_its_copy_leaves_the_database_as_it_was(tmp_path):
    # ZODB removes its unfinished copy on an OSError only: SIGTERM (or Ctrl-C) left Data.fs.pack,
    # as large as the database, until the next pack
    total = 200_000  # a copy that takes a while (a second or so): SIGTERM is sent during it
    data, copy = tmp_path / "Data.fs", tmp_path / "Data.fs.pack"
    seed(data, total)
    ini = write_server_ini(tmp_path / "app.ini", app_settings(f"file://{data}"))
    pack = subprocess.Popen(
        [str(BIN / "fftelemetry"), "pack", str(ini)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_environment(),
    )
    try:
        wait_until(copy.exists, 120, "the pack's copy")
        pack.send_signal(SIGTERM)
        stdout, stderr = pack.communicate(timeout=60)
    finally:
        if pack.poll() is None:
            pack.kill()
            pack.wait()
    assert pack.returncode == 143, stderr
    assert "Traceback" not in stderr and stdout == "", stderr
    assert stderr.splitlines()[-1] == (
        "fftelemetry pack: stopped by SIGTERM; the change in progress, if any, was rolled back"
    )
    assert not copy.exists()
    assert fsIndex.load(f"{data}.index")["pos"] == os.path.getsize(data)
    with store_of(data) as store:
        assert store.counts()["all"] == total + 1  # + pack's first use
    again = fftelemetry("pack", ini)
    assert again.returncode == 0 and "Packed" in again.stdout, again.stderr


def test_a_corrupted_dotenv_stops_commands_and_server_in_one_line(tmp_path):
    data = tmp_path / "Data.fs"
    seed(data, 10)
    port = free_port()
    ini = write_server_ini(tmp_path / "app.ini", app_settings(f"file://{data}"), port)
    dotenv = tmp_path / ".env"
    dotenv.write_text('FFTELEMETRY_SECRET=abc\nSEND_TELEMETRY="tr')  # cut off mid-value

    status = fftelemetry("status", ini)
    assert status.returncode == 2
    line = one_line_error(status)
    assert ".env" in line and "line 2" in line

    server = subprocess.run(
        [str(BIN / "pserve"), str(ini)],
        capture_output=True, text=True, timeout=60, check=False, env=child_environment(),
    )
    assert server.returncode != 0
    assert "Traceback" not in server.stderr
    assert server.stderr.strip().splitlines()[-1].startswith("fftelemetry: ")
    assert "line 2 of the .env file" in server.stderr

    dotenv.write_text("SEND_TELEMETRY=true\n")
    status = fftelemetry("status", ini)
    assert status.returncode == 0, status.stderr
    with store_of(data) as store:
        assert store.counts()["all"] == 10 + 1  # what was there, and `status` first used


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00garbage", b"[app:main\nuse = egg:fftelemetry\n", b"[server:main]\nport = 1\n"],
    ids=["binary", "truncated-section", "no-app-section"],
)
def test_an_unreadable_ini_is_one_line_and_exit_2(tmp_path, content):
    ini = tmp_path / "broken.ini"
    ini.write_bytes(content)
    result = fftelemetry("status", ini)
    assert result.returncode == 2
    assert str(ini) in one_line_error(result)


def test_an_ini_that_is_a_folder_is_one_line_and_exit_2(tmp_path):
    result = fftelemetry("cron", tmp_path)
    assert result.returncode == 2
    assert one_line_error(result).endswith(f"{tmp_path} is a folder, not a config file")


def test_a_full_disk_fails_a_command_in_one_line_and_loses_nothing(tmp_path):
    """RLIMIT_FSIZE makes every write past the file's size fail (EFBIG), as a full disk would."""
    import resource
    import signal

    data = tmp_path / "Data.fs"
    seed(data, 50)
    ini = write_server_ini(tmp_path / "app.ini", app_settings(f"file://{data}"))
    limit = data.stat().st_size

    def no_room():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    # Not measured by coverage: its data file would hit the same limit on the way out.
    unmeasured = {k: v for k, v in child_environment().items() if not k.startswith("COVERAGE_")}
    result = subprocess.run(
        [str(BIN / "fftelemetry"), "instructions", "install", str(ini)],
        capture_output=True, text=True, timeout=60, check=False, env=unmeasured,
        preexec_fn=no_room,
    )
    assert result.returncode == 1
    line = one_line_error(result)
    assert line.startswith("fftelemetry instructions: could not write")
    assert "File too large" in line
    with store_of(data) as store:
        assert store.counts()["all"] == 50

    again = fftelemetry("instructions", "install", ini)
    assert again.returncode == 0, again.stderr
    with store_of(data) as store:
        assert store.counts()["all"] == 50 + 1 + 4  # the command's first use, the system facts


def test_a_full_disk_on_the_zeo_server_is_said_as_such_not_as_server_exception(tmp_path, receiver):
    """ZEO's client raises its server's OSError as ServerException('builtins.OSError', (27, 'File
    too large')): cron's and delete's lines, the submission log's, give the system's reason."""
    settings = app_settings(zeo_uri(tmp_path, wait_timeout=5), **{
        "fftelemetry.telemetry_url": receiver.url})
    ini = write_server_ini(tmp_path / "app.ini", settings)
    with runzeo(tmp_path):
        assert fftelemetry("cron", ini, "--force").returncode == 0  # cron's use sent, noted
        assert fftelemetry("instructions", "install", ini).returncode == 0  # 5 records pending
    with runzeo(tmp_path, file_size_limit=(tmp_path / "Data.fs").stat().st_size):
        cron = fftelemetry("cron", ini, "--force")
        delete = fftelemetry("delete", "all", ini, "--yes")
    assert cron.returncode == 1, cron.stderr
    assert ("Telemetry submission failed: a batch was sent but could not be marked (File too "
            "large); it will be re-sent.") in cron.stderr
    assert "Telemetry submission log not updated: File too large." in cron.stderr
    assert "ServerException" not in cron.stderr
    assert delete.returncode == 1
    assert one_line_error(delete) == ("fftelemetry delete: could not delete (OSError: [Errno 27] "
                                      "File too large); nothing was deleted")
    assert receiver.stats()["batches"] == 2  # the batch was taken: its re-send is counted once


def test_an_evolve_on_the_zeo_servers_full_disk_stops_in_one_line(tmp_path):
    """The ZEO server's OSError is a full disk for an evolve step too, as on a file:// database:
    its one line with the reason, not "failed (ServerException: ('builtins.OSError', …))" after
    an ERROR line with a traceback."""
    ini = write_server_ini(tmp_path / "app.ini", app_settings(zeo_uri(tmp_path, wait_timeout=5)))
    data = tmp_path / "Data.fs"
    with runzeo(tmp_path):
        assert fftelemetry("status", ini).returncode == 0  # generation 1, made by this version
    before = data.read_bytes()
    with runzeo(tmp_path, file_size_limit=len(before)):
        result = subprocess.run([sys.executable, "-c", WITH_A_STEP, "status", str(ini)],
                                capture_output=True, text=True, timeout=120, check=False,
                                env=child_environment())
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [EVOLVE_NOT_WRITTEN.format(ini=ini)], result.stderr
    assert data.read_bytes() == before


def test_a_new_database_on_the_zeo_servers_full_disk_stops_in_one_line(tmp_path):
    """ZODB makes a new database's root as a command opens it: the ZEO server's full disk there
    is said as a file:// database's, in one line with its reason, exit 2, not "cannot load
    app.ini: ('builtins.OSError', (27, 'File too large'))"; the next start with room makes it."""
    ini = write_server_ini(tmp_path / "app.ini", app_settings(zeo_uri(tmp_path, wait_timeout=5)))
    with runzeo(tmp_path, file_size_limit=100):  # its file's header fits, not the root
        result = fftelemetry("status", ini)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"fftelemetry: the database named in {ini} could not be written as it was opened (File "
        "too large): nothing it holds was changed; start again once there is room"
    ], result.stderr
    with runzeo(tmp_path):
        assert fftelemetry("status", ini).returncode == 0


def test_a_receiver_on_its_zeo_servers_full_disk_answers_507_in_one_line(tmp_path, caplog):
    """The ZEO server's OSError (ServerException) is a full disk for the receiver too, as on a
    file:// database: its 507 in JSON and one WARNING line, not a 500 after a traceback."""
    uri = zeo_uri(tmp_path, wait_timeout=5)
    batch = [{"id": "0" * 31 + "1", "installation_id": "1" * 32, "type": "feature",
              "collected_at": "2026-11-26T05:40:43+00:00", "key": "system.users.count",
              "value": 3}]

    def posted(status):
        app = receiver_main({}, **{"zodbconn.uri": uri})
        try:
            return webtest.TestApp(app).post_json("/submit", batch, status=status)
        finally:  # before its server stops: a client that loses it logs that
            close_databases(app.registry)

    with runzeo(tmp_path):
        posted(200)
    caplog.set_level("INFO")
    caplog.clear()
    with runzeo(tmp_path, file_size_limit=(tmp_path / "Data.fs").stat().st_size):
        answer = posted(507)
    assert answer.json == {
        "error": "the receiver has no room to store the batch (File too large); nothing was "
        "stored, send the batch again later"
    }
    logged = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records
              if r.levelno >= logging.WARNING]
    assert logged == [
        ("WARNING", "POST /submit not stored, no room: OSError: [Errno 27] File too large", None)
    ]
