"""`fftelemetry delete all|submitted CONFIG_URI [--yes]` as a real subprocess on a real FileStorage,
with records collected by the real commands and sent by the real sender to the real receiver."""


import pytest
from ZODB import DB
from ZODB.FileStorage import FileStorage

from tests.conftest import file_size_limit
from tests.functional.test_cli import assert_one_line, stored, values
from tests.functional.test_pack import STILL_IN_FILE, packed, status_lines

UNTIL_PACKED = (
    "The deleted records remain in the database file's history until it is packed: run "
    "fftelemetry pack (weekly in scripts/crontab.example).\n"
)
FACTS = ("system.python.version", "system.os.version", "system.database.driver",
         "system.os.is_docker")


def sent_and_pending(tmp_path, write_ini, run_cli, receiver):
    """An ini whose database holds 6 records sent to the receiver (the 4 system facts and the
    first uses of instructions and cron) and 1 pending (status's first use)."""
    ini = write_ini(**{"fftelemetry.telemetry_url": receiver.url})
    for args in (["instructions", "install"], ["cron"], ["status"]):
        assert run_cli(*args, ini).returncode == 0
    assert [submitted for _, _, submitted in stored(tmp_path)[1]] == [True] * 6 + [False]
    return ini


def facts_collected_again(tmp_path, run_cli, ini):
    """Run `instructions` again: the system facts it collects anew (those not known as sent)."""
    before = len(stored(tmp_path)[1])
    assert run_cli("instructions", "install", ini).returncode == 0
    return [key for key, _, _ in stored(tmp_path)[1][before:]]


def test_delete_all_deletes_every_record_and_the_memory_of_the_facts_sent(
    tmp_path, write_ini, run_cli, receiver
):
    ini = sent_and_pending(tmp_path, write_ini, run_cli, receiver)
    result = run_cli("delete", "all", ini, "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Deleted 7 records, pending and submitted. This is a fresh start: facts that were sent "
        "before will be collected and sent again. " + UNTIL_PACKED
    )
    assert stored(tmp_path)[1] == []  # nor a record of the delete itself
    # a fresh start: the facts sent before are collected again (and instructions' first use)
    assert sorted(facts_collected_again(tmp_path, run_cli, ini)) == sorted(
        [*FACTS, "system.command.executed"]
    )
    assert receiver.stats()["records"] == 6, "deleting sends nothing"


def test_delete_submitted_keeps_the_pending_records_and_the_memory(
    tmp_path, write_ini, run_cli, receiver
):
    ini = sent_and_pending(tmp_path, write_ini, run_cli, receiver)
    result = run_cli("delete", "submitted", ini, "--yes")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "Deleted 6 records already submitted; 1 record still pending. Facts that were sent are "
        "remembered, so they are not sent again. " + UNTIL_PACKED
    )
    assert stored(tmp_path)[1] == [("system.command.executed", "status", False)]
    assert facts_collected_again(tmp_path, run_cli, ini) == []  # they were sent: remembered


def test_delete_all_forgets_the_facts_sent_when_no_record_is_left(
    tmp_path, write_ini, run_cli, receiver
):
    ini = sent_and_pending(tmp_path, write_ini, run_cli, receiver)
    assert run_cli("cron", ini, "--force").returncode == 0  # status's record sent too
    assert run_cli("delete", "submitted", ini, "--yes").returncode == 0
    assert stored(tmp_path)[1] == []  # but the memory of the facts sent is there
    asked = run_cli("delete", "all", ini)
    assert_one_line(asked, 3, "would delete 0 records, pending and submitted, and forget which "
                    "facts were sent")
    result = run_cli("delete", "all", ini, "--yes")
    assert result.returncode == 0 and result.stdout.startswith("Deleted 0 records, pending and "
                                                               "submitted. This is a fresh start")
    assert "system.python.version" in facts_collected_again(tmp_path, run_cli, ini)


@pytest.mark.parametrize(
    ("kind", "would"),
    [("all", "would delete 7 records, pending and submitted, and forget which facts were sent "
              "(they would be collected and sent again); nothing deleted: add --yes to delete "
              "them"),
     ("submitted", "would delete 6 records already submitted (their facts stay remembered, so "
                   "they are not sent again); nothing deleted: add --yes to delete them")],
)
def test_without_yes_nothing_is_deleted(tmp_path, write_ini, run_cli, receiver, kind, would):
    ini = sent_and_pending(tmp_path, write_ini, run_cli, receiver)
    data = (tmp_path / "Data.fs").read_bytes()
    result = run_cli("delete", kind, ini)
    assert_one_line(result, 3, "fftelemetry delete: " + would)
    assert result.stdout == ""
    assert (tmp_path / "Data.fs").read_bytes() == data


def test_nothing_to_delete_says_so_and_exits_0(tmp_path, write_ini, run_cli):
    ini = write_ini()
    for args, said in (
        (("submitted",), "No submitted records to delete.\n"),
        (("submitted", "--yes"), "No submitted records to delete.\n"),
        (("all",), "No records to delete.\n"),
        (("all", "--yes"), "No records to delete.\n"),
    ):
        result = run_cli("delete", args[0], ini, *args[1:])
        assert (result.returncode, result.stdout) == (0, said), result.stderr
    assert stored(tmp_path)[:2] == (None, [])  # not even an installation id
    assert status_lines(run_cli, write_ini("off.ini", **{"fftelemetry.send_telemetry": "false"})
                        ) == ["Database packed: never"]  # no delete noted


def test_help_gives_both_statuses_of_a_delete_without_yes(run_cli):
    """--help is where a script's author looks: 3 only when there was something to delete."""
    said = " ".join(run_cli("delete", "--help").stdout.split())
    assert "exit status 3 if there was something to delete" in said
    assert "exits with status 3 (with none to delete, it says so and exits with 0" in said


