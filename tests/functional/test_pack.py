"""`fftelemetry pack` as a real subprocess on the app's real FileStorage: records deleted on the
records page stay in Data.fs, keys and values, until the database is packed; then they are gone.

A record's id (32 random hex digits, kept as text in the pickle) is what the tests look for in
the file: it is in no other record, so finding it means the deleted record's bytes are there."""

import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from ZODB import DB
from ZODB.blob import Blob, BlobStorage
from ZODB.FileStorage import FileStorage

from fftelemetry.resources import telemetry_store_in
from fftelemetry.resources.store import utcnow
from fftelemetry.scripting import close_databases
from fftelemetry.telemetry.status import format_time
from tests.conftest import file_size_limit
from tests.functional.conftest import ADMIN_EMAIL, PASSWORD
from tests.functional.test_admin_telemetry import RECORDS, flash, rows
from tests.functional.test_cli import assert_one_line

PACKED = re.compile(r"Packed (.+): ([\d,]+) bytes before, ([\d,]+) after; (.+)\.\n")


def database_files(tmp_path):
    """Data.fs and every file FileStorage keeps beside it (.old, .pack, .index, .tmp)."""
    return sorted(tmp_path.glob("Data.fs*"))


def ids_in(files, ids):
    """The ids of `ids` found in any of `files`."""
    content = b"".join(path.read_bytes() for path in files)
    return {record_id for record_id in ids if record_id.encode() in content}


def closed(site):
    """Close the app's database, as a server stopped for the night would: a file:// FileStorage
    lets one process at a time open it."""
    close_databases(site.app.registry)


def deleted_and_closed(make_site, count):
    """A site whose `count` records were deleted (still in its file), closed; their ids."""
    site = make_site()
    deleted = site.seed(count)
    with site.store() as store:
        store.delete_all()
    closed(site)
    return deleted


def packed(result):
    """(file, bytes before, bytes after, what was kept) from the command's one line."""
    assert result.returncode == 0, result.stderr
    match = PACKED.fullmatch(result.stdout)
    assert match, result.stdout
    name, before, after, kept = match.groups()
    return name, int(before.replace(",", "")), int(after.replace(",", "")), kept


def test_records_deleted_on_the_page_leave_the_file_only_when_packed(
    tmp_path, make_site, write_ini, run_cli
):
    site = make_site()
    admin = site.register(ADMIN_EMAIL)
    deleted = site.seed(300, submitted=100)
    form = admin.get(RECORDS).forms["delete-all-form"]
    form["confirm"] = True
    page = form.submit(status=303).follow()
    assert "Deleted 304 records, pending and submitted." in flash(page)
    assert "remain in the database file's history until it is packed" in flash(page)
    assert "fftelemetry pack" in flash(page)
    closed(site)
    data = tmp_path / "Data.fs"
    assert ids_in([data], deleted) == set(deleted)  # "deleted", yet every one is in the file

    name, before, after, kept = packed(run_cli("pack", write_ini()))

    assert (name, kept) == (str(data), "no history kept")
    assert ids_in(database_files(tmp_path), deleted) == set()  # no Data.fs.old either
    assert after == data.stat().st_size < before / 5

    # the app works on the packed file: the one record is the pack command's own first use
    site = make_site()
    browser = site.browser()
    form = browser.get("/login").forms["login"]
    form["email"], form["password"] = ADMIN_EMAIL, PASSWORD
    form.submit(status=303)
    assert [row[3:5] for row in rows(browser.get(RECORDS))] == [
        ["system.command.executed", "pack"]
    ]
    site.register("second@example.org")
    assert ["system.users.count", "2"] in [row[3:5] for row in rows(browser.get(RECORDS))]


