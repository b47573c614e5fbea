"""The console commands on a read-only database (a replica: zodbconn.uri's read_only=true, or a
read-only ZEO server), as real subprocesses: a command that only reads runs, its use left for a
run on the writable database to collect; one that writes is refused before it does anything."""

import json
import logging
import re
import subprocess
import time
from pathlib import Path

import pytest
import ZEO
from ZODB import DB

from fftelemetry.scripting import close_databases, is_read_only
from tests.conftest import Stub, free_port, run_pserve, serving, with_zeo_logger
from tests.functional.test_cli import (
    assert_one_line,
    collected_days_ago,
    made_quietly,
    sent_days_ago,
    stored,
    values,
)

REFUSED = (
    "the database is read-only (zodbconn.uri's read_only=true, or a read-only ZEO server) and "
    "this command writes to it: nothing was done; run it with the writable database's config"
)
REPLICA = "read-only (a replica): cron, pack and deletes run with the writable database's config"
WRITABLE_SIDE = (
    "where the writable database's config runs it: this one is read-only (a replica), and cron "
    "does not run on it"
)
NOT_COLLECTED = (
    "WARNING [fftelemetry.cli.collecting] system.command.executed 'status' not collected (the "
    "database is read-only); a later run collects it on the writable database"
)


def replica(tmp_path, write_ini, **settings):
    """An ini naming the site's database read-only, as a replica's would."""
    uri = f"file://{tmp_path}/Data.fs?read_only=true"
    return write_ini("replica.ini", **{"zodbconn.uri": uri, **settings})


def warnings(result):
    return [line for line in result.stderr.splitlines() if not line.startswith("INFO [")]


@pytest.mark.parametrize(("sent_ago", "overdue"), [(1, False), (10, True)],
                         ids=["on-time", "overdue"])
def test_status_reads_a_read_only_database_and_leaves_its_use_to_a_writable_run(
    tmp_path, write_ini, run_cli, receiver, sent_ago, overdue
):
    # status's first use is not collected yet (made with telemetry off): collecting it was a
    # write, and the check failed with exit 1, which --check also gives for "overdue"
    made_quietly(write_ini, run_cli)
    assert sent_days_ago(tmp_path, receiver.url, sent_ago, [1, 2]) == 2
    collected_days_ago(tmp_path, sent_ago - 0.5, [3])  # pending since
    ini = replica(tmp_path, write_ini, **{"fftelemetry.telemetry_url": receiver.url})
    before = (tmp_path / "Data.fs").read_bytes()

    check = run_cli("status", ini, "--check")
    assert check.returncode == (1 if overdue else 0), check.stderr
    [line] = check.stdout.splitlines()
    assert line.startswith("OVERDUE: submissions overdue since " if overdue else
                           "OK: 1 record pending, last successful submission ")
    if overdue:  # not the replica's folder's cron.log: cron does not run there
        assert line.endswith(f"check fftelemetry cron's output ({WRITABLE_SIDE})")
    assert warnings(check) == [NOT_COLLECTED]
    as_json = run_cli("status", ini, "--json")
    assert (as_json.returncode, warnings(as_json)) == (0, [NOT_COLLECTED])
    assert json.loads(as_json.stdout)["overdue"] is overdue
    assert json.loads(as_json.stdout)["read_only"] is True
    text = run_cli("status", ini)
    assert (text.returncode, warnings(text)) == (0, [NOT_COLLECTED])
    assert "Records: 3 (1 pending, 2 submitted)" in text.stdout
    assert f"\nDatabase: {REPLICA}\nRecords: " in text.stdout
    assert (tmp_path / "Data.fs").read_bytes() == before

    # the next run on the writable database collects it
    writable = run_cli("status", write_ini(**{"fftelemetry.telemetry_url": receiver.url}))
    assert (writable.returncode, warnings(writable)) == (0, [])
    assert "Database: " not in writable.stdout
    assert values(stored(tmp_path)[1], "system.command.executed") == ["status"]


