"""`fftelemetry pack receiver.ini` as a real subprocess on the real receiver's FileStorage: each
batch leaves the old revisions of what it rewrote in receiver.fs, and only a pack drops them,
leaving every record, batch and count as it was."""

import os

import pytest
import webtest
import ZEO
from ZODB import DB

from fftelemetry.cli.pack import server_note
from fftelemetry.receiver import main as receiver_main
from fftelemetry.receiver.resources import ROOT_KEY
from fftelemetry.scripting import close_databases, database
from tests.functional.test_cli import assert_one_line
from tests.functional.test_pack import packed
from tests.functional.test_receiver import post, record


def receiver_ini(tmp_path, data):
    ini = tmp_path / "receiver.ini"
    ini.write_text(f"[app:main]\nuse = egg:fftelemetry#receiver\nzodbconn.uri = file://{data}\n")
    return str(ini)


def opened(data):
    wsgi = receiver_main({}, **{"zodbconn.uri": f"file://{data}"})
    return wsgi, webtest.TestApp(wsgi)


def contents(wsgi):
    """Everything the receiver keeps: its records, its dedup keys, its batches and counts."""
    conn = database(wsgi.registry).open()
    try:
        receiver = conn.root()[ROOT_KEY]
        batches = {
            batch_uuid: (batch.received_at, batch.record_ids, batch.new_records)
            for batch_uuid, batch in receiver.batches.items()
        }
        return (dict(receiver.records.items()), set(receiver.seen), batches, receiver.stats())
    finally:
        conn.close()


def test_a_pack_drops_the_receivers_old_revisions_and_keeps_its_data(tmp_path, run_cli):
    data = tmp_path / "receiver.fs"
    wsgi, app = opened(data)
    resent = [record(), record()]
    uuids = {post(app, resent, 200).json["uuid"]}
    for _ in range(60):  # small batches: each rewrites its buckets whole, kept as old revisions
        uuids.add(post(app, [record()], 200).json["uuid"])
    uuids.add(post(app, resent, 200).json["uuid"])  # counted once
    stats = app.get("/stats").json
    assert stats == {"records": 62, "batches": 62}
    before = contents(wsgi)
    assert set(before[2]) == uuids
    close_databases(wsgi.registry)  # a stopped receiver: its file:// FileStorage is free
    size = data.stat().st_size

    name, said_before, after, kept = packed(run_cli("pack", receiver_ini(tmp_path, data)))

    assert (name, said_before, kept) == (str(data), size, "no history kept")
    assert after == data.stat().st_size < size / 5
    assert not (tmp_path / "receiver.fs.old").exists()  # no copy of the old revisions kept
    wsgi, app = opened(data)
    try:
        assert contents(wsgi) == before
        assert app.get("/stats").json == stats
        post(app, resent, 200)  # its dedup keys survived: still counted once
        post(app, [record()], 200)
        assert app.get("/stats").json == {"records": 63, "batches": 64}
    finally:
        close_databases(wsgi.registry)


def test_a_pack_of_the_served_receivers_file_says_what_to_do_and_changes_nothing(tmp_path,
                                                                                 run_cli):
    data = tmp_path / "receiver.fs"
    wsgi, app = opened(data)  # serving: it holds the file's lock
    try:
        post(app, [record()], 200)
        before, size = contents(wsgi), data.stat().st_size
        ini = receiver_ini(tmp_path, data)

        result = run_cli("pack", ini)

        assert_one_line(
            result, 2,
            f"fftelemetry: the database named in {ini}, {data}, is in use by another process "
            "(the receiver serving it? a file:// FileStorage allows only one): stop the "
            "receiver for the pack and start it again after, or serve its database with ZEO "
            "(zeo://) to pack it while the receiver runs; nothing was done",
        )
        assert result.stdout == ""
        assert data.stat().st_size == size and contents(wsgi) == before
        assert not (tmp_path / "receiver.fs.pack").exists()
        post(app, [record()], 200)  # the receiver goes on
        assert app.get("/stats").json == {"records": 2, "batches": 2}
    finally:
        close_databases(wsgi.registry)


