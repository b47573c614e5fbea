"""A database that cannot write (a full disk, simulated with RLIMIT_FSIZE: every write past the
limit fails with EFBIG, as a full disk's fail with ENOSPC) gives a clear page and loses nothing."""

import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from pyramid.response import Response
from ZODB.POSException import ConflictError

from fftelemetry.receiver.resources import ROOT_KEY as RECEIVER_KEY
from fftelemetry.resources import ROOT_KEY, Root
from tests.conftest import BIN, file_size_limit, run_pserve
from tests.functional.conftest import ADMIN_EMAIL
from tests.functional.test_generations import WITH_A_STEP, stored


def data_fs(site):
    return Path(site.app.registry.settings["zodbconn.uri"].removeprefix("file://"))


def submit_on_a_full_disk(site, form):
    """Submit `form` while the Data.fs cannot grow: the 503 "Not saved" page."""
    with file_size_limit(data_fs(site).stat().st_size):
        page = form.submit(status=503)
    assert "Not saved" in page.text
    return page


def test_a_write_error_at_commit_is_a_clear_page_and_loses_nothing(site, admin):
    site.seed(200)
    before = site.counts()
    form = admin.get("/preferences").forms["preferences"]
    form["language"], form["locale"] = "de", "de_AT"

    page = submit_on_a_full_disk(site, form)
    assert "File too large" in page.text and "Nothing was changed" in page.text
    assert "Try again later; if it keeps happening, tell the administrator." in page.text
    assert site.counts() == before
    with site.root() as root:
        assert root["users"].get("owner@example.org").language == "en"

    # with room again the same form goes through, and everything from before is still there
    form.submit(status=303)
    with site.root() as root:
        assert root["users"].get("owner@example.org").language == "de"
    after = site.counts()
    assert after["all"] == before["all"] + 2  # language de and locale de_AT, new facts


def test_a_registration_that_could_not_be_saved_signs_nobody_in(site, admin):
    browser = site.browser()
    form = browser.get("/register").forms["register"]
    form["email"], form["password"] = "late@example.org", "long enough password"

    page = submit_on_a_full_disk(site, form)
    assert "Welcome!" not in page.text  # the failed request's session is not sent
    assert "Set-Cookie" not in page.headers
    browser.get("/preferences", status=303)
    with site.root() as root:
        assert "late@example.org" not in root["users"]


def test_a_write_to_a_read_only_database_is_logged_in_words(site, admin, make_site, caplog):
    # zodbconn.uri's read_only=true (a replica, say): ReadOnlyError has no text, and the log
    # line said "POST /preferences not saved: ReadOnlyError: ", as the console did
    replica = make_site(**{"zodbconn.uri": f"file://{data_fs(site)}?read_only=true"})
    browser = replica.browser()
    browser.set_cookie("session", admin.cookies["session"])
    form = browser.get("/preferences").forms["preferences"]
    form["language"] = "de"
    caplog.set_level(logging.INFO)
    assert "Not saved" in form.submit(status=503).text
    [logged] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert logged == "POST /preferences not saved: the database is read-only"


def test_a_read_only_database_is_not_worth_trying_again(site, admin, make_site):
    # the page said "(ReadOnlyError) ... Try again later", which would not help
    replica = make_site(**{"zodbconn.uri": f"file://{data_fs(site)}?read_only=true"})
    browser = replica.browser()
    browser.set_cookie("session", admin.cookies["session"])
    form = browser.get("/preferences").forms["preferences"]
    form["language"] = "de"
    page = form.submit(status=503)
    assert (
        "The database could not store this (the database is read-only). Nothing was changed. "
        "Trying again will not help while it is read-only; tell the administrator."
    ) in " ".join(page.html.find("main").text.split())
    assert "ReadOnlyError" not in page.text and "Try again" not in page.text