def test_cron_on_a_read_only_database_sends_nothing(tmp_path, write_ini, run_cli):
    # cron's use known already, its collection no write: cron went on to POST the pending
    # records, and failed to mark them, so a replica's cron would send them every day
    stub = Stub()
    with serving(stub) as url:
        writable = write_ini(**{"fftelemetry.telemetry_url": url})
        assert run_cli("cron", writable).returncode == 0
        assert len(stub.requests) == 1
        collected_days_ago(tmp_path, 1, [5])
        ini = replica(tmp_path, write_ini, **{"fftelemetry.telemetry_url": url})
        before = (tmp_path / "Data.fs").read_bytes()

        for args in (["cron", ini, "--force"], ["cron", ini]):
            result = run_cli(*args)
            assert_one_line(result, 2, f"fftelemetry cron: {REFUSED}")
            assert result.stdout == ""
        dry_run = run_cli("cron", ini, "--dry-run", "--force")  # reads only: runs
        assert (dry_run.returncode, warnings(dry_run)) == (0, [])
        assert '"value":5' in dry_run.stdout
        assert len(stub.requests) == 1, "nothing sent from the replica"
        assert (tmp_path / "Data.fs").read_bytes() == before

        # the writable database's cron sends them
        assert run_cli("cron", writable, "--force").returncode == 0
    assert len(stub.requests) == 2
    assert [sent for _, _, sent in stored(tmp_path)[1]] == [True, True]  # cron's use, and 5


@pytest.mark.parametrize(
    "args",
    [
        ["pack"],
        ["create-user", "--email", "ann@example.org", "--password-stdin"],
        ["delete", "all", "--yes"],
        ["delete", "submitted", "--yes"],
    ],
    ids=["pack", "create-user", "delete-all", "delete-submitted"],
)
def test_each_writing_command_is_refused_on_a_read_only_database(
    tmp_path, write_ini, run_cli, receiver, args
):
    ini = write_ini(**{"fftelemetry.telemetry_url": receiver.url})
    for ran in (["instructions", "install"], ["cron"], ["status"]):  # 6 sent, 1 pending
        assert run_cli(*ran, ini).returncode == 0
    before = (tmp_path / "Data.fs").read_bytes()
    command, *options = args
    result = run_cli(command, *options, replica(tmp_path, write_ini), input="a good password\n")
    assert_one_line(result, 2, f"fftelemetry {command}: {REFUSED}")
    assert result.stdout == ""
    assert (tmp_path / "Data.fs").read_bytes() == before


def test_instructions_and_delete_without_yes_run_on_a_read_only_database(
    tmp_path, write_ini, run_cli, receiver
):
    ini = write_ini(**{"fftelemetry.telemetry_url": receiver.url})
    assert run_cli("cron", ini).returncode == 0  # cron's use sent, its collection pending
    before = (tmp_path / "Data.fs").read_bytes()
    read_only = replica(tmp_path, write_ini)

    shown = run_cli("instructions", "install", read_only)
    assert shown.returncode == 0, shown.stderr
    assert "Next steps:" in shown.stdout
    assert shown.stdout.endswith(
        "could not be recorded this time (see the warning); running this command with the "
        "writable database's config records them.\n"
    )
    assert warnings(shown) == [
        "WARNING [fftelemetry.cli.collecting] system.command.executed 'instructions' not "
        "collected (the database is read-only); a later run collects it on the writable database",
        "WARNING [fftelemetry.cli.collecting] system facts not collected (the database is "
        "read-only); a later run of instructions collects them on the writable database",
    ]
    asked = run_cli("delete", "all", read_only)
    assert_one_line(asked, 3, "would delete 1 record")
    assert (tmp_path / "Data.fs").read_bytes() == before


def test_a_replica_with_telemetry_off_warns_of_nothing_left_to_collect(
    tmp_path, write_ini, run_cli
):
    # while off, a read-only database's commands logged that their use was "not collected
    # ... a later run collects it on the writable database": off, no run collects anything
    made_quietly(write_ini, run_cli)
    ini = replica(tmp_path, write_ini, **{"fftelemetry.send_telemetry": "false"})

    check = run_cli("status", ini, "--check")
    assert (check.returncode, warnings(check)) == (0, [])
    assert check.stdout == "OK: telemetry is disabled (ini): nothing is sent\n"
    shown = run_cli("instructions", "install", ini)
    assert (shown.returncode, warnings(shown)) == (0, [])
    assert shown.stdout.endswith("Telemetry is off: nothing was collected.\n")