def test_the_receivers_ini_is_taken_by_pack_alone(tmp_path, run_cli):
    data = tmp_path / "receiver.fs"
    ini = receiver_ini(tmp_path, data)
    for args in (["status"], ["cron"], ["delete", "all"], ["instructions", "install"]):
        assert_one_line(run_cli(*args, ini), 2, f"fftelemetry: {ini} does not make "
                        "fftelemetry's app", "nor on the receiver's but for pack")
    assert not data.exists()  # not even opened
    wsgi, app = opened(data)
    post(app, [record()], 200)
    close_databases(wsgi.registry)
    packed(run_cli("pack", ini, "--days", "1"))
    wsgi, app = opened(data)
    try:
        assert app.get("/stats").json == {"records": 1, "batches": 1}
    finally:
        close_databases(wsgi.registry)


def test_the_receivers_ini_behind_a_filter_is_packed(tmp_path, run_cli):
    # the registry is the receiver's Router's, which the pipeline's app (a prefix filter) has not
    data = tmp_path / "receiver.fs"
    wsgi, app = opened(data)
    post(app, [record()], 200)
    close_databases(wsgi.registry)
    ini = tmp_path / "receiver.ini"
    ini.write_text(
        "[pipeline:main]\npipeline = prefix receiver\n\n[filter:prefix]\n"
        "use = egg:PasteDeploy#prefix\n\n[app:receiver]\nuse = egg:fftelemetry#receiver\n"
        f"zodbconn.uri = file://{data}\n"
    )
    name, _, _, _ = packed(run_cli("pack", str(ini), "--days", "1"))
    assert name == str(data)
    wsgi, app = opened(data)
    try:
        assert app.get("/stats").json == {"records": 1, "batches": 1}
    finally:
        close_databases(wsgi.registry)


def test_a_receivers_setting_refused_is_said_once(tmp_path, run_cli):
    # the receiver's own line, prefixed by the command's alone, not "fftelemetry: fftelemetry
    # receiver: ..."
    ini = tmp_path / "receiver.ini"
    ini.write_text(
        "[app:main]\nuse = egg:fftelemetry#receiver\n"
        f"zodbconn.uri = file://{tmp_path}/receiver.fs\nreceiver.max_records = abc\n"
    )
    result = run_cli("pack", str(ini))
    assert_one_line(result, 2, "fftelemetry: receiver.max_records")
    assert "fftelemetry receiver:" not in result.stderr
    assert not (tmp_path / "receiver.fs").exists()



@pytest.fixture
def receivers_zeo_server(tmp_path):
    """serve(keep_old) -> a ZEO server of the receiver's own on 127.0.0.1, on receiver.fs, its
    pack-keep-old as given, in a thread of the test's (stopped after the test); its address."""
    stops = []

    def serve(keep_old):
        conf = (f"<filestorage>\n path {tmp_path / 'receiver.fs'}\n"
                f" pack-keep-old {'true' if keep_old else 'false'}\n</filestorage>\n")
        address, stop = ZEO.server(storage_conf=conf)
        stops.append(stop)
        return address

    yield serve
    for stop in stops:
        stop()


def packed_on_zeo(tmp_path, run_cli, address):
    """`fftelemetry pack receiver.ini` of a receiver whose database is on the ZEO server at
    `address`, after a batch it took (old revisions to drop); the command's line."""
    uri = "zeo://{}:{}?wait_timeout=10".format(*address)
    ini = tmp_path / "receiver.ini"
    ini.write_text(f"[app:main]\nuse = egg:fftelemetry#receiver\nzodbconn.uri = {uri}\n")
    wsgi = receiver_main({}, **{"zodbconn.uri": uri})
    post(webtest.TestApp(wsgi), [record()], 200)
    close_databases(wsgi.registry)
    result = run_cli("pack", str(ini))
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_pack_on_a_zeo_server_keeping_the_old_file_names_it(tmp_path, run_cli,
                                                              receivers_zeo_server):
    # it said "the server keeps the file from before as Data.fs.old" whatever the file, and
    # whether or not the server keeps one
    line = packed_on_zeo(tmp_path, run_cli, receivers_zeo_server(keep_old=True))

    assert line.endswith(
        f"; no history kept. The server kept the file from before as {tmp_path}/receiver.fs.old, "
        "deleted records and all (its configuration does not say pack-keep-old false): see "
        "docs/telemetry.md.\n"
    ), line
    assert (tmp_path / "receiver.fs.old").exists()