def failing_view(config):
    """`pyramid.includes` hook: /broken collects a record, then fails as a bug would;
    /conflict-once conflicts on its first attempt only, /conflict on every attempt."""

    def broken(context, request):
        request.telemetry.collect("system.users.count", 99)
        raise RuntimeError("a bug")

    def conflict(context, request):
        request.telemetry.collect("system.users.count", 98)
        if request.view_name == "conflict" or request.environ["retry.attempt"] == 0:
            raise ConflictError
        return Response("done")

    config.add_view(broken, context=Root, name="broken")
    config.add_view(conflict, context=Root, name="conflict-once")
    config.add_view(conflict, context=Root, name="conflict")


def test_a_conflict_that_is_retried_logs_no_error(make_site, caplog):
    site = make_site(**{"pyramid.includes": "tests.functional.test_faults.failing_view",
                        "retry.attempts": "3"})
    admin = site.register(ADMIN_EMAIL)
    caplog.set_level(logging.INFO)
    caplog.clear()
    assert admin.get("/conflict-once", status=200).text == "done"
    assert [(r.levelname, r.getMessage()[:30]) for r in caplog.records] == [
        ("INFO", "retrying GET /conflict-once af")
    ]


def test_conflicts_on_every_attempt_are_a_503_page_and_keep_nothing(make_site, caplog):
    site = make_site(**{"pyramid.includes": "tests.functional.test_faults.failing_view",
                        "retry.attempts": "3"})
    admin = site.register(ADMIN_EMAIL)
    before = site.counts()
    caplog.set_level(logging.INFO)
    caplog.clear()
    page = admin.get("/conflict", status=503)
    assert page.html.h1.text == "Busy"
    assert "Nothing was changed. Try again in a moment." in page.text
    assert site.counts() == before
    assert [r.levelname for r in caplog.records] == ["INFO", "INFO", "WARNING"]
    # each rerun's line counts the attempt it starts, of the attempts allowed
    assert [r.getMessage() for r in caplog.records[:2]] == [
        f"retrying GET /conflict after ConflictError (attempt {attempt} of 3)" for attempt in (2, 3)
    ]


def test_an_unexpected_error_is_a_500_page_logged_and_nothing_is_kept(make_site, caplog):
    site = make_site(**{"pyramid.includes": "tests.functional.test_faults.failing_view"})
    admin = site.register(ADMIN_EMAIL)
    before = site.counts()

    page = admin.get("/broken", status=500)

    assert page.html.h1.text == "Something went wrong"
    assert "Nothing was changed. The error was logged for the administrator." in page.text
    assert "a bug" not in page.text and "Log out" in page.text  # the site's layout, no details
    assert site.counts() == before
    [logged] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.getMessage() == "GET /broken failed" and logged.exc_info[1].args == ("a bug",)


# -- a start on a full disk: one line, and nothing lost -------------------------------------------
# ZODB makes a new database's root as it opens it, so the first start writes; an older database is
# evolved as it starts. pserve printed a traceback (the close that followed failed on the same
# disk, hiding the start's own error), and a command said "cannot load …: [Errno 27] File too
# large".

NEW_NOT_WRITTEN = (
    "{program}: the database named in {ini}, {data}, could not be written as it was made (File "
    "too large): nothing is lost, as it did not exist yet, and nothing of it is left; start again "
    "once there is room"
)


# pserve in a process whose code is one (test) step ahead of the database, as WITH_A_STEP is
PSERVE_WITH_A_STEP = """
import sys
from pyramid.scripts.pserve import main
from fftelemetry.resources import GENERATIONS
GENERATIONS.steps.append(lambda root: setattr(root, "evolved", "yes"))
sys.exit(main(sys.argv))
"""


