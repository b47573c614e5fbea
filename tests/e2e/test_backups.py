"""Backups with ZODB's repozo, as the README gives them: made while the ZEO server (started from
the shipped zeo.conf) and the receiver serve, restored with every process stopped. The commands
run here are the README's, word for word, from a folder laid out as the project's (var/)."""

import shlex
import subprocess
import time
from pathlib import Path

import pytest
import requests

from .harness import (
    BIN,
    app_settings,
    child_environment,
    csrf_token,
    free_port,
    new_session,
    post_form,
    pserve,
    runzeo_shipped,
    wait_until,
    write_server_ini,
    zeo_uri,
)
from .test_pack import PASSWORD, RECORDS, files_holding, register

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[2] / "README.md"
FOLDERS = "mkdir -p var/backups/app var/backups/receiver"
FULL = (
    ".venv/bin/repozo -B -F -r var/backups/app -f var/Data.fs",
    ".venv/bin/repozo -B -F -r var/backups/receiver -f var/receiver.fs",
)
INCREMENTAL = ".venv/bin/repozo -B -r var/backups/app -f var/Data.fs"
RESTORE = (
    ".venv/bin/repozo -R -r var/backups/app -o var/Data.fs",
    ".venv/bin/repozo -R -r var/backups/receiver -o var/receiver.fs",
)


def run(command, folder):
    """A README command line, run from `folder` as from the project's."""
    args = shlex.split(command)
    if args[0].startswith(".venv/bin/"):
        args[0] = str(BIN / Path(args[0]).name)
    result = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, f"{command}: {result.stderr}"


def record_ids(session, base):
    return [record["id"] for record in session.get(f"{base}{RECORDS}/export.json").json()]


def received(receiver):
    return requests.get(f"{receiver}/stats", timeout=10).json()["records"]


def submit(session, base, count):
    page = session.get(f"{base}{RECORDS}")
    done = session.post(f"{base}{RECORDS}/submit", data={"csrf_token": csrf_token(page.text)})
    assert f"Sent {count} records;" in done.text, done.text[:500]


def test_a_backup_made_while_serving_restores_records_deleted_since(tmp_path):
    readme = README.read_text()
    for command in (FOLDERS, *FULL, INCREMENTAL, *RESTORE):
        assert f"\n{command}" in readme, command  # tested as the README gives it

    var = tmp_path / "var"
    port, receiver_port = free_port(), free_port()
    receiver_ini = write_server_ini(
        tmp_path / "receiver.ini", {"zodbconn.uri": f"file://{var}/receiver.fs"}, receiver_port,
        use="egg:fftelemetry#receiver",
    )
    settings = app_settings(zeo_uri(var), **{
        "fftelemetry.password_profile": "cheapest",
        "fftelemetry.telemetry_url": f"http://127.0.0.1:{receiver_port}",
    })
    ini = write_server_ini(tmp_path / "web.ini", settings, port)

    with (
        runzeo_shipped(tmp_path),
        pserve(receiver_ini, receiver_port) as receiver,
        pserve(ini, port) as base,
    ):
        admin = register(base, "owner@example.org")
        register(base, "second@example.org")
        register(base, "third@example.org")
        submit(admin, base, 3)
        assert received(receiver) == 3

        run(FOLDERS, tmp_path)
        for command in FULL:
            run(command, tmp_path)
        full_backup = time.gmtime()[:6]
        register(base, "fourth@example.org")
        # repozo names its files by the second: an incremental made in the second of the full
        # backup would sort before it, and a restore would leave it out
        wait_until(lambda: time.gmtime()[:6] != full_backup, 2, "the next second")
        run(INCREMENTAL, tmp_path)
        backed_up = record_ids(admin, base)
        assert len(backed_up) == 4

        register(base, "fifth@example.org")  # after every backup: the restore loses it
        submit(admin, base, 2)
        assert received(receiver) == 5
        page = admin.get(f"{base}{RECORDS}")
        done = admin.post(f"{base}{RECORDS}/delete-all", data={
            "confirm": "yes", "shown": "5", "csrf_token": csrf_token(page.text)})
        assert "Deleted 5 records" in done.text
        assert record_ids(admin, base) == []

    for command in RESTORE:
        run(command, tmp_path)

    with (
        runzeo_shipped(tmp_path),
        pserve(receiver_ini, receiver_port) as receiver,
        pserve(ini, port) as base,
    ):
        admin = new_session()
        signed_in = post_form(admin, f"{base}/login",
                              {"email": "owner@example.org", "password": PASSWORD})
        assert signed_in.status_code == 200, signed_in.text[:300]
        assert record_ids(admin, base) == backed_up  # the full backup and the incremental
        assert received(receiver) == 3  # as the receiver's full backup had it


EXPIRE = ".venv/bin/repozo -B -F -k -r var/backups/app -f var/Data.fs"


def test_after_a_pack_a_full_backup_with_k_leaves_no_deleted_record_in_the_backups(tmp_path):
    readme = README.read_text()
    assert f"\n{EXPIRE}" in readme and "`-D 20" in readme  # tested as the README gives them

    var, backups = tmp_path / "var", tmp_path / "var" / "backups" / "app"
    port = free_port()
    settings = app_settings(zeo_uri(var), **{"fftelemetry.password_profile": "cheapest"})
    ini = write_server_ini(tmp_path / "web.ini", settings, port)
    with runzeo_shipped(tmp_path), pserve(ini, port) as base:
        admin = register(base, "owner@example.org")
        register(base, "second@example.org")
        run(FOLDERS, tmp_path)
        run(FULL[0], tmp_path)
        in_full = record_ids(admin, base)
        full_backup = time.gmtime()
        register(base, "third@example.org")
        wait_until(lambda: time.gmtime()[:6] != full_backup[:6], 2, "the next second")
        run(INCREMENTAL, tmp_path)
        deleted = record_ids(admin, base)
        assert len(deleted) == 3

        # -D: the state as of the full backup, without the incremental made after it
        date = time.strftime("%Y-%m-%d-%H-%M-%S", full_backup)
        run(f".venv/bin/repozo -R -r var/backups/app -D {date} -o var/as-of-full.fs", tmp_path)
        assert files_holding(var, in_full) >= {"as-of-full.fs"}
        assert "as-of-full.fs" not in files_holding(var, set(deleted) - set(in_full))
        (var / "as-of-full.fs").unlink()

        page = admin.get(f"{base}{RECORDS}")
        done = admin.post(f"{base}{RECORDS}/delete-all", data={
            "confirm": "yes", "shown": "3", "csrf_token": csrf_token(page.text)})
        assert "Deleted 3 records" in done.text
        packed = subprocess.run([str(BIN / "fftelemetry"), "pack", str(ini)],
                                env=child_environment(), capture_output=True, text=True,
                                timeout=60, check=False)
        assert packed.returncode == 0, packed.stderr
        assert files_holding(backups, deleted)  # the pack left the backups as they were

        time.sleep(1)  # a full backup named in the second of the incremental would sort before it
        run(EXPIRE, tmp_path)

    assert files_holding(backups, deleted) == set()
    assert len(list(backups.glob("*.fs"))) == 1 and not list(backups.glob("*.deltafs"))
