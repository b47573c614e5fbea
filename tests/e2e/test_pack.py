"""`fftelemetry pack` through ZEO while `pserve` serves: the ZEO server packs its own Data.fs, so
records deleted on the records page leave it, and the running app goes on working. Started with
`runzeo -f` (the harness's runzeo) the server keeps the file from before as Data.fs.old; started
from the shipped zeo.conf, as the Procfile does, it keeps none."""

import json
import re
import subprocess

import pytest
import ZEO
from ZODB import DB
from ZODB.blob import Blob

from tests.functional.test_receiver import record

from .harness import (
    BIN,
    ZEO_CONF,
    app_settings,
    child_environment,
    csrf_token,
    free_port,
    new_session,
    post_form,
    process,
    pserve,
    runzeo,
    runzeo_shipped,
    stored_batch,
    write_server_ini,
    zeo_uri,
)

pytestmark = pytest.mark.slow

PASSWORD = "long enough password"
RECORDS = "/admin/telemetry/view"


def register(base, email):
    session = new_session()
    registered = post_form(session, f"{base}/register", {"email": email, "password": PASSWORD})
    assert registered.status_code == 200, registered.text[:300]
    return session


def test_pack_through_zeo_drops_deleted_records_from_the_servers_file(tmp_path):
    port = free_port()
    settings = app_settings(zeo_uri(tmp_path), **{"fftelemetry.password_profile": "cheapest"})
    ini = write_server_ini(tmp_path / "web.ini", settings, port)
    data, old = tmp_path / "Data.fs", tmp_path / "Data.fs.old"
    with runzeo(tmp_path), pserve(ini, port) as base:
        admin = register(base, "owner@example.org")
        for n in range(5):
            register(base, f"user{n}@example.org")
        deleted = [record["id"] for record in admin.get(f"{base}{RECORDS}/export.json").json()]
        assert len(deleted) == 6  # users.count 1 to 6
        page = admin.get(f"{base}{RECORDS}")
        done = admin.post(f"{base}{RECORDS}/delete-all", data={
            "confirm": "yes", "shown": "6", "csrf_token": csrf_token(page.text)})
        assert "Deleted 6 records" in done.text and "until it is packed" in done.text
        assert all(record_id.encode() in data.read_bytes() for record_id in deleted)
        status = admin.get(f"{base}/admin/telemetry").text
        assert 'id="packed">never<' in status and 'id="deleted-in-file"' in status

        result = subprocess.run([str(BIN / "fftelemetry"), "pack", str(ini)],
                                env=child_environment(), capture_output=True, text=True,
                                timeout=60, check=False)

        assert result.returncode == 0, result.stderr
        # the running app sees the pack's note: the deleted records are no longer in the file
        status = admin.get(f"{base}/admin/telemetry").text
        assert re.search(r'id="packed">\d{4}-\d\d-\d\d [\d:]{8} UTC<', status), status
        assert 'id="deleted-in-file"' not in status
        line = re.fullmatch(
            r"Packed the ZEO server's database \(sizes as the server reports them\): "
            r"([\d,]+) bytes before, ([\d,]+) after; no history kept\. The server kept the "
            rf"file from before as {re.escape(str(old))}, deleted records and all \(its "
            r"configuration does not say pack-keep-old false\): see docs/telemetry\.md\.\n",
            result.stdout,
        )
        assert line, result.stdout
        before, after = (int(size.replace(",", "")) for size in line.groups())
        assert after == data.stat().st_size < before
        content = data.read_bytes()
        assert not any(record_id.encode() in content for record_id in deleted)
        # runzeo -f keeps the file from before the pack, as the docs say (pack-keep-old true)
        assert all(record_id.encode() in old.read_bytes() for record_id in deleted)

        # the running app goes on: the one record is the pack command's own first use
        records = admin.get(f"{base}{RECORDS}/export.json").json()
        assert [(r["key"], r["value"]) for r in records] == [("system.command.executed", "pack")]
        register(base, "late@example.org")
        records = admin.get(f"{base}{RECORDS}/export.json").json()
        assert ("system.users.count", 7) in [(r["key"], r["value"]) for r in records]



def files_holding(folder, ids):
    """The names of the regular files under `folder` (not the server's socket) that hold one of
    `ids` or more."""
    return {
        path.name
        for path in folder.rglob("*")
        if path.is_file() and any(record_id.encode() in path.read_bytes() for record_id in ids)
    }