def test_a_pack_on_a_zeo_server_keeping_no_old_file_says_none(tmp_path, run_cli,
                                                              receivers_zeo_server):
    line = packed_on_zeo(tmp_path, run_cli, receivers_zeo_server(keep_old=False))

    assert line.startswith("Packed the ZEO server's database") and line.endswith(
        "; no history kept.\n"
    ), line
    assert not (tmp_path / "receiver.fs.old").exists()


def test_a_zeo_servers_file_not_seen_here_is_said_as_it_may_be(tmp_path, receivers_zeo_server):
    # the server's path on this machine is no file of the server's size: another machine's
    db = DB(ZEO.client(receivers_zeo_server(keep_old=True), wait_timeout=10))
    try:
        with db.transaction() as conn:
            conn.root()["x"] = 1
        os.rename(tmp_path / "receiver.fs", tmp_path / "elsewhere.fs")  # the server keeps it open
        assert server_note(db) == (
            " Unless its configuration says pack-keep-old false (the shipped zeo.conf does), the"
            f" server keeps the file from before as {tmp_path}/receiver.fs.old: see "
            "docs/telemetry.md."
        )
    finally:
        db.close()


def test_a_zeo_client_that_keeps_no_server_info_gets_the_note_as_it_may_be(
    receivers_zeo_server,
):
    # ClientStorage's `_info` is ZEO's private state: a later ZEO without it still gets the note
    db = DB(ZEO.client(receivers_zeo_server(keep_old=True), wait_timeout=10))
    try:
        del db.storage._info
        assert server_note(db) == (
            " Unless its configuration says pack-keep-old false (the shipped zeo.conf does), the"
            " server keeps the file from before as its file's .old: see docs/telemetry.md."
        )
    finally:
        db.storage._info = {}
        db.close()



@pytest.fixture
def zeo_server_on_a_relative_path(tmp_path, monkeypatch):
    """A ZEO server started in tmp_path/server on `receiver.fs`, a relative path, as `runzeo -f
    receiver.fs` there would be (keeping the file from before a pack); its client's DB."""
    (tmp_path / "server").mkdir()
    monkeypatch.chdir(tmp_path / "server")
    address, stop = ZEO.server(storage_conf="<filestorage>\n path receiver.fs\n</filestorage>\n")
    db = DB(ZEO.client(address, wait_timeout=10))
    assert db.storage._info["name"] == "receiver.fs"  # the path as given, from its folder
    for value in (1, 2):  # an old revision for the pack to drop
        with db.transaction() as conn:
            conn.root()["x"] = value
    db.pack()
    yield db
    db.close()
    stop()


def test_a_zeo_servers_file_by_a_relative_path_from_this_folder_is_named(
    tmp_path, zeo_server_on_a_relative_path
):
    # `runzeo -f Data.fs` keeps Data.fs.old, and its storage's name is the path as given: the
    # note said nothing at all, as for a storage of another kind
    assert server_note(zeo_server_on_a_relative_path) == (
        f" The server kept the file from before as {tmp_path}/server/receiver.fs.old, deleted"
        " records and all (its configuration does not say pack-keep-old false): see"
        " docs/telemetry.md."
    )


def test_a_zeo_servers_file_by_a_relative_path_from_another_folder_is_said_as_it_may_be(
    tmp_path, monkeypatch, zeo_server_on_a_relative_path
):
    monkeypatch.chdir(tmp_path)  # the command runs elsewhere: receiver.fs here is no file
    assert server_note(zeo_server_on_a_relative_path) == (
        " Unless its configuration says pack-keep-old false (the shipped zeo.conf does), the"
        " server keeps the file from before as its file's .old: see docs/telemetry.md."
    )
