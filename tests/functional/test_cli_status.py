"""`fftelemetry status CONFIG_URI --json` and `--check`, and when submissions are overdue, as a
real subprocess on a real FileStorage; submissions aged as in test_cli's retention tests, by the
real sender on a clock set back."""

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from ZODB import DB
from ZODB.FileStorage import FileStorage

from fftelemetry.resources import telemetry_store_in
from fftelemetry.resources.store import SubmissionResult, utcnow
from tests.conftest import file_size_limit
from tests.functional.test_cli import (
    collected_days_ago,
    made_quietly,
    sent_days_ago,
    stored,
    values,
)

KEYS = {
    "enabled", "source", "installation_id", "receiver", "ca_bundle", "read_only", "counts",
    "last_success_at", "next_due", "overdue", "overdue_since", "cron_found_off_at",
    "keep_submitted_days", "packed_at", "pack_kept_days", "deleted_in_file",
    "records_deleted_at", "submissions",
}
SUBMISSION_KEYS = {"at", "sent", "status", "ok", "uuid", "error"}
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
MINUTE = 1 / (24 * 60)  # in days


def status_json(run_cli, ini):
    result = run_cli("status", ini, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def moment(text):
    assert RFC3339_UTC.fullmatch(text), text
    return datetime.fromisoformat(text)


def to_the_second(moment):
    return moment.astimezone(UTC).replace(microsecond=0)


def said_at(moment):
    """A time as the text says it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def test_json_gives_the_facts_the_text_gives(tmp_path, write_ini, run_cli, receiver,
                                            closed_port_url):
    made_quietly(write_ini, run_cli)
    assert sent_days_ago(tmp_path, receiver.url, 3, [1, 2]) == 2
    down = write_ini("down.ini", **{"fftelemetry.telemetry_url": closed_port_url})
    assert run_cli("cron", down, "--force").returncode == 1  # a failed attempt after it
    secret_url = receiver.url.replace("http://", "http://ann:s3cret@")
    ini = write_ini(**{"fftelemetry.telemetry_url": secret_url})

    facts = status_json(run_cli, ini)
    text = run_cli("status", ini).stdout
    installation_id, records, log = stored(tmp_path)
    assert set(facts) == KEYS
    assert (facts["enabled"], facts["source"]) == (True, "ini")
    assert facts["installation_id"] == installation_id
    assert facts["receiver"] == receiver.url.replace("http://", "http://ann:***@") + "/submit"
    assert facts["ca_bundle"] is None  # requests' own
    assert facts["read_only"] is False
    submitted = sum(1 for _, _, sent in records if sent)
    assert facts["counts"] == {"all": len(records), "pending": len(records) - submitted,
                               "submitted": submitted}
    assert (submitted, len(records)) == (2, 5)  # status, cron and cron's errored pending
    assert moment(facts["last_success_at"]) == to_the_second(log[1].at)
    assert facts["next_due"] is None  # due at the next run: the last attempt failed
    assert (facts["overdue"], facts["overdue_since"]) == (False, None)
    assert facts["cron_found_off_at"] is None
    assert (facts["keep_submitted_days"], facts["packed_at"], facts["pack_kept_days"]) == (
        90, None, None)
    assert (facts["deleted_in_file"], facts["records_deleted_at"]) == (False, None)
    failed, sent = facts["submissions"]
    assert set(failed) == set(sent) == SUBMISSION_KEYS
    assert moment(failed["at"]) == to_the_second(log[0].at)
    assert (failed["ok"], failed["sent"], failed["status"], failed["uuid"]) == (
        False, 0, None, None)
    assert failed["error"] == log[0].error and "cannot connect to" in failed["error"]
    assert (sent["ok"], sent["sent"], sent["status"], sent["error"]) == (True, 2, 200, None)
    assert sent["uuid"] == log[1].uuid and sent["uuid"] in receiver.read(
        lambda r: list(r.batches.keys()))
    # the same, line by line, in words (a success listed as 'FAILED: None', or an answer's
    # status dropped, passed every test while only --json's submissions were checked)
    assert text.splitlines() == [
        "Telemetry: enabled (ini)",
        f"Installation id: {installation_id}",
        f"Receiver: {facts['receiver']}",
        "Records: 5 (3 pending, 2 submitted)",
        f"Last successful submission: {said_at(log[1].at)}",
        "Next submission due: now (on the next cron run)",  # the last attempt failed
        "Retention: submitted records are kept 90 days after they were sent, then deleted by "
        "fftelemetry cron",
        "Database packed: never",
        "Recent submissions:",
        f"  {said_at(log[0].at)}  sent 0  no answer  FAILED: cannot connect to "
        f"{closed_port_url}/submit (connection refused; tried 3 times)",
        f"  {said_at(log[1].at)}  sent 2  HTTP 200  receiver uuid {log[1].uuid}",
    ]
    assert "s3cret" not in json.dumps(facts) and "s3cret" not in text

    # a delete, then a pack: the facts status says about them
    assert run_cli("delete", "submitted", ini, "--yes").returncode == 0
    deleted = status_json(run_cli, ini)
    assert deleted["deleted_in_file"] is True and deleted["counts"]["submitted"] == 0
    assert utcnow() - moment(deleted["records_deleted_at"]) < timedelta(minutes=5)
    assert run_cli("pack", ini).returncode == 0
    packed = status_json(run_cli, ini)
    assert (packed["deleted_in_file"], packed["pack_kept_days"]) == (False, 0)
    assert moment(packed["packed_at"]) >= moment(deleted["records_deleted_at"])


def test_json_next_due_is_a_week_after_the_last_success(tmp_path, write_ini, run_cli, receiver):
    made_quietly(write_ini, run_cli)
    sent_days_ago(tmp_path, receiver.url, 3, [1])
    facts = status_json(run_cli, write_ini(**{"fftelemetry.telemetry_url": receiver.url}))
    assert moment(facts["next_due"]) == moment(facts["last_success_at"]) + timedelta(days=7)


def test_the_text_of_a_database_that_never_collected_says_none_yet(write_ini, run_cli):
    ini = write_ini(**{"fftelemetry.send_telemetry": "false",
                       "fftelemetry.telemetry_url": "https://receiver.example.org"})
    assert run_cli("status", ini).stdout.splitlines() == [
        "Telemetry: disabled (ini)",
        "Installation id: none yet",
        "Receiver: https://receiver.example.org/submit",
        "Records: 0 (0 pending, 0 submitted)",
        "Last successful submission: never",
        "Retention: submitted records are kept 90 days after they were sent, then deleted by "
        "fftelemetry cron",
        "Database packed: never",
        "Recent submissions: none",
    ]


# (last success, oldest pending record's collection) in days ago; None: never sent. Overdue two
# days (the grace) past the due time (a week after the last success, at once if never sent) or
# past the oldest pending record's collection if that is later.
OVERDUE_CASES = [
    pytest.param(9 - MINUTE, 8, False, id="sent-a-minute-short-of-9-days-ago"),
    pytest.param(9 + MINUTE, 8, True, id="sent-a-minute-over-9-days-ago"),
    pytest.param(None, 2 - MINUTE, False, id="never-sent-collected-a-minute-short-of-2-days"),
    pytest.param(None, 2 + MINUTE, True, id="never-sent-collected-a-minute-over-2-days"),
    pytest.param(30, 2 - MINUTE, False, id="quiet-for-weeks-then-collected"),
    pytest.param(30, 2 + MINUTE, True, id="quiet-for-weeks-then-collected-and-not-sent"),
]


@pytest.mark.parametrize(("sent_ago", "collected_ago", "overdue"), OVERDUE_CASES)
def test_overdue_at_its_boundary(tmp_path, write_ini, run_cli, receiver, sent_ago,
                                 collected_ago, overdue):
    made_quietly(write_ini, run_cli)
    if sent_ago is not None:
        sent_days_ago(tmp_path, receiver.url, sent_ago, [1])
    collected_days_ago(tmp_path, collected_ago, [2])
    ini = write_ini(**{"fftelemetry.telemetry_url": receiver.url})

    facts = status_json(run_cli, ini)
    assert facts["overdue"] is overdue
    if overdue:
        due = moment(facts["last_success_at"]) + timedelta(days=7) if sent_ago else None
        collected = to_the_second(utcnow() - timedelta(days=collected_ago))
        since = max(due or collected, collected) + timedelta(days=2)
        assert abs(moment(facts["overdue_since"]) - since) < timedelta(seconds=30)
    else:
        assert facts["overdue_since"] is None

    check = run_cli("status", ini, "--check")
    assert check.returncode == (1 if overdue else 0), check.stderr
    [line] = check.stdout.splitlines()
    assert line.startswith("OVERDUE: submissions overdue since " if overdue else "OK: ")
    text = run_cli("status", ini).stdout
    shown = re.findall(r"^Submissions overdue since (.+ UTC): check fftelemetry cron's output "
                       rf"\({re.escape(str(tmp_path))}/cron.log\)$", text, re.MULTILINE)
    assert shown == ([moment(facts["overdue_since"]).strftime("%Y-%m-%d %H:%M:%S UTC")]
                     if overdue else [])


def test_never_overdue_while_telemetry_is_off(tmp_path, write_ini, run_cli, receiver):
    made_quietly(write_ini, run_cli)
    collected_days_ago(tmp_path, 30, [1])
    on = write_ini(**{"fftelemetry.telemetry_url": receiver.url})
    off = write_ini("off.ini", **{"fftelemetry.telemetry_url": receiver.url,
                                  "fftelemetry.send_telemetry": "false"})
    assert status_json(run_cli, on)["overdue"] is True  # the same database, switched on

    facts = status_json(run_cli, off)
    assert (facts["enabled"], facts["overdue"], facts["overdue_since"]) == (False, False, None)
    assert facts["next_due"] is None and facts["counts"]["pending"] == 2
    check = run_cli("status", off, "--check")
    assert (check.returncode, check.stdout) == (0, "OK: telemetry is disabled (ini): nothing is "
                                                   "sent\n")
    text = run_cli("status", off).stdout
    assert "overdue" not in text
    # what becomes of them, as the status page says it
    assert (
        "\nPending records: not sent while telemetry is off; they go with the first submission "
        "after it is switched on again, however old: to have them never sent, delete them first "
        "(fftelemetry delete all)\n"
    ) in text
    assert "Pending records:" not in run_cli("status", on).stdout


def cron_ran_off_days_ago(tmp_path, days):
    """Move the note of cron's last run while telemetry was off (the real cron's) `days` days
    back, as if it had run then (the app's database: closed again after)."""
    db = DB(FileStorage(str(tmp_path / "Data.fs")))
    try:
        with db.transaction() as conn:
            store = telemetry_store_in(conn.root())
            assert store.cron_ran_off_at is not None
            store.cron_ran_off_at -= timedelta(days=days)
    finally:
        db.close()


def test_not_overdue_at_once_when_switched_back_on(tmp_path, write_ini, run_cli, receiver,
                                                   closed_port_url):
    """Off for weeks with records left pending, then on again: cron's last run while off counts
    as their due time, so the check passes until cron has had its two days to send them."""
    made_quietly(write_ini, run_cli)
    sent_days_ago(tmp_path, receiver.url, 40, [1])
    collected_days_ago(tmp_path, 30, [2])  # pending when telemetry was switched off
    off = write_ini("off.ini", **{"fftelemetry.telemetry_url": closed_port_url,
                                  "fftelemetry.send_telemetry": "false"})
    on = write_ini(**{"fftelemetry.telemetry_url": closed_port_url})
    assert run_cli("cron", off, "--dry-run").returncode == 0  # changes nothing, this neither
    assert run_cli("status", on, "--check").returncode == 1

    assert run_cli("cron", off).returncode == 0
    check = run_cli("status", on, "--check")  # switched on after cron's run while off
    assert check.returncode == 0, check.stdout
    assert check.stdout.startswith("OK: ")
    assert status_json(run_cli, on)["overdue_since"] is None

    # cron keeps failing from here on: overdue two days after its run while off
    assert run_cli("cron", on).returncode == 1
    cron_ran_off_days_ago(tmp_path, 2 + MINUTE)
    facts = status_json(run_cli, on)
    assert facts["overdue"] is True
    since = to_the_second(utcnow() - timedelta(days=MINUTE))
    assert abs(moment(facts["overdue_since"]) - since) < timedelta(seconds=30)
    assert run_cli("status", on, "--check").returncode == 1


CRON_OFF = re.compile(r"^fftelemetry cron found telemetry off at (.+ UTC), and no submission "
                      r"has succeeded since: cron reads its own environment, the \.env file and "
                      r"the ini file, not the web server's environment, and sends nothing while "
                      r"it finds telemetry off$", re.MULTILINE)


def test_says_when_cron_finds_telemetry_off_while_it_is_on_here(tmp_path, write_ini, run_cli,
                                                                receiver):
    """SEND_TELEMETRY given to pserve alone: the web collects, cron finds telemetry off every
    day and sends nothing, and its runs while off keep submissions from ever being overdue.
    status, run where telemetry is on, says what cron found, until a submission succeeds."""
    made_quietly(write_ini, run_cli)
    sent_days_ago(tmp_path, receiver.url, 10, [1])
    collected_days_ago(tmp_path, 5, [2])  # the web's, since
    on = write_ini(**{"fftelemetry.telemetry_url": receiver.url})
    cron = write_ini("cron.ini", **{"fftelemetry.telemetry_url": receiver.url,
                                    "fftelemetry.send_telemetry": None})  # the default: off
    assert run_cli("cron", cron).returncode == 0
    cron_ran_off_days_ago(tmp_path, 1)
    assert run_cli("cron", cron).returncode == 0  # the next day's run: found off again

    facts = status_json(run_cli, on)
    found = moment(facts["cron_found_off_at"])
    assert utcnow() - found < timedelta(minutes=5)  # the latest run
    assert found > moment(facts["last_success_at"])
    assert facts["overdue"] is False  # the blind spot this fills
    text = run_cli("status", on).stdout
    assert CRON_OFF.findall(text) == [found.strftime("%Y-%m-%d %H:%M:%S UTC")], text
    assert run_cli("status", on, "--check").returncode == 0  # run where cron runs: unchanged

    off = status_json(run_cli, cron)  # status where telemetry is off has nothing to say
    assert (off["enabled"], off["cron_found_off_at"]) == (False, None)
    assert not CRON_OFF.search(run_cli("status", cron).stdout)

    assert run_cli("cron", on).returncode == 0  # switched on for cron too: sends
    facts = status_json(run_cli, on)
    assert facts["counts"]["pending"] == 0 and facts["cron_found_off_at"] is None
    assert not CRON_OFF.search(run_cli("status", on).stdout)


def test_cron_while_off_writes_nothing_with_nothing_pending(tmp_path, write_ini, run_cli):
    """Its note of a run while off is for records left pending: with none, the store is not
    written every day."""
    off = write_ini(**{"fftelemetry.send_telemetry": "false"})
    made_quietly(write_ini, run_cli)
    data = tmp_path / "Data.fs"
    size = data.stat().st_size
    assert run_cli("cron", off).returncode == 0
    assert data.stat().st_size == size


def test_never_overdue_with_nothing_pending(tmp_path, write_ini, run_cli, receiver):
    ini = write_ini(**{"fftelemetry.telemetry_url": receiver.url})
    assert run_cli("status", ini).returncode == 0  # status's first use: collected once only
    sent_days_ago(tmp_path, receiver.url, 30, [1])  # sends it too
    facts = status_json(run_cli, ini)
    assert facts["counts"]["pending"] == 0
    assert moment(facts["last_success_at"]) < utcnow() - timedelta(days=29)
    assert (facts["overdue"], facts["overdue_since"]) == (False, None)
    check = run_cli("status", ini, "--check")
    assert check.returncode == 0 and check.stdout.startswith("OK: nothing pending, last ")


def test_check_is_a_verdict_not_a_failure(tmp_path, write_ini, run_cli, receiver,
                                          closed_port_url):
    """An overdue --check exits 1 with one line on stdout, and is not collected as a failing
    command; a failed attempt not yet overdue is said but passes (the next cron run retries)."""
    down = write_ini("down.ini", **{"fftelemetry.telemetry_url": closed_port_url})
    assert run_cli("cron", down).returncode == 1  # never sent: the records are new
    check = run_cli("status", down, "--check")
    assert check.returncode == 0, check.stderr
    assert re.fullmatch(r"OK: 3 records pending, last successful submission never; the last "
                        r"attempt failed \(\S+ \S+ UTC\), the next cron run retries it\n",
                        check.stdout), check.stdout

    collected_days_ago(tmp_path, 3, [1])
    overdue = run_cli("status", down, "--check")
    assert overdue.returncode == 1
    assert [line for line in overdue.stderr.splitlines() if not line.startswith("INFO [")] == []
    assert re.fullmatch(r"OVERDUE: submissions overdue since \S+ \S+ UTC \(4 records pending, "
                        r"last successful submission never\): check fftelemetry cron's output "
                        rf"\({re.escape(str(tmp_path))}/cron.log\)\n", overdue.stdout), \
        overdue.stdout
    assert values(stored(tmp_path)[1], "system.command.errored") == ["cron"]


@pytest.mark.parametrize("var", [True, False], ids=["var-folder", "no-var-folder"])
def test_overdue_names_the_log_the_printed_cron_line_appends_to(tmp_path, write_ini, run_cli,
                                                                closed_port_url, var):
    """`instructions install` prints a cron line appending to var/cron.log, or to cron.log
    beside the ini when its folder has no var/: status and status --check name that one."""
    if var:
        (tmp_path / "var").mkdir()
    ini = write_ini(**{"fftelemetry.telemetry_url": closed_port_url})
    shown = run_cli("instructions", "install", ini).stdout
    log = re.search(r"^ +17 4 \* \* \*  cd (\S+) && .* >> (\S+) 2>&1$", shown, re.M)
    assert log.group(2) == ("var/cron.log" if var else "cron.log"), shown
    named = re.escape(f"{log.group(1)}/{log.group(2)}")
    collected_days_ago(tmp_path, 3, [1])

    check = run_cli("status", ini, "--check")
    assert check.returncode == 1, check.stderr
    assert re.fullmatch(rf"OVERDUE: .*: check fftelemetry cron's output \({named}\)\n",
                        check.stdout), check.stdout
    text = run_cli("status", ini).stdout
    assert re.search(rf"^Submissions overdue since .*: check fftelemetry cron's output "
                     rf"\({named}\)$", text, re.M), text


def test_overdue_names_the_log_of_a_linked_ini_s_cron_line(tmp_path, write_ini, run_cli,
                                                           closed_port_url):
    """An ini given by a link in another folder (/etc/fftelemetry/app.ini onto the install's):
    the printed cron line cd's to the folder of the file it links to, and appends to var/cron.log
    there; status named cron.log beside the link instead."""
    (tmp_path / "var").mkdir()
    ini = write_ini(**{"fftelemetry.telemetry_url": closed_port_url})
    (tmp_path / "etc").mkdir()
    link = tmp_path / "etc" / "app.ini"
    link.symlink_to(ini)
    shown = run_cli("instructions", "install", str(link)).stdout
    log = re.search(r"^ +17 4 \* \* \*  cd (\S+) && .* >> (\S+) 2>&1$", shown, re.M)
    assert (log.group(1), log.group(2)) == (str(tmp_path), "var/cron.log"), shown
    collected_days_ago(tmp_path, 3, [1])

    check = run_cli("status", str(link), "--check")
    assert check.stdout.endswith(f"check fftelemetry cron's output ({tmp_path}/var/cron.log)\n")


def test_json_and_check_together_are_bad_usage(write_ini, run_cli):
    result = run_cli("status", write_ini(), "--json", "--check")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


def test_install_instructions_give_a_check_line_that_cron_mails_only_when_overdue_or_broken(
    tmp_path, write_ini, run_cli
):
    ini = write_ini()
    shown = run_cli("instructions", "install", ini).stdout
    line = re.search(r"^ +(37 9 \* \* \*  .*)$", shown, re.M).group(1)
    command = line.removeprefix("37 9 * * *  ")
    # as cron runs it: from the home folder, with a bare PATH (cron mails whatever it prints)
    (tmp_path / "home").mkdir()

    def as_cron():
        cron = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "SHELL": "/bin/sh"}
        return subprocess.run(["/bin/sh", "-c", command], cwd=tmp_path / "home", env=cron,
                              capture_output=True, text=True, timeout=60, check=False)

    quiet = as_cron()  # the facts instructions just collected are pending, not overdue
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    collected_days_ago(tmp_path, 3, [1])
    mailed = as_cron()
    assert mailed.returncode == 0 and mailed.stderr == ""
    assert re.search(r"^OVERDUE: submissions overdue since ", mailed.stdout, re.M), mailed.stdout
    # a config it cannot use is mailed too (exit 2), as the instructions say
    write_ini(**{"fftelemetry.session_secret": None})  # the secret given to pserve alone
    broken = as_cron()
    assert broken.returncode == 0 and broken.stdout.startswith("fftelemetry: no session secret")
    assert "or its config cannot be used (it prints nothing otherwise)" in " ".join(shown.split())