def test_a_database_with_a_blob_folder_is_packed_as_one_without(
    tmp_path, make_site, write_ini, run_cli
):
    # zodburi wraps ?blobstorage_dir='s FileStorage in a BlobStorage, which kept the
    # pack_keep_old set on it to itself: the pack kept every deleted record in Data.fs.old, and
    # the line named "the database (BlobStorage)", not its file
    blobs = tmp_path / "blobs"
    uri = {"zodbconn.uri": f"file://{tmp_path}/Data.fs?blobstorage_dir={blobs}"}
    deleted = deleted_and_closed(lambda: make_site(**uri), 50)
    # a blob of an object since deleted (none of the app's): the pack removes it too
    db = DB(BlobStorage(str(blobs), FileStorage(str(tmp_path / "Data.fs"))))
    with db.transaction() as conn:
        conn.root()["attachment"] = Blob(b"an attachment deleted since")
    with db.transaction() as conn:
        del conn.root()["attachment"]
    db.close()
    assert len(list(blobs.rglob("*.blob"))) == 1

    name, before, after, kept = packed(run_cli("pack", write_ini(**uri)))

    data = tmp_path / "Data.fs"
    assert (name, kept) == (str(data), "no history kept")
    assert ids_in(database_files(tmp_path), deleted) == set()  # no Data.fs.old either
    assert not (tmp_path / "Data.fs.old").exists()
    assert after == data.stat().st_size < before
    assert list(blobs.rglob("*.blob")) == []
    assert make_site(**uri).counts()["all"] == 1  # the pack command's own first use


def test_delete_submitted_says_the_records_stay_until_packed(site, admin):
    site.seed(5, submitted=3)
    form = admin.get(RECORDS).forms["delete-submitted-form"]
    form["confirm"] = True
    page = form.submit(status=303).follow()
    assert "Deleted 3 records already submitted" in flash(page)
    assert "remain in the database file's history until it is packed: run fftelemetry pack" in (
        flash(page)
    )


def test_pack_with_days_keeps_the_recent_history(tmp_path, make_site, write_ini, run_cli):
    deleted = deleted_and_closed(make_site, 50)
    ini = write_ini()
    data = tmp_path / "Data.fs"

    # the records were deleted a moment ago: within the last day, so the pack keeps them
    _, before, after, kept = packed(run_cli("pack", ini, "--days", "1"))
    assert kept == "the history of the last 1 day kept"
    assert ids_in([data], deleted) == set(deleted)
    assert before < after == data.stat().st_size < before + 1000  # only the pack's note added

    _, before, after, kept = packed(run_cli("pack", ini))
    assert kept == "no history kept" and after < before
    assert ids_in(database_files(tmp_path), deleted) == set()


@pytest.mark.parametrize(("days", "kept"), [("0", "no history kept"),
                                            ("36500", "the history of the last 36500 days kept")])
def test_days_from_0_to_36500_are_taken(tmp_path, make_site, write_ini, run_cli, days, kept):
    deleted = deleted_and_closed(make_site, 20)
    assert packed(run_cli("pack", write_ini(), "--days", days))[3] == kept
    assert ids_in(database_files(tmp_path), deleted) == (set() if days == "0" else set(deleted))


@pytest.mark.parametrize("days", ["-1", "1.5", "seven", " 7", "\u0663", "36501", ""])
def test_a_bad_days_value_is_a_clear_error_and_changes_nothing(
    tmp_path, make_site, write_ini, run_cli, days
):
    deleted_and_closed(make_site, 20)
    data = (tmp_path / "Data.fs").read_bytes()
    result = run_cli("pack", write_ini(), f"--days={days}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"fftelemetry pack: error: argument --days: {days!r} is not a whole number from 0 to 36500"
    )
    assert (tmp_path / "Data.fs").read_bytes() == data


def test_help_says_what_a_pack_drops_and_what_kept_days_leave(run_cli):
    """--help is where an operator choosing --days looks: the days of history kept keep what
    was deleted in them in the file, and the default keeps none."""
    listed = " ".join(run_cli("--help").stdout.split())
    assert ("pack pack the database (the app's, or the receiver's with its ini): drop the "
            "history of old revisions, deleted records included") in listed
    said = " ".join(run_cli("pack", "--help").stdout.split())
    assert ("--days N keep the history of the last N days (default 0: none, so nothing deleted "
            "stays in the file).") in said
    assert "what was deleted in those days stays in the file until a later pack drops it" in said