ON_A_REPLICA = (
    "  1. Add no cron or pack line, and create no user, with this config: its database is "
    "read-only (a replica) and those commands write to it, so they would be refused; run this "
    "command with the writable database's config for them.\n"
)


def test_install_instructions_on_a_read_only_database_print_no_line_it_refuses(
    tmp_path, write_ini, run_cli
):
    # they printed create-user, and cron and pack lines that failed there every day
    made_quietly(write_ini, run_cli)
    shown = run_cli("instructions", "install", replica(tmp_path, write_ini))
    assert shown.returncode == 0, shown.stderr
    assert ON_A_REPLICA in shown.stdout
    assert not re.search(r"fftelemetry (create-user|cron|pack) ", shown.stdout), shown.stdout

    # what stands on a replica: the check's crontab line, which runs there as cron runs it
    # (silent unless the check fails), and pserve's
    check = re.search(r"^  2\. .*\n +(37 9 \* \* \*  .*)$", shown.stdout, re.M).group(1)
    cron = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh"}
    ran = subprocess.run(["/bin/sh", "-c", check.removeprefix("37 9 * * *  ")], cwd=tmp_path,
                         env=cron, capture_output=True, text=True, timeout=60, check=False)
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "", "")
    assert re.search(r"^  3\. Start the application: \S*pserve \S*replica\.ini$", shown.stdout,
                     re.M)


UPGRADE_ON_A_REPLICA = (
    "  2. Restart the application on this config. Its database is read-only (a replica): this\n"
    "     command found it up to date and changed nothing, as nothing run with this config can;"
    " the\n"
)


def test_upgrade_instructions_on_a_read_only_database_say_it_was_not_brought_up_to_date(
    tmp_path, write_ini, run_cli
):
    # they said the app brings its database up to date "as this command did": not a replica's
    made_quietly(write_ini, run_cli)
    before = (tmp_path / "Data.fs").read_bytes()
    shown = run_cli("instructions", "upgrade", replica(tmp_path, write_ini))
    assert shown.returncode == 0, shown.stderr
    assert ". Its database is of generation 1.\n" in shown.stdout
    assert UPGRADE_ON_A_REPLICA in shown.stdout
    assert "as this command did" not in shown.stdout
    assert (tmp_path / "Data.fs").read_bytes() == before
    writable = run_cli("instructions", "upgrade", write_ini())
    assert "as it starts, as this command did (the daily cron" in writable.stdout


def connected(storage, expected):
    deadline = time.monotonic() + 10
    while storage.is_connected() != expected:
        assert time.monotonic() < deadline, "ZEO client state"
        time.sleep(0.05)


def test_a_read_only_zeo_client_is_read_only_and_a_lost_server_is_not(tmp_path):
    # ZEO's client calls itself read-only while its server is away: that is a lost server
    # (said as such by the load or commit that needs it), not a replica. The server runs in a
    # process of its own: stopped in this one's thread, it left the client's socket open now
    # and then (1 run in 12), and the client took it for connected past the deadline.
    address, stop = ZEO.server(path=str(tmp_path / "Data.fs"), threaded=False)
    writable = DB(ZEO.client(address, wait_timeout=10))
    read_only = DB(ZEO.client(address, wait_timeout=10, read_only=True))
    try:
        assert (is_read_only(writable), is_read_only(read_only)) == (False, True)
        stop()
        connected(writable.storage, False)
        assert writable.storage.isReadOnly()
        assert not is_read_only(writable)
    finally:
        writable.close()
        read_only.close()