def serve_a_page(ini, page):
    """`pserve ini` until `page` answers, then SIGTERM: the page's status."""
    url = "http://127.0.0.1:" + ini.read_text().rpartition("listen = 127.0.0.1:")[2].strip()
    with open(ini.with_suffix(".log"), "wb") as log:
        server = subprocess.Popen([BIN / "pserve", ini], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while server.poll() is None and time.monotonic() < deadline:
            try:
                return requests.get(url + page, timeout=5).status_code
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(ini.with_suffix(".log").read_text())
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def left_of(data):
    return sorted(path.name for path in data.parent.glob(f"{data.name}*"))


@pytest.mark.parametrize(
    "limit", [0, 64, 130], ids=["its lock", "its scratch file", "the file itself"]
)
def test_a_first_command_on_a_full_disk_stops_in_one_line_and_leaves_no_database(
    tmp_path, write_ini, run_cli, limit
):
    # ZODB's root is 166 bytes in Data.fs, written through 106 in Data.fs.tmp, after 4 or more
    # in Data.fs.lock: each limit fails another write. A Data.fs holding part of the root made
    # the next start log "damaged records" and set them aside in Data.fs.tr0.
    ini = write_ini()
    data = tmp_path / "Data.fs"
    with file_size_limit(limit):
        result = run_cli("status", ini)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        NEW_NOT_WRITTEN.format(program="fftelemetry", ini=ini, data=data)
    ]
    assert left_of(data) == ["Data.fs.lock"]

    again = run_cli("status", ini)  # with room again: a new database, and no warning
    assert again.returncode == 0 and "WARNING" not in again.stderr, again.stderr
    assert stored(data, ROOT_KEY)["generation"] == 1
    assert "Data.fs.tr0" not in left_of(data)


def test_a_first_command_on_a_full_disk_names_each_new_database_it_leaves_nothing_of(
    tmp_path, write_ini, run_cli
):
    # the ini's zodbconn.uri.NAME is new too: what this start would have made of it is removed
    other = tmp_path / "other.fs"
    ini = write_ini(**{"zodbconn.uri.other": f"file://{other}"})
    data = tmp_path / "Data.fs"
    with file_size_limit(130):
        result = run_cli("status", ini)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        NEW_NOT_WRITTEN.format(program="fftelemetry", ini=ini, data=f"{data}, {other}")
    ]
    assert left_of(data) == ["Data.fs.lock"] and left_of(other) == []


@pytest.mark.parametrize("program", ["fftelemetry", "fftelemetry receiver"])
def test_a_first_pserve_on_a_full_disk_stops_in_one_line_and_the_next_one_serves(
    write_server_ini, program
):
    ini, data, page = write_server_ini(program)
    with file_size_limit(130):  # past Data.fs's first bytes: part of ZODB's root is written
        result = run_pserve(ini)
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [NEW_NOT_WRITTEN.format(program=program, ini=ini,
                                                                 data=data)]
    assert left_of(data) == [f"{data.name}.lock"]

    assert serve_a_page(ini, page) == 200
    assert "WARNING" not in ini.with_suffix(".log").read_text()
    key = ROOT_KEY if program == "fftelemetry" else RECEIVER_KEY
    assert stored(data, key)["generation"] == 1
    assert f"{data.name}.tr0" not in left_of(data)


def test_a_command_on_a_full_disk_that_cannot_lock_a_database_changes_nothing(
    tmp_path, write_ini, run_cli
):
    ini = write_ini()
    assert run_cli("status", ini).returncode == 0
    data = tmp_path / "Data.fs"
    before = data.read_bytes()
    with file_size_limit(0):  # not even the lock file's process id can be written
        result = run_cli("status", ini)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"fftelemetry: the database named in {ini} could not be written as it was opened (File "
        "too large): nothing it holds was changed; start again once there is room"
    ]
    assert data.read_bytes() == before


