"""The data in PostgreSQL through RelStorage (README, More than one process): a throwaway cluster
(initdb, pg_ctl on 127.0.0.1), the app, its console commands and the receiver over loopback, two
`pserve` processes under concurrent sign-ups, the README's backup and restore; and a server that
cannot be reached, a wrong password, a missing database or a keep_history not the database's
stopping pserve and the commands in one line."""

import json
import shlex
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from ZODB import DB
from zodburi import resolve_uri

from fftelemetry.resources import appmaker
from tests.functional.conftest import Site
from tests.functional.test_receiver import record

from .harness import (
    BIN,
    app_settings,
    child_environment,
    free_port,
    pserve,
    stored_batch,
    write_server_ini,
)
from .postgresql import PASSWORD, USER
from .test_concurrency import check_database, sign_up_many

pytestmark = pytest.mark.slow

RECORDS = "/admin/telemetry/view"
CHEAP = {"fftelemetry.password_profile": "cheapest"}
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FOLDER = "mkdir -p var/backups"
DUMP = "pg_dump -Fc -h dbhost -p 5432 -U fftelemetry -f var/backups/app.dump fftelemetry"
RESTORE = (
    "pg_restore --clean --if-exists --single-transaction -h dbhost -p 5432 -U fftelemetry "
    "-d fftelemetry var/backups/app.dump"
)


def fftelemetry(*args):
    return subprocess.run([str(BIN / "fftelemetry"), *map(str, args)], capture_output=True,
                          text=True, timeout=120, check=False, env=child_environment())


def exported(browser):
    return [(r["key"], r["value"], r["submitted_at"] is not None) for r in
            browser.get(f"{RECORDS}/export.json").json]


def test_the_app_its_commands_and_a_pack_on_postgresql(cluster, make_app, receiver, tmp_path):
    uri = cluster.database()
    settings = {"zodbconn.uri": uri, "fftelemetry.telemetry_url": receiver.url, **CHEAP}
    site = Site(make_app(**settings))
    admin = site.register("owner@example.org")
    page = admin.get(RECORDS)
    assert "system.users.count" in page.text
    collected = exported(admin)
    assert ("system.users.count", 1, False) in collected

    ini = write_server_ini(tmp_path / "app.ini", app_settings(uri, **settings))
    cron = fftelemetry("cron", ini, "--force")
    assert cron.returncode == 0, cron.stderr
    # the sign-up's records and cron's own first use, marked in PostgreSQL and seen by the app
    assert receiver.stats()["records"] == len(collected) + 1
    assert {submitted for _, _, submitted in exported(admin)} == {True}

    install = fftelemetry("instructions", "install", ini)
    assert install.returncode == 0, install.stderr
    assert ("system.database.driver", "RelStorage", False) in exported(admin)

    ids = [record["id"] for record in admin.get(f"{RECORDS}/export.json").json]
    name = uri.rpartition("/")[2]
    holding = "SELECT count(*) FROM object_state WHERE position(%s::bytea in state) > 0"
    assert cluster.query(name, holding, ids[0].encode())[0][0] > 0
    form = admin.get(RECORDS).forms["delete-all-form"]
    form["confirm"] = True
    assert f"Deleted {len(ids)} records" in form.submit(status=303).follow().text
    # RelStorage keeps history by default: the deleted records are still in its tables
    assert all(cluster.query(name, holding, i.encode())[0][0] > 0 for i in ids)

    pack = fftelemetry("pack", ini)
    assert pack.returncode == 0, pack.stderr
    assert pack.stdout.startswith(
        "Packed the RelStorage database (sizes as its server reports them, which a pack need not "
        "shrink): "
    ), pack.stdout
    assert all(cluster.query(name, holding, i.encode())[0][0] == 0 for i in ids)
    status = admin.get("/admin/telemetry").text
    assert 'id="deleted-in-file"' not in status
    site.register("late@example.org")
    assert ("system.users.count", 2, False) in exported(admin)


def test_two_pserve_processes_share_one_postgresql_database(cluster, tmp_path):
    uri = cluster.database()
    settings = app_settings(uri, **CHEAP)
    ports = free_port(), free_port()
    inis = [write_server_ini(tmp_path / f"web{i}.ini", settings, port)
            for i, port in enumerate(ports)]
    with pserve(inis[0], ports[0]) as first, pserve(inis[1], ports[1]) as second:
        assert sign_up_many([first, second]) == []
    with opened(uri) as root:
        check_database(root)