@pytest.mark.parametrize("query", ["read_only=true", "read_only_fallback=true"])
def test_a_read_only_zeo_server_refuses_cron_and_answers_status(
    tmp_path, write_ini, run_cli, query
):
    # a replica's ZEO server: a client that asks for read-only, or settles for it (fallback)
    made_quietly(write_ini, run_cli)
    collected_days_ago(tmp_path, 1, [1])
    address, stop = ZEO.server(path=str(tmp_path / "Data.fs"), zeo_conf={"read_only": True})
    try:
        host, port = address
        ini = write_ini("zeo.ini", **{"zodbconn.uri": f"zeo://{host}:{port}?{query}"})
        check = run_cli("status", ini, "--check")
        cron = run_cli("cron", ini, "--force")
        install = run_cli("instructions", "install", ini)
        upgrade = run_cli("instructions", "upgrade", ini)
        # the fallback's writable try, refused by the server, was logged as an ERROR first
        assert (check.returncode, warnings(check)) == (0, [NOT_COLLECTED]), check.stderr
        assert check.stdout.startswith("OK: 1 record pending")
        assert (cron.returncode, warnings(cron)) == (2, [f"fftelemetry cron: {REFUSED}"])
        assert (install.returncode, ON_A_REPLICA in install.stdout) == (0, True), install.stderr
        assert (upgrade.returncode, UPGRADE_ON_A_REPLICA in upgrade.stdout) == (0, True)
    finally:
        stop()


def test_a_read_only_zeo_server_refusing_a_writable_client_is_still_an_error(
    tmp_path, write_ini, run_cli
):
    # the fallback's refusal is lowered (above); the same refusal of a client that asked for a
    # writable connection only (a replica's ini without read_only=true) is ZEO's ERROR still
    made_quietly(write_ini, run_cli)
    address, stop = ZEO.server(path=str(tmp_path / "Data.fs"), zeo_conf={"read_only": True})
    host, port = address
    uri = f"zeo://{host}:{port}?wait_timeout=1"
    fallback = Path(write_ini("fallback.ini", **{"zodbconn.uri": f"{uri}&read_only_fallback=true"}))
    with_zeo_logger(fallback, "INFO")  # an ini that shows ZEO's INFO lines
    try:
        writable_ini = write_ini("writable.ini", **{"zodbconn.uri": uri})
        writable = run_cli("status", writable_ini)
        settled = run_cli("status", str(fallback))
    finally:
        stop()
    refused = " from server: ZODB.POSException.ReadOnlyError:()"
    assert writable.returncode == 2
    assert f"ERROR [ZEO.asyncio.client] ('{host}', {port}), '1', 0{refused}" in (
        writable.stderr.splitlines()
    )
    # and the line it ends with says why, not that the server cannot be reached
    assert writable.stderr.splitlines()[-1] == (
        f"fftelemetry: the ZEO server named in {writable_ini} is read-only and refused a writable"
        " connection: name the writable server, or add read_only=true to zodbconn.uri for a"
        " replica"
    )
    assert settled.returncode == 0, settled.stderr
    [line] = [line for line in settled.stderr.splitlines() if line.endswith(refused)]
    # the fallback's marker, an object(), as the client's process shows it
    assert re.fullmatch(
        rf"INFO \[ZEO\.asyncio\.client\] \('{host}', {port}\), '1', <object object at 0x\w+>"
        + re.escape(refused), line
    )


def test_a_read_only_zeo_server_of_a_named_database_is_named_with_its_setting(
    tmp_path, write_ini, run_cli
):
    # the named database's server refuses the writable connection, not the primary's: the line
    # names zodbconn.uri.NAME and tells to add read_only=true to that setting
    DB(str(tmp_path / "other.fs")).close()  # a database the read-only server can open
    address, stop = ZEO.server(path=str(tmp_path / "other.fs"), zeo_conf={"read_only": True})
    host, port = address
    ini = write_ini(**{"zodbconn.uri.other": f"zeo://{host}:{port}?wait_timeout=1"})
    try:
        result = run_cli("status", ini)
    finally:
        stop()
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"fftelemetry: the ZEO server named in zodbconn.uri.other in {ini} is read-only and "
        "refused a writable connection: name the writable server, or add read_only=true to "
        "zodbconn.uri.other for a replica"
    )