def test_an_evolve_on_a_full_disk_leaves_a_database_with_blobs_as_it_was(tmp_path, write_ini):
    # zodburi's ?blobstorage_dir= wraps the FileStorage in a BlobStorage, which was not taken
    # for a file: the part of the step the close flushed stayed, set aside as "damaged records"
    # in Data.fs.tr0 by the next start
    data = tmp_path / "Data.fs"
    ini = write_ini(**{"zodbconn.uri": f"file://{data}?blobstorage_dir={tmp_path}/blobs"})

    def with_a_step():
        return subprocess.run([sys.executable, "-c", WITH_A_STEP, "status", ini],
                              capture_output=True, text=True, timeout=60, check=False)

    assert subprocess.run([sys.executable, "-m", "fftelemetry.cli.main", "status", ini],
                          capture_output=True, timeout=60, check=False).returncode == 0
    before = data.read_bytes()
    with file_size_limit(len(before) + 40):
        result = with_a_step()
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == EVOLVE_NOT_WRITTEN.format(ini=ini)
    assert data.read_bytes() == before

    evolved = with_a_step()
    assert evolved.returncode == 0 and "WARNING" not in evolved.stderr, evolved.stderr
    assert "Data.fs.tr0" not in left_of(data)


# A command whose database has no file when it starts, and another process's first start (a
# cron run, with room: its limit lifted) makes it, root and all, just before this one opens it:
# the race of two first starts, timed by the one call every FileStorage of zodbconn.uri goes
# through.
MADE_MEANWHILE = """
import resource, subprocess, sys
import zodburi.resolvers
from fftelemetry.cli.main import main

def with_room():
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))

def made_meanwhile(*args, opened=zodburi.resolvers.FileStorage, **kwargs):
    subprocess.run([sys.executable, "-m", "fftelemetry.cli.main", "status", sys.argv[2]],
                   preexec_fn=with_room, capture_output=True, check=True)
    return opened(*args, **kwargs)

zodburi.resolvers.FileStorage = made_meanwhile
sys.exit(main(sys.argv[1:]))
"""


def test_a_database_another_process_made_meanwhile_is_not_removed(tmp_path, write_ini):
    # It was new when this start looked, so the full disk's line removed it: the other
    # process's root (this installation's id) and all it had written went with it.
    ini = write_ini()
    data = tmp_path / "Data.fs"
    with file_size_limit(0):  # this process cannot even write its lock's process id
        result = subprocess.run([sys.executable, "-c", MADE_MEANWHILE, "status", ini],
                                capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stderr
    assert data.exists(), "removed"
    assert stored(data, ROOT_KEY)["generation"] == 1
    assert result.stderr.splitlines() == [
        f"fftelemetry: the database named in {ini} could not be written as it was opened (File "
        "too large): nothing it holds was changed; start again once there is room"
    ]


EVOLVE_NOT_WRITTEN = (
    "fftelemetry: evolving the database named in {ini} from generation 1 to 2 could not be "
    "written (File too large); it is left at generation 1, nothing of the step was stored"
)


@pytest.mark.parametrize("runner", ["command", "pserve"])
def test_an_evolve_on_a_full_disk_stops_in_one_line_and_loses_nothing(
    write_server_ini, run_cli, runner
):
    # The step's transaction was written in part as the database was closed: the next start
    # logged "truncated, possibly due to damaged records" and set it aside in Data.fs.tr0
    ini, data, _ = write_server_ini("fftelemetry")
    assert run_cli("status", ini).returncode == 0  # generation 1, made by this version
    before = data.read_bytes()
    with file_size_limit(len(before) + 40):  # less than a transaction's headers
        if runner == "command":
            result = subprocess.run([sys.executable, "-c", WITH_A_STEP, "status", ini],
                                    capture_output=True, text=True, timeout=60, check=False)
        else:
            result = run_pserve(ini, PSERVE_WITH_A_STEP)
    assert result.returncode == (2 if runner == "command" else 1), result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO [")]
    assert lines == [EVOLVE_NOT_WRITTEN.format(ini=ini)]
    assert data.read_bytes() == before

    evolved = subprocess.run([sys.executable, "-c", WITH_A_STEP, "status", ini],
                             capture_output=True, text=True, timeout=60, check=False)
    assert evolved.returncode == 0 and "WARNING" not in evolved.stderr, evolved.stderr
    state = stored(data, ROOT_KEY)
    assert (state["generation"], state["evolved"]) == (2, "yes")
    assert "Data.fs.tr0" not in left_of(data)