def test_zodbconn_uri_from_env_file_or_environment_and_no_line_shows_its_password(cluster,
                                                                                  tmp_path):
    uri = cluster.database()
    settings = app_settings(uri, **CHEAP)
    del settings["zodbconn.uri"]  # the ini, which others may read, holds no password
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", settings, port)
    (tmp_path / ".env").write_text(f"ZODBCONN_URI={uri}\n")
    (tmp_path / ".env").chmod(0o600)
    created = subprocess.run(
        [str(BIN / "fftelemetry"), "create-user", str(ini), "--email", "owner@example.org",
         "--password-stdin"], input="a good password\n", capture_output=True, text=True,
        timeout=120, check=False, env=child_environment(),
    )
    assert created.returncode == 0, created.stderr
    said = created.stdout + created.stderr
    for args in (["status", ini], ["status", ini, "--json"], ["cron", ini, "--dry-run"]):
        result = fftelemetry(*args)
        assert result.returncode == 0, result.stderr
        said += result.stdout + result.stderr
    assert json.loads(fftelemetry("status", ini, "--json").stdout)["counts"]["all"] > 0
    with pserve(ini, port) as url:
        assert requests.get(f"{url}/health", timeout=30).text.strip() == "OK"
    assert PASSWORD not in said + (tmp_path / "web.log").read_text()
    with opened(uri) as root:
        assert root["users"].by_email("owner@example.org") is not None

    # the environment's wins over .env: a wrong password there stops pserve and the commands in
    # one line naming it, the password left out
    wrong = {"ZODBCONN_URI": uri.replace(PASSWORD, "wrong-password")}
    server = subprocess.run([str(BIN / "pserve"), str(ini)], capture_output=True, text=True,
                            timeout=60, check=False, env=child_environment(wrong))
    command = subprocess.run([str(BIN / "fftelemetry"), "status", str(ini), "--json"],
                             capture_output=True, text=True, timeout=60, check=False,
                             env=child_environment(wrong))
    assert (server.returncode, command.returncode, command.stdout) == (1, 2, "")
    line = one_line(command.stderr)
    assert one_line(server.stderr) == line
    assert line.startswith(
        "fftelemetry: cannot open the PostgreSQL database named in ZODBCONN_URI (in the "
        "environment): "
    ), line
    assert line.endswith(f'password authentication failed for user "{USER}"'), line


def test_production_ini_with_zodbconn_uri_in_env_file_leaves_cron_log_one_line_a_pack(cluster,
                                                                                       tmp_path):
    # the shipped file as it is: its zodbconn.uri, a ZEO server's, is not the one opened
    (tmp_path / "production.ini").write_text((ROOT / "production.ini").read_text())
    (tmp_path / "var").mkdir()
    (tmp_path / ".env").write_text(
        f"ZODBCONN_URI={cluster.database()}\nFFTELEMETRY_SECRET=a-production-secret-0123456789\n"
    )
    lines = []
    for args in (["instructions", "install"], ["pack"], ["pack"]):
        result = subprocess.run(
            [str(BIN / "fftelemetry"), *args, "production.ini"], cwd=tmp_path,
            capture_output=True, text=True, timeout=120, check=False, env=child_environment(),
        )
        assert result.returncode == 0, result.stderr
        lines += (result.stdout + result.stderr).splitlines()
    # RelStorage's INFO lines (a first start's procedures, each pack's 17) are left out
    assert not [line for line in lines if "[relstorage" in line], lines
    packed = [line for line in lines if line.startswith("Packed the RelStorage database")]
    assert len(packed) == 2, lines


def run_readme_line(command, cluster, name, folder, check=True):
    """A README line for the database `name` of `cluster`: its server's host, port and name in
    place of the README's dbhost, 5432 and fftelemetry (the user's name is the same)."""
    args = shlex.split(command)
    if args[0].startswith("pg_"):
        args[0] = str(cluster.binaries / args[0])
        args = ["127.0.0.1" if a == "dbhost" else str(cluster.port) if a == "5432" else a
                for a in args]
        named = len(args) - 1 if "pg_dump" in args[0] else args.index("-d") + 1
        args[named] = name
    result = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=60,
                            check=False, env=child_environment({"PGPASSWORD": PASSWORD}))
    assert result.returncode == 0 or not check, f"{command}: {result.stderr}"
    return result