@pytest.mark.parametrize("quieted", ["ZEO", "root"])
def test_a_read_only_zeo_server_is_said_to_refuse_whatever_the_log_levels(
    tmp_path, write_ini, run_cli, quieted
):
    # the refusal was told from ZEO's ERROR record, which a ZEO logger (or, in pserve, the root
    # logger it inherits from) set to CRITICAL never made: "cannot reach the ZEO server"
    made_quietly(write_ini, run_cli)
    address, stop = ZEO.server(path=str(tmp_path / "Data.fs"), zeo_conf={"read_only": True})
    host, port = address
    ini = Path(write_ini(**{"zodbconn.uri": f"zeo://{host}:{port}?wait_timeout=1"}))
    if quieted == "ZEO":  # a command: ZEO's logger at CRITICAL
        with_zeo_logger(ini, "CRITICAL")
    else:  # pserve, which leaves ZEO's logger to the root's level: CRITICAL
        ini.write_text(ini.read_text().replace("[logger_root]\nlevel = INFO", "[logger_root]\n"
                                               "level = CRITICAL", 1)
                       + f"\n[server:main]\nuse = egg:fftelemetry#waitress\n"
                       f"listen = 127.0.0.1:{free_port()}\n")
    try:
        result = run_cli("status", str(ini)) if quieted == "ZEO" else run_pserve(str(ini))
    finally:
        stop()
    assert (result.returncode, result.stderr.splitlines()) == (
        2 if quieted == "ZEO" else 1,  # pserve's SystemExit
        [f"fftelemetry: the ZEO server named in {ini} is read-only and refused a writable"
         " connection: name the writable server, or add read_only=true to zodbconn.uri for a"
         " replica"],
    )  # and nothing else: ZEO's ERROR lines stay as unshown as the ini set them


def test_a_read_only_zeo_server_is_said_to_refuse_with_zeos_logger_disabled(tmp_path, make_app):
    # a logger disabled (logging's fileConfig or dictConfig with disable_existing_loggers, run
    # in a process that had imported ZEO) makes no record at all, the refusal's ERROR neither
    close_databases(make_app().registry)  # the app's database, made, for the server to serve
    address, stop = ZEO.server(path=str(tmp_path / "Data.fs"), zeo_conf={"read_only": True})
    host, port = address
    zeo_client_log = logging.getLogger("ZEO.asyncio.client")
    before = zeo_client_log.disabled
    zeo_client_log.disabled = True
    try:
        with pytest.raises(SystemExit, match="is read-only and refused a writable connection"):
            make_app(**{"zodbconn.uri": f"zeo://{host}:{port}?wait_timeout=1"})
        assert zeo_client_log.disabled  # put back as the operator set it
    finally:
        zeo_client_log.disabled = before
        stop()


@pytest.mark.parametrize("quieted", [False, True], ids=["ERROR", "CRITICAL"])
def test_a_zeo_server_refusing_a_storage_it_does_not_serve_says_so_in_one_line(
    tmp_path, write_ini, run_cli, quieted
):
    # ZEO's client logs that refusal as an ERROR and waits on until wait_timeout: start-up said
    # "cannot reach the ZEO server …: is runzeo running?" of a server running, nor read-only
    address, stop = ZEO.server(path=str(tmp_path / "Data.fs"))
    host, port = address
    ini = Path(write_ini(**{"zodbconn.uri.other": f"file://{tmp_path}/other.fs",
                            "zodbconn.uri": f"zeo://{host}:{port}?storage=nope&wait_timeout=1"}))
    if quieted:  # heard whatever the operator's levels, as the read-only refusal is
        with_zeo_logger(ini, "CRITICAL")
    try:
        result = run_cli("status", str(ini))
    finally:
        stop()
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"fftelemetry: the ZEO server named in {ini} serves no storage named 'nope': name one it "
        "serves in zodbconn.uri's storage= (runzeo's default is 1)"
    )
    if quieted:
        assert len(result.stderr.splitlines()) == 1, result.stderr


def test_zeos_logger_is_put_back_at_its_level_once_the_app_has_started(tmp_path, make_app):
    # start-up lowers a ZEO client logger set above ERROR to hear a refusal: after it, ZEO's
    # ERROR lines stay as unshown as the operator set them
    close_databases(make_app().registry)
    address, stop = ZEO.server(path=str(tmp_path / "Data.fs"))
    host, port = address
    zeo_client_log = logging.getLogger("ZEO.asyncio.client")
    before = zeo_client_log.level
    zeo_client_log.setLevel(logging.CRITICAL)
    try:
        close_databases(make_app(**{"zodbconn.uri": f"zeo://{host}:{port}"}).registry)
        assert zeo_client_log.level == logging.CRITICAL
    finally:
        zeo_client_log.setLevel(before)
        stop()