def test_a_pack_that_cannot_write_is_one_line_and_loses_nothing(
    tmp_path, make_site, write_ini, run_cli
):
    site = make_site()
    site.seed(300, submitted=100)
    with site.store() as store:
        deleted = [record.id for _, record in store.page("submitted", size=1000)]
        kept = [record.id for _, record in store.page("pending", size=1000)]
        store.delete_submitted()
    closed(site)
    ini = write_ini()
    # its first use is recorded now, so the failing run below has nothing else to write
    assert packed(run_cli("pack", ini, "--days", "1"))[3] == "the history of the last 1 day kept"
    data = tmp_path / "Data.fs"
    before = data.read_bytes()

    with file_size_limit(8192):  # the disk is full once the copy has 8 KiB
        result = run_cli("pack", ini)

    assert_one_line(
        result, 1, "fftelemetry pack: the pack failed (OSError: [Errno 27] File too large)",
        "nothing was lost",
    )
    assert data.read_bytes() == before
    assert database_files(tmp_path) == [data, *(tmp_path / f"Data.fs.{end}" for end in
                                                ("index", "lock", "tmp"))]  # no half copy
    assert ids_in([data], kept + deleted) == set(kept + deleted)

    # with room again the same pack goes through (and had more than 8 KiB to write)
    _, _, after, _ = packed(run_cli("pack", ini))
    assert after > 8192
    assert ids_in(database_files(tmp_path), kept + deleted) == set(kept)
    site = make_site()
    assert site.counts() == {"all": 200 + 1, "pending": 200 + 1, "submitted": 0}  # + "pack"


# `fftelemetry pack` as run_cli runs it, but with SIGTERM sent to it by ZODB's packer as it begins
# its copy (Data.fs.pack opened, its header written): ZODB's own class wrapped, not ours.
SIGTERM_IN_THE_COPY = """
import os, runpy, signal, sys
from ZODB.FileStorage.fspack import FileStoragePacker
copy = FileStoragePacker.copyToPacktime
def stopped(self):
    os.kill(os.getpid(), signal.SIGTERM)
    return copy(self)
FileStoragePacker.copyToPacktime = stopped
sys.argv[0] = "fftelemetry"
runpy.run_module("fftelemetry.cli.main", run_name="__main__")
"""


def test_a_pack_stopped_during_its_copy_removes_the_copy_and_loses_nothing(
    tmp_path, make_site, write_ini, run_cli
):
    deleted = deleted_and_closed(make_site, 20)
    ini = write_ini()
    packed(run_cli("pack", ini, "--days", "1"))  # its first use recorded: the next writes none
    data = tmp_path / "Data.fs"
    before = data.read_bytes()

    result = subprocess.run([sys.executable, "-c", SIGTERM_IN_THE_COPY, "pack", ini],
                            capture_output=True, text=True, timeout=60, check=False)

    assert_one_line(result, 143, "fftelemetry pack: stopped by SIGTERM")
    assert data.read_bytes() == before
    # the unfinished Data.fs.pack is gone: ZODB removes it only when the pack fails with an
    # OSError, and without pack's own clean-up it stayed, as large as the database
    assert database_files(tmp_path) == [data, *(tmp_path / f"Data.fs.{end}" for end in
                                                ("index", "lock", "tmp"))]
    assert ids_in([data], deleted) == set(deleted)


def test_a_pack_that_cannot_write_its_use_says_so_in_one_line_and_packs_nothing(
    tmp_path, make_site, write_ini, run_cli
):
    deleted = deleted_and_closed(make_site, 20)
    data = tmp_path / "Data.fs"
    before = data.read_bytes()

    with file_size_limit(len(before)):  # the disk is full: not a byte more for the pack's use
        result = run_cli("pack", write_ini())

    assert_one_line(
        result, 1, "fftelemetry pack: could not write (OSError: [Errno 27] File too large); "
        "the change in progress was rolled back",
    )
    assert data.read_bytes() == before
    assert ids_in([data], deleted) == set(deleted)