def logged(tmp_path, count, first=0):
    """`count` failed submissions in the app's database's log, a minute apart, each its own
    error ("refused 0", "refused 1", …, from `first`): the store's own log_submission, as the
    sender calls it, keeping the default 50."""
    start = datetime(2026, 1, 5, tzinfo=UTC)
    db = DB(FileStorage(str(tmp_path / "Data.fs")))
    try:
        with db.transaction() as conn:
            store = telemetry_store_in(conn.root())
            for i in range(first, first + count):
                at = start + timedelta(minutes=i)
                store.log_submission(SubmissionResult(at, 0, 503, None, f"refused {i}"))
    finally:
        db.close()


def test_every_kept_submission_is_in_json_and_the_text_says_where(tmp_path, write_ini, run_cli):
    ini = write_ini(**{"fftelemetry.send_telemetry": "false"})
    made_quietly(write_ini, run_cli)
    logged(tmp_path, 10)
    text = run_cli("status", ini).stdout
    assert re.findall(r"^  \S+ \S+ UTC  sent 0  HTTP 503  FAILED: (.+)$", text, re.M) == [
        f"refused {i}" for i in reversed(range(10))]
    assert "older" not in text  # all ten kept are listed
    assert len(status_json(run_cli, ini)["submissions"]) == 10

    logged(tmp_path, 3, first=10)
    text = run_cli("status", ini).stdout
    lines = text.splitlines()
    start = lines.index("Recent submissions:")
    assert [line.rsplit(": ", 1)[-1] for line in lines[start + 1:start + 11]] == [
        f"refused {i}" for i in reversed(range(3, 13))]
    assert lines[start + 11:] == [
        "  and 3 older: all 13 kept are in fftelemetry status --json and on "
        "/admin/telemetry/submissions"]

    facts = status_json(run_cli, ini)
    assert set(facts) == KEYS
    assert [run["error"] for run in facts["submissions"]] == [
        f"refused {i}" for i in reversed(range(13))]
    assert facts["submissions"][-1]["at"] == "2026-01-05T00:00:00Z"  # the oldest kept