def test_delete_works_while_telemetry_is_off(tmp_path, write_ini, run_cli, receiver):
    sent_and_pending(tmp_path, write_ini, run_cli, receiver)
    off = write_ini("off.ini", **{"fftelemetry.telemetry_url": receiver.url,
                                  "fftelemetry.send_telemetry": "false"})
    result = run_cli("delete", "submitted", off, "--yes")
    assert result.returncode == 0 and result.stdout.startswith("Deleted 6 records already"), (
        result.stderr
    )
    result = run_cli("delete", "all", off, "--yes")
    assert result.returncode == 0 and result.stdout.startswith("Deleted 1 record, pending and")
    assert stored(tmp_path)[1] == []
    assert receiver.stats()["batches"] == 1, "deleting sends nothing"


def test_delete_leaves_no_record_of_its_own_use(tmp_path, write_ini, run_cli, receiver):
    ini = sent_and_pending(tmp_path, write_ini, run_cli, receiver)
    assert run_cli("delete", "submitted", ini).returncode == 3  # not counted as failing either
    assert run_cli("delete", "submitted", ini, "--yes").returncode == 0
    # none left: said so, not "would delete 0 records" and 3 (only `all` has something left to
    # delete then, the memory of the facts sent), with or without --yes
    for args in ((), ("--yes",)):
        result = run_cli("delete", "submitted", ini, *args)
        assert (result.returncode, result.stdout) == (0, "No submitted records to delete.\n"), (
            result.stderr
        )
    _, records, _ = stored(tmp_path)
    assert records == [("system.command.executed", "status", False)]
    assert values(records, "system.command.errored") == []


def test_status_says_the_deleted_records_are_in_the_file_until_packed(
    tmp_path, write_ini, run_cli, receiver
):
    ini = sent_and_pending(tmp_path, write_ini, run_cli, receiver)
    assert status_lines(run_cli, ini) == ["Database packed: never"]
    assert run_cli("delete", "submitted", ini, "--yes").returncode == 0
    packed_line, note_line = status_lines(run_cli, ini)
    assert packed_line == "Database packed: never" and STILL_IN_FILE.fullmatch(note_line)
    packed(run_cli("pack", ini))
    assert run_cli("delete", "all", ini, "--yes").returncode == 0
    packed_line, note_line = status_lines(run_cli, ini)
    assert packed_line != "Database packed: never" and STILL_IN_FILE.fullmatch(note_line)


def test_bad_usage_is_status_2_and_deletes_nothing(tmp_path, write_ini, run_cli, receiver):
    ini = sent_and_pending(tmp_path, write_ini, run_cli, receiver)
    missing = run_cli("delete", ini, "--yes")  # the ini taken for the kind
    assert missing.returncode == 2 and f"invalid choice: '{ini}'" in missing.stderr
    missing = run_cli("delete", "--yes")
    assert missing.returncode == 2 and "the following arguments are required: kind" in (
        missing.stderr
    )
    unknown = run_cli("delete", "pending", ini, "--yes")
    assert unknown.returncode == 2 and "invalid choice: 'pending'" in unknown.stderr
    assert len(stored(tmp_path)[1]) == 7


def test_a_locked_database_is_one_line_and_deletes_nothing(tmp_path, write_ini, run_cli,
                                                           receiver):
    ini = sent_and_pending(tmp_path, write_ini, run_cli, receiver)
    db = DB(FileStorage(str(tmp_path / "Data.fs")))  # holds the lock, as a running pserve would
    try:
        result = run_cli("delete", "all", ini, "--yes")
    finally:
        db.close()
    assert_one_line(result, 2, "is in use by another process", "ZEO")
    assert len(stored(tmp_path)[1]) == 7


def test_an_unreachable_zeo_server_is_one_line(tmp_path, write_ini, run_cli):
    ini = write_ini(**{"zodbconn.uri": f"zeo://{tmp_path}/no-zeo.sock?wait_timeout=1"})
    assert_one_line(run_cli("delete", "all", ini, "--yes"), 2, "cannot reach the ZEO server")


def test_a_delete_that_cannot_write_is_one_line_and_deletes_nothing(
    tmp_path, write_ini, run_cli, receiver
):
    ini = sent_and_pending(tmp_path, write_ini, run_cli, receiver)
    data = tmp_path / "Data.fs"
    with file_size_limit(data.stat().st_size):  # the disk is full: the commit cannot write
        result = run_cli("delete", "all", ini, "--yes")
    assert_one_line(
        result, 1, "fftelemetry delete: could not delete (OSError: [Errno 27] File too large); "
        "nothing was deleted",
    )
    assert len(stored(tmp_path)[1]) == 7
    assert run_cli("delete", "all", ini, "--yes").returncode == 0  # with room again


def test_a_delete_on_a_read_only_database_is_one_line_and_deletes_nothing(
    tmp_path, write_ini, run_cli, receiver
):
    # zodbconn.uri's read_only=true (a replica, say): ReadOnlyError has no text, and the line
    # said "could not delete (ReadOnlyError: )"; now it is refused before it starts
    sent_and_pending(tmp_path, write_ini, run_cli, receiver)
    read_only = write_ini(
        "read-only.ini", **{"zodbconn.uri": f"file://{tmp_path}/Data.fs?read_only=true"}
    )
    result = run_cli("delete", "all", read_only, "--yes")
    assert_one_line(
        result, 2, "fftelemetry delete: the database is read-only", "nothing was done"
    )
    assert result.stdout == ""
    assert len(stored(tmp_path)[1]) == 7