def test_install_instructions_give_a_weekly_pack_line_that_runs_under_cron(
    tmp_path, make_site, write_ini, run_cli
):
    deleted = deleted_and_closed(make_site, 50)
    ini = write_ini()
    (tmp_path / "var").mkdir()
    shown = run_cli("instructions", "install", ini).stdout
    line = re.search(r"^ +(47 4 \* \* 0  .*)$", shown, re.M).group(1)
    assert " pack app.ini >> var/cron.log 2>&1" in line  # beside the daily cron line's log
    # as cron runs it: from the home folder, with a bare PATH and nothing of ours around
    cron = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "SHELL": "/bin/sh"}
    (tmp_path / "home").mkdir()
    result = subprocess.run(["/bin/sh", "-c", line.removeprefix("47 4 * * 0  ")],
                            cwd=tmp_path / "home", env=cron, capture_output=True, text=True,
                            timeout=60, check=False)
    log = (tmp_path / "var" / "cron.log").read_text()
    assert result.returncode == 0, log
    assert result.stdout == result.stderr == ""
    assert f"Packed {tmp_path / 'Data.fs'}: " in log
    assert ids_in(database_files(tmp_path), deleted) == set()


# -- what the status page and `fftelemetry status` say of deleted records ------------------------

STATUS = "/admin/telemetry"
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
STILL_IN_FILE = re.compile(
    r"Deleted records: still in the database file until the next fftelemetry pack "
    rf"\(weekly in scripts/crontab\.example\); last deleted ({WHEN})"
)


def store_attribute(data, name):
    """An attribute of the telemetry store, read from the closed database file."""
    db = DB(FileStorage(str(data), read_only=True))
    try:
        return getattr(telemetry_store_in(db.open().root()), name)
    finally:
        db.close()


def signed_in(make_site):
    """The site opened again (after a command had the file) and its administrator's browser."""
    site = make_site()
    browser = site.browser()
    form = browser.get("/login").forms["login"]
    form["email"], form["password"] = ADMIN_EMAIL, PASSWORD
    form.submit(status=303)
    return site, browser


def pack_facts(page):
    """("Database packed" as shown, the deleted-records line or None) of the status page."""
    def text(selector):
        found = page.html.select_one(selector)
        return None if found is None else " ".join(found.get_text().split())
    return text("#packed"), text("#deleted-in-file")


def status_lines(run_cli, ini):
    """The lines of `fftelemetry status` about packing and deleted records."""
    result = run_cli("status", ini)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines()
            if line.startswith(("Database packed:", "Deleted records:"))]


def delete(browser, which):
    form = browser.get(RECORDS).forms[f"delete-{which}-form"]
    form["confirm"] = True
    form.submit(status=303)


def test_the_status_page_and_command_say_whether_deleted_records_are_in_the_file(
    tmp_path, make_site, write_ini, run_cli
):
    ini, files = write_ini(), lambda: database_files(tmp_path)
    site = make_site()
    admin = site.register(ADMIN_EMAIL)
    site.seed(20, submitted=10)
    with site.store() as store:
        submitted = [record.id for _, record in store.page("submitted")]
        pending = [record.id for _, record in store.page("pending")]
    assert pack_facts(admin.get(STATUS)) == ("never", None)  # nothing deleted: nothing to say
    closed(site)
    assert status_lines(run_cli, ini) == ["Database packed: never"]

    site, admin = signed_in(make_site)
    delete(admin, "submitted")
    with site.store() as store:
        deleted_at = store.records_deleted_at
    shown, note = pack_facts(admin.get(STATUS))
    assert shown == "never"
    assert note == (
        "still in the database file until the next fftelemetry pack (weekly in "
        f"scripts/crontab.example); last deleted {format_time(deleted_at)}"
    )
    closed(site)
    assert ids_in(files(), submitted) == set(submitted)  # as the note says
    packed_line, note_line = status_lines(run_cli, ini)
    assert packed_line == "Database packed: never"
    assert STILL_IN_FILE.fullmatch(note_line).group(1) == format_time(deleted_at)

    before = utcnow().replace(microsecond=0)
    packed(run_cli("pack", ini))
    after = utcnow()
    assert ids_in(files(), submitted) == set()
    [packed_line] = status_lines(run_cli, ini)  # the note is gone
    at = re.fullmatch(rf"Database packed: ({WHEN})", packed_line).group(1)
    assert before <= datetime.strptime(at, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC) <= after
    site, admin = signed_in(make_site)
    assert pack_facts(admin.get(STATUS)) == (at, None)

    delete(admin, "all")  # a delete after the pack: the note is back
    shown, note = pack_facts(admin.get(STATUS))
    assert shown == at and note.startswith("still in the database file until the next")
    closed(site)
    assert ids_in(files(), pending) == set(pending)
    packed_line, note_line = status_lines(run_cli, ini)
    assert packed_line == f"Database packed: {at}" and STILL_IN_FILE.fullmatch(note_line)