def test_a_lowered_log_size_shows_at_once(tmp_path, write_ini, run_cli):
    """The log is trimmed when the next submission is logged; until then the setting's number,
    the newest, is all the text and --json give."""
    made_quietly(write_ini, run_cli)
    logged(tmp_path, 50)  # kept by the default 50, then the setting lowered to 12
    ini = write_ini(**{"fftelemetry.send_telemetry": "false",
                       "fftelemetry.submission_log_size": "12"})
    assert [run["error"] for run in status_json(run_cli, ini)["submissions"]] == [
        f"refused {i}" for i in reversed(range(38, 50))]
    assert run_cli("status", ini).stdout.splitlines()[-1] == (
        "  and 2 older: all 12 kept are in fftelemetry status --json and on "
        "/admin/telemetry/submissions")


def test_the_receivers_cas_the_setting_names_are_shown_beside_the_receiver(tmp_path, write_ini,
                                                                          run_cli):
    (tmp_path / "certs").mkdir()
    (tmp_path / ".env").write_text("TELEMETRY_CA_BUNDLE=certs\n")
    ini = write_ini()
    facts = status_json(run_cli, ini)
    assert facts["ca_bundle"] == str(tmp_path / "certs")
    lines = run_cli("status", ini, cwd="/").stdout.splitlines()
    at = lines.index(f"Receiver: {facts['receiver']}")
    assert lines[at + 1] == f"Receiver's CAs: {tmp_path / 'certs'} (TELEMETRY_CA_BUNDLE)"


def test_a_full_disk_for_its_use_is_the_commands_failure_not_an_unusable_database(
    tmp_path, write_ini, run_cli
):
    """The write of its use before the read meets a full disk: exit 1, its failure, as for any
    command (a lost server there is 2, a database that cannot be used: see test_zeo_outage.py)."""
    made_quietly(write_ini, run_cli)  # a database, no use of status collected yet
    ini = write_ini()
    with file_size_limit((tmp_path / "Data.fs").stat().st_size):
        check = run_cli("status", ini, "--check")
    assert check.returncode == 1, check.stderr
    assert [line for line in check.stderr.splitlines() if not line.startswith("INFO [")] == [
        "fftelemetry status: could not write (OSError: [Errno 27] File too large); the change in "
        "progress was rolled back"
    ]
    assert check.stdout == ""