def status(ini):
    result = fftelemetry("status", ini, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_dump_while_serving_and_its_restore_as_the_readme_gives_them(cluster, tmp_path):
    readme = README.read_text()
    for command in (FOLDER, DUMP, RESTORE):
        assert f"\n{command}\n" in readme, command  # tested as the README gives it
    uri = cluster.database()
    name = uri.rpartition("/")[2]
    port = free_port()
    ini = write_server_ini(tmp_path / "app.ini", app_settings(uri, **CHEAP), port)
    assert fftelemetry("instructions", "install", ini).returncode == 0
    status(ini)  # its own first use collected before the dump
    before = status(ini)
    run_readme_line(FOLDER, cluster, name, tmp_path)
    with pserve(ini, port):
        run_readme_line(DUMP, cluster, name, tmp_path)
    delete = fftelemetry("delete", "all", ini, "--yes")
    assert delete.returncode == 0, delete.stderr
    assert status(ini)["counts"]["all"] < before["counts"]["all"]

    run_readme_line(RESTORE, cluster, name, tmp_path)
    after = status(ini)
    assert after["counts"] == before["counts"]
    assert after["installation_id"] == before["installation_id"]
    assert after["records_deleted_at"] is None


def test_a_restore_that_fails_leaves_the_database_as_it_was(cluster, tmp_path):
    """A dump damaged on its way (a bad disk, a copy cut short): pg_restore went on past each
    error and left the database without some of RelStorage's functions, indexes or constraints,
    on which the next write failed; in one transaction (the README's) it changes nothing."""
    uri = cluster.database()
    name = uri.rpartition("/")[2]
    ini = write_server_ini(tmp_path / "app.ini", app_settings(uri, **CHEAP))
    assert fftelemetry("instructions", "install", ini).returncode == 0
    status(ini)  # its own first use collected
    before = status(ini)
    run_readme_line(FOLDER, cluster, name, tmp_path)
    run_readme_line(DUMP, cluster, name, tmp_path)
    dump = tmp_path / "var" / "backups" / "app.dump"
    whole = dump.read_bytes()
    failed = []
    for part in (0.2, 0.6, 0.95):  # in a function's, an index's, the data's (here)
        at = int(len(whole) * part)
        dump.write_bytes(whole[:at] + bytes(64) + whole[at + 64:])
        if run_readme_line(RESTORE, cluster, name, tmp_path, check=False).returncode:
            failed.append(part)
            assert status(ini) == before, part  # status writes: its use is collected
    assert failed, "no damage was noticed"


@contextmanager
def opened(uri):
    """The application root of the database at `uri`, read in a transaction of its own."""
    factory, dbkw = resolve_uri(uri)
    db = DB(factory(), **dbkw)
    try:
        with db.transaction() as conn:
            yield appmaker(conn.root())
    finally:
        db.close()


def one_line(stderr):
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert PASSWORD not in stderr and "wrong-password" not in stderr
    return lines[0]


def refused(uri, tmp_path):
    """pserve's and `fftelemetry status`'s lines for an app whose database is `uri`."""
    port = free_port()
    ini = write_server_ini(tmp_path / "web.ini", app_settings(uri), port)
    server = subprocess.run([str(BIN / "pserve"), str(ini)], capture_output=True, text=True,
                            timeout=60, check=False, env=child_environment())
    assert server.returncode == 1, server.stderr
    command = fftelemetry("status", ini)
    assert command.returncode == 2, command.stderr
    line = one_line(command.stderr)
    assert one_line(server.stderr) == line
    named = f"fftelemetry: cannot open the PostgreSQL database named in {ini}: "
    assert line.startswith(named), line
    return line


def test_a_postgresql_server_not_running_is_one_line(tmp_path):
    uri = f"postgres://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/app"
    assert "Connection refused" in refused(uri, tmp_path)


def test_a_wrong_password_is_one_line_without_it(cluster, tmp_path):
    uri = cluster.database().replace(PASSWORD, "wrong-password")
    assert f'password authentication failed for user "{USER}"' in refused(uri, tmp_path)


def test_a_missing_database_is_one_line(cluster, tmp_path):
    line = refused(cluster.uri("nothing_here"), tmp_path)
    assert line.endswith('database "nothing_here" does not exist')
    # what the server says is the line's, but for the password, wherever it is in it
    line = refused(cluster.uri(PASSWORD), tmp_path)
    assert line.endswith('database "***" does not exist')


def test_a_uri_without_its_port_is_one_line(tmp_path):
    line = refused(f"postgres://{USER}:{PASSWORD}@127.0.0.1/app", tmp_path)
    assert line.endswith("leaves out its port, which RelStorage needs written out "
                         "(postgres://user:password@host:port/dbname)")
    line = refused(f"postgres://127.0.0.1:{free_port()}/", tmp_path)  # each part it names
    assert line.endswith("leaves out its user, password, database name, which RelStorage needs "
                         "written out (postgres://user:password@host:port/dbname)")


def test_a_uri_without_its_host_is_one_line(tmp_path, monkeypatch):
    # RelStorage writes host='None', a name libpq would look up: PGHOSTADDR keeps that
    # connection on loopback, and refused, as a host the URI names would be
    monkeypatch.setenv("PGHOSTADDR", "127.0.0.1")
    line = refused(f"postgres://{USER}:{PASSWORD}@:{free_port()}/app", tmp_path)
    assert line.endswith("zodbconn.uri leaves out its host, which RelStorage needs written out "
                         "(postgres://user:password@host:port/dbname)"), line


def test_a_uri_libpq_cannot_take_is_one_line(tmp_path):
    line = refused(f"postgres://{USER}:{PASSWORD}@127.0.0.1:{free_port()}/app?ssl_mode=require",
                   tmp_path)
    assert line.endswith(
        "the connection string is not valid (RelStorage makes it from zodbconn.uri: a ' or a "
        "backslash in the password? its ssl_mode, which libpq does not know? set PGSSLMODE in "
        "the environment instead)"
    ), line


def test_a_keep_history_the_database_was_not_made_with_is_one_line(cluster, tmp_path):
    uri = cluster.database()  # history-preserving, RelStorage's default, once made
    made = fftelemetry("status", write_server_ini(tmp_path / "made.ini", app_settings(uri)))
    assert made.returncode == 0, made.stderr
    line = refused(f"{uri}?keep_history=false", tmp_path)  # pserve's was a traceback
    assert "a history-free adapter can not connect to a history-preserving database" in line
    assert line.endswith("(zodbconn.uri's keep_history must be what the database was made with)")


def test_a_history_free_database_opened_keeping_history_is_one_line(cluster, tmp_path):
    uri = cluster.database()
    made = write_server_ini(tmp_path / "made.ini", app_settings(f"{uri}?keep_history=false"))
    assert fftelemetry("status", made).returncode == 0
    # RelStorage makes history's tables beside its own, and fails: the line says which setting
    line = refused(uri, tmp_path)
    assert line.endswith("(a history-free database? zodbconn.uri then needs keep_history=false)")
    again = fftelemetry("status", made)
    assert again.returncode == 0, again.stderr  # nothing was left of that attempt


def test_the_receivers_database_is_packed_while_the_receiver_serves(cluster, tmp_path):
    """`pserve receiver.ini` on PostgreSQL: `fftelemetry pack receiver.ini` drops the old
    revisions each batch left in object_state, and the receiver, serving on, keeps every
    record, batch and count."""
    uri, port = cluster.database(), free_port()
    ini = write_server_ini(tmp_path / "receiver.ini", {"zodbconn.uri": uri}, port,
                           use="egg:fftelemetry#receiver")
    revisions = "SELECT count(*) FROM object_state"
    name = uri.rpartition("/")[2]
    with pserve(ini, port) as base:
        resent = [record(), record()]
        stored_batch(requests, base, resent)
        for _ in range(20):
            stored_batch(requests, base, [record()])
        stats = requests.get(f"{base}/stats", timeout=30).json()
        assert stats == {"records": 22, "batches": 21}
        before = cluster.query(name, revisions)[0][0]

        pack = fftelemetry("pack", ini)

        assert pack.returncode == 0, pack.stderr
        assert pack.stdout.startswith("Packed the RelStorage database"), pack.stdout
        assert cluster.query(name, revisions)[0][0] < before / 4
        assert requests.get(f"{base}/stats", timeout=30).json() == stats
        stored_batch(requests, base, resent)  # counted once
        stored_batch(requests, base, [record()])
        assert requests.get(f"{base}/stats", timeout=30).json() == {"records": 23, "batches": 23}