def test_a_pack_that_keeps_the_days_of_a_delete_leaves_the_note(
    tmp_path, make_site, write_ini, run_cli
):
    deleted = deleted_and_closed(make_site, 20)
    ini = write_ini()
    packed(run_cli("pack", ini, "--days", "1"))  # keeps the delete of a moment ago
    assert ids_in(database_files(tmp_path), deleted) == set(deleted)
    packed_line, note_line = status_lines(run_cli, ini)
    assert re.fullmatch(rf"Database packed: {WHEN}, the history of the last 1 day kept",
                        packed_line)
    assert STILL_IN_FILE.fullmatch(note_line)
    admin = make_site().register(ADMIN_EMAIL)
    shown, note = pack_facts(admin.get(STATUS))
    assert shown == packed_line.removeprefix("Database packed: ")
    assert note.startswith("still in the database file")


def test_a_store_from_before_these_facts_shows_them_as_never(tmp_path, make_site, write_ini,
                                                             run_cli):
    deleted_and_closed(make_site, 5)
    ini = write_ini()
    packed(run_cli("pack", ini))
    site = make_site()
    with site.store() as store:  # back to the state a store made before this version had
        for name in ("records_deleted_at", "packed_at", "pack_kept_days"):
            delattr(store, name)
    with site.store() as store:
        assert set(store.__getstate__()) == {
            "installation_id", "last_success_at", "pending", "submitted", "identity",
            "last_recurring", "log",
        }
    admin = site.register(ADMIN_EMAIL)
    assert pack_facts(admin.get(STATUS, status=200)) == ("never", None)
    closed(site)
    assert status_lines(run_cli, ini) == ["Database packed: never"]


def test_a_pack_whose_time_cannot_be_recorded_says_so_in_one_line(
    tmp_path, make_site, write_ini, run_cli
):
    deleted = deleted_and_closed(make_site, 50)
    ini = write_ini()
    packed(run_cli("pack", ini))  # its first use recorded too: nothing but the note is left
    _, _, current, _ = packed(run_cli("pack", ini))  # the file: what is current, then the note
    data = tmp_path / "Data.fs"
    noted = store_attribute(data, "packed_at")
    # FileStorage ends each transaction with its length (8 bytes, not counted): the note's
    tail = data.read_bytes()[-8:]
    copy = current - 8 - int.from_bytes(tail, "big")

    # The next pack copies the same (the note's old revision dropped, the new one kept): room
    # for that copy, not a byte more for the new note after it.
    with file_size_limit(copy):
        result = run_cli("pack", ini)

    _, _, after, _ = PACKED.fullmatch(result.stdout).groups()  # the pack itself went through
    assert int(after.replace(",", "")) == data.stat().st_size == copy
    assert_one_line(
        result, 1, "fftelemetry pack: the database was packed, but the time of the pack could "
        "not be recorded (OSError: [Errno 27] File too large); the status page still shows the "
        "pack before it",
    )
    assert ids_in(database_files(tmp_path), deleted) == set()
    assert database_files(tmp_path) == [data, *(tmp_path / f"Data.fs.{end}" for end in
                                                ("index", "lock", "tmp"))]
    assert store_attribute(data, "packed_at") == noted  # the second pack's, not the third's