def test_pack_under_the_shipped_zeo_conf_leaves_no_deleted_record_on_disk(tmp_path):
    """zeo.conf (pack-keep-old false), as the Procfile runs it: the pack keeps no Data.fs.old.
    What remains is FileStorage's scratch file, Data.fs.tmp, which the server empties as it
    starts (docs/telemetry.md says so)."""
    port = free_port()
    var = tmp_path / "var"
    settings = app_settings(zeo_uri(var), **{"fftelemetry.password_profile": "cheapest"})
    ini = write_server_ini(tmp_path / "web.ini", settings, port)
    with runzeo_shipped(tmp_path), pserve(ini, port) as base:
        admin = register(base, "owner@example.org")
        for n in range(5):
            register(base, f"user{n}@example.org")
        deleted = [record["id"] for record in admin.get(f"{base}{RECORDS}/export.json").json()]
        page = admin.get(f"{base}{RECORDS}")
        done = admin.post(f"{base}{RECORDS}/delete-all", data={
            "confirm": "yes", "shown": "6", "csrf_token": csrf_token(page.text)})
        assert "Deleted 6 records" in done.text
        assert "Data.fs" in files_holding(var, deleted)

        # from the folder the server was started in, as `make run`'s commands are: the server's
        # var/Data.fs is this folder's, seen to have left no copy
        result = subprocess.run([str(BIN / "fftelemetry"), "pack", str(ini)],
                                env=child_environment(), capture_output=True, text=True,
                                timeout=60, check=False, cwd=tmp_path)

        assert result.returncode == 0, result.stderr
        assert result.stdout.endswith("; no history kept.\n"), result.stdout  # no copy to name
        assert not (var / "Data.fs.old").exists()
        assert files_holding(var, deleted) <= {"Data.fs.tmp"}
    with runzeo_shipped(tmp_path):
        assert files_holding(var, deleted) == set()


def test_pack_through_a_zeo_server_with_a_blob_dir(tmp_path):
    """The shipped zeo.conf with a blob-dir, and a client with a blob cache (?blob_dir=): the
    server packs its blobs with its file, and keeps no Data.fs.old either."""
    var, conf = tmp_path / "var", tmp_path / "zeo.conf"
    var.mkdir()
    conf.write_text(ZEO_CONF.read_text().replace("  path var/Data.fs\n",
                                                 "  path var/Data.fs\n  blob-dir var/blobs\n"))
    uri = f"{zeo_uri(var, wait_timeout=10)}&blob_dir={tmp_path / 'blob-cache'}"
    ini = write_server_ini(tmp_path / "app.ini", app_settings(uri))

    def fftelemetry(*args):
        result = subprocess.run([str(BIN / "fftelemetry"), *args, str(ini)],
                                env=child_environment(), capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    ready = (var / "zeo.sock").exists
    runzeo = [str(BIN / "runzeo"), "-C", str(conf)]
    with process(runzeo, tmp_path / "zeo.log", ready, cwd=tmp_path):
        fftelemetry("instructions", "install")  # records: its use and the system facts
        pending = json.loads(fftelemetry("cron", "--dry-run", "--force"))
        deleted = [record["id"] for record in pending]
        assert len(deleted) == 5
        assert fftelemetry("delete", "all", "--yes").startswith("Deleted 5 records")
        # a blob of an object since deleted (none of the app's), through a client of its own
        db = DB(ZEO.client(str(var / "zeo.sock"), blob_dir=str(tmp_path / "own-cache")))
        with db.transaction() as conn:
            conn.root()["attachment"] = Blob(b"an attachment deleted since")
        with db.transaction() as conn:
            del conn.root()["attachment"]
        db.close()
        assert len(list((var / "blobs").rglob("*.blob"))) == 1
        assert "Data.fs" in files_holding(var, deleted)

        line = fftelemetry("pack")

        assert line.startswith("Packed the ZEO server's database (sizes as the server reports")
        assert not (var / "Data.fs.old").exists()
        assert files_holding(var, deleted) <= {"Data.fs.tmp"}
        assert list((var / "blobs").rglob("*.blob")) == []
        assert "\nDatabase packed: 20" in fftelemetry("status")  # the pack's note


def test_the_receivers_database_on_zeo_is_packed_while_the_receiver_serves(tmp_path):
    """`pserve receiver.ini` on ZEO is packed as it serves, and goes on taking batches; and
    every record, batch and count it had is kept: only the old revisions leave."""
    port = free_port()
    ini = write_server_ini(tmp_path / "receiver.ini", {"zodbconn.uri": zeo_uri(tmp_path)},
                           port, use="egg:fftelemetry#receiver")
    data = tmp_path / "Data.fs"
    with runzeo(tmp_path), pserve(ini, port) as base:
        session = new_session()

        resent = [record(), record()]
        stored_batch(session, base, resent)
        for _ in range(40):  # small batches, each leaving old revisions of its buckets
            stored_batch(session, base, [record()])
        stats = session.get(f"{base}/stats", timeout=30).json()
        assert stats == {"records": 42, "batches": 41}

        result = subprocess.run([str(BIN / "fftelemetry"), "pack", str(ini)],
                                env=child_environment(), capture_output=True, text=True,
                                timeout=60, check=False)

        assert result.returncode == 0, result.stderr
        line = re.match(r"Packed the ZEO server's database \(sizes as the server reports "
                        r"them\): ([\d,]+) bytes before, ([\d,]+) after; no history kept\.",
                        result.stdout)
        assert line, result.stdout
        before, after = (int(size.replace(",", "")) for size in line.groups())
        assert after == data.stat().st_size < before / 4
        assert session.get(f"{base}/stats", timeout=30).json() == stats
        stored_batch(session, base, resent)  # its dedup keys kept: counted once
        stored_batch(session, base, [record()])
        assert session.get(f"{base}/stats", timeout=30).json() == {"records": 43, "batches": 43}
