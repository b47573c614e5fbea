"""The `fftelemetry` console script as a real subprocess, against a temp ini with a file://
FileStorage (and, for cron, the real receiver or a stub over real HTTP)."""

import json
import os
import platform
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from datetime import timedelta
from pathlib import Path

import pytest
import trustme
from argon2 import PasswordHasher
from ZODB import DB
from ZODB.FileStorage import FileStorage
from ZODB.fsIndex import fsIndex

from fftelemetry import main, settings
from fftelemetry.cli.instructions import is_docker
from fftelemetry.resources import appmaker, telemetry_store_in
from fftelemetry.resources.store import utcnow
from fftelemetry.telemetry.sender import submit_pending
from tests.conftest import (
    LOGGING_SECTIONS,
    OUTSIDE,
    OUTSIDE_SHOWN,
    SECRET,
    Stub,
    app_settings,
    file_size_limit,
    free_port,
    run_pserve,
    serving,
)
from tests.functional.test_sender import tls_serving, use_proxy


def stored(tmp_path):
    """(installation id, [(key, value, submitted?) oldest first], submission log newest first)."""
    db = DB(FileStorage(str(tmp_path / "Data.fs"), read_only=True))
    try:
        conn = db.open()
        store = telemetry_store_in(conn.root())
        records = [(r.key, r.value, r.is_submitted) for _, r in reversed(store.page(size=1000))]
        return store.installation_id, records, store.submissions()
    finally:
        db.close()


def values(records, key):
    return [value for k, value, _ in records if k == key]


def assert_one_line(result, status, *words):
    """Exit `status` and one line on stderr (besides INFO logging) holding all of `words`."""
    assert result.returncode == status, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO [")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]


def test_each_command_is_counted_once(tmp_path, write_ini, run_cli, receiver):
    ini = write_ini(**{"fftelemetry.telemetry_url": receiver.url})
    for args in (["status"], ["status"], ["instructions", "install"], ["cron"]):
        assert run_cli(*args, ini).returncode == 0
    created = run_cli("create-user", ini, "--email", "Ann@Example.org", "--password-stdin",
                      input="a good password\n")
    assert created.returncode == 0 and created.stdout == "Created administrator ann@example.org.\n"
    installation_id, records, _ = stored(tmp_path)
    assert installation_id is not None
    executed = values(records, "system.command.executed")
    assert sorted(executed) == ["create-user", "cron", "instructions", "status"]
    assert values(records, "system.command.errored") == []
    assert values(records, "system.users.count") == [1]  # as when registering on the web


def test_install_instructions_name_commands_that_run(write_ini, run_cli):
    result = run_cli("instructions", "install", write_ini())
    commands = re.findall(r"(\S*(?:fftelemetry|pserve)) (?:create-user|cron|\S+\.ini)",
                          result.stdout)
    assert len(commands) == 3 and all(shutil.which(command) for command in commands), commands


CRON_PATH = "/usr/bin:/bin"  # cron's bare PATH


def run_as_cron(command, tmp_path):
    """A crontab line's command run as cron runs it: from the home folder (tmp_path/home), with
    a bare PATH and nothing of ours around."""
    (tmp_path / "home").mkdir()
    cron = {"PATH": CRON_PATH, "HOME": str(tmp_path / "home"), "SHELL": "/bin/sh"}
    return subprocess.run(["/bin/sh", "-c", command], cwd=tmp_path / "home", env=cron,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("folder", "given_as"),
    [("site", "a name in the current folder"), ("my site", "a URI")],
)
def test_install_instructions_give_a_cron_line_that_runs_under_cron(
    tmp_path, write_ini, run_cli, receiver, folder, given_as
):
    write_ini(**{"fftelemetry.telemetry_url": receiver.url})
    (tmp_path / folder).mkdir()
    ini = (tmp_path / "app.ini").rename(tmp_path / folder / "app.ini")
    log = ini.parent / "cron.log"
    if given_as == "a name in the current folder":  # as make run's folder, which has a var/
        (ini.parent / "var").mkdir()
        log = ini.parent / "var" / "cron.log"
    if given_as == "a URI":
        shown = run_cli("instructions", "install", f"pastedeploy+ini://{ini}#main").stdout
    else:
        shown = run_cli("instructions", "install", "app.ini", cwd=ini.parent).stdout  # make run
    line = re.search(r"^ +(17 4 \* \* \*  .*)$", shown, re.M).group(1)
    result = run_as_cron(line.removeprefix("17 4 * * *  "), tmp_path)
    assert result.returncode == 0, log.read_text()
    assert result.stdout == result.stderr == ""  # cron would mail any output, every day
    assert "Result of submission [200]" in log.read_text()
    assert [submitted for _, _, submitted in stored(tmp_path)[1]] == [True] * 6


def test_install_instructions_give_a_weekly_pack_line_that_runs_under_cron(tmp_path, write_ini,
                                                                          run_cli):
    ini = write_ini(**{"fftelemetry.send_telemetry": "false"})
    shown = run_cli("instructions", "install", ini).stdout
    # a crontab line of its own, on Sundays after the daily run (17 4 * * *)
    command = re.search(r"^ +47 4 \* \* 0  (\S.* pack .*)$", shown, re.M).group(1)
    result = run_as_cron(command, tmp_path)
    log = (tmp_path / "cron.log").read_text()
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), log
    assert "Packed" in log, log


# The test's own environment's bin folder: its `fftelemetry` and `pserve` scripts (pip put them).
SCRIPTS = Path(sysconfig.get_path("scripts"))


def python_without_the_script(tmp_path):
    """A Python whose environment (a venv in tmp_path) has no `fftelemetry` script in its bin
    folder yet imports ours and its libraries (a .pth adds this environment's site-packages),
    as a `python -m fftelemetry.cli.main` run by another Python than pip installed it for."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    ours = sysconfig.get_path("purelib")
    Path(site_packages, "ours.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    assert not (venv / "bin" / "fftelemetry").exists()
    return python


@pytest.mark.parametrize(
    "where",
    ["python -m from an environment without the script", "an environment not on PATH"],
)
def test_install_instructions_name_commands_that_run_wherever_the_script_is(tmp_path,
                                                                            write_ini, where):
    """The lines name commands that run: the operator's by the name their PATH finds (else by
    its full path), cron's by a full path, as cron's bare PATH finds none of ours. A Python with
    no script in its bin folder names the one its PATH finds (the fallback to it deleted, or
    bin_prefix's `or` made `and`, named its own bin folder's or a bare `fftelemetry`, which cron
    cannot find, and every test passed)."""
    if where == "an environment not on PATH":
        python, operators_path = sys.executable, CRON_PATH
    else:
        python, operators_path = python_without_the_script(tmp_path), f"{SCRIPTS}:{CRON_PATH}"
    shown = subprocess.run(
        [python, "-m", "fftelemetry.cli.main", "instructions", "install", write_ini()],
        env={**os.environ, "PATH": operators_path}, capture_output=True, text=True, timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    operators = re.findall(r"(\S*(?:fftelemetry|pserve)) (?:create-user|\S+\.ini$)",
                           shown.stdout, re.M)
    crons = re.findall(r"&& (?:out=\$\()?(\S+) (?:cron|pack|status) ", shown.stdout)
    assert (len(operators), len(crons)) == (2, 3), shown.stdout
    assert all(command.startswith("/") for command in crons), crons
    (tmp_path / "home").mkdir()
    runs = [(c, operators_path) for c in operators] + [(c, CRON_PATH) for c in crons]
    for command, path in runs:
        helped = subprocess.run(
            ["/bin/sh", "-c", f"{command} --help"], cwd=tmp_path / "home",
            env={"PATH": path, "HOME": str(tmp_path / "home")}, capture_output=True, text=True,
            timeout=60, check=False,
        )
        assert helped.returncode == 0 and helped.stdout.startswith("usage: "), (command, helped)


def test_install_instructions_skip_creating_the_first_user_once_there_is_one(write_ini, run_cli):
    ini = write_ini()
    assert "create-user" in run_cli("instructions", "install", ini).stdout
    run_cli("create-user", ini, "--email", "ann@example.org", "--password-stdin",
            input="a good password\n")
    again = run_cli("instructions", "install", ini).stdout
    assert "create-user" not in again
    assert "  1. Add the daily cron line" in again and "  3. Start the application" in again


def test_instructions_collect_the_system_facts(tmp_path, write_ini, run_cli):
    result = run_cli("instructions", "upgrade", write_ini())
    assert result.returncode == 0 and "upgraded to" in result.stdout
    assert "Telemetry is on (ini)" in result.stdout
    _, records, _ = stored(tmp_path)
    facts = {key: value for key, value, _ in records if key != "system.command.executed"}
    assert facts["system.python.version"] == platform.python_version()
    assert re.fullmatch(rf"{platform.system()} \d+(\.\d+)?", facts["system.os.version"])
    assert facts["system.database.driver"] == "FileStorage"
    # the detector itself is tested in tests/unit/test_instructions.py; here: the fact is its answer
    assert facts["system.os.is_docker"] == str(is_docker()).lower()


def test_nothing_is_collected_while_telemetry_is_off(tmp_path, write_ini, run_cli):
    ini = write_ini(**{"fftelemetry.send_telemetry": "false"})
    result = run_cli("instructions", "install", ini)
    assert result.returncode == 0 and "Telemetry is off: nothing was collected." in result.stdout
    status = run_cli("status", ini)
    assert "Telemetry: disabled (ini)" in status.stdout
    assert "Installation id: none yet" in status.stdout
    # --help says so too: an operator who reads it must not think the command collects regardless
    said = " ".join(run_cli("instructions", "--help").stdout.split())
    assert "(and, while telemetry is on, collect the system facts)" in said
    assert stored(tmp_path)[:2] == (None, [])


def test_a_failing_command_is_counted_as_errored(tmp_path, write_ini, run_cli):
    ini = write_ini()
    result = run_cli("create-user", ini, "--email", "not-an-email", "--password-stdin",
                     input="a good password\n")
    assert_one_line(result, 1, "fftelemetry create-user: Please enter a valid email address.")
    _, records, _ = stored(tmp_path)
    assert values(records, "system.command.errored") == ["create-user"]
    assert values(records, "system.command.executed") == ["create-user"]


def test_create_user_refuses_a_duplicate(tmp_path, write_ini, run_cli):
    ini = write_ini()
    args = ("create-user", ini, "--email", "bo@example.org", "--password-stdin")
    assert run_cli(*args, input="a good password\n").returncode == 0
    again = run_cli(*args, "--admin", input="another password\n")
    assert_one_line(again, 1, "exists already")


def test_create_user_makes_an_administrator_with_admin_and_a_user_without(tmp_path, write_ini,
                                                                         run_cli):
    ini = write_ini()
    for email, admin, said in [
        ("ann@example.org", (), "Created administrator ann@example.org.\n"),  # the first
        ("bo@example.org", (), "Created user bo@example.org.\n"),
        ("cy@example.org", ("--admin",), "Created administrator cy@example.org.\n"),
    ]:
        created = run_cli("create-user", ini, "--email", email, *admin, "--password-stdin",
                          input=f"{email}'s password\r\n")
        assert (created.returncode, created.stdout) == (0, said), created.stderr
    db = DB(FileStorage(str(tmp_path / "Data.fs"), read_only=True))
    try:
        users = appmaker(db.open().root())["users"]
        made = {email: users.by_email(email) for email in ("bo@example.org", "cy@example.org")}
        assert {email: user.is_admin for email, user in made.items()} == {
            "bo@example.org": False, "cy@example.org": True}
        # the line's end (\r\n) is no part of the password
        assert PasswordHasher().verify(made["cy@example.org"].password_hash,
                                       "cy@example.org's password")
    finally:
        db.close()


def test_missing_config_is_one_line_and_status_2(tmp_path, run_cli):
    result = run_cli("status", str(tmp_path / "nope.ini"))
    assert_one_line(result, 2, f"fftelemetry: config file {tmp_path / 'nope.ini'} not found")


def test_a_config_named_with_what_a_terminal_acts_on_is_shown_escaped(tmp_path, run_cli):
    # an escape sequence, a right-to-left override, a C1 line break (plaster drops a \n, as
    # urllib's parsing does), and the four characters \x85, their backslash written \\
    name = tmp_path / "nope\x1b[2J\u202e\x85\\x85.ini"
    result = run_cli("status", str(name))
    assert_one_line(
        result, 2, f"config file {tmp_path}/nope\\x1b[2J\\u202e\\x85\\\\x85.ini not found"
    )
    assert result.stderr.rstrip("\n").isprintable()


def test_a_file_the_ini_names_is_shown_escaped(write_ini, run_cli):
    # an ini value may hold a line break (a continuation line)
    result = run_cli("status", write_ini(**{"fftelemetry.env_file": "gone\n  FAKE\x1b[2J.env"}))
    assert_one_line(result, 2, "there is no file ", "gone\\nFAKE\\x1b[2J.env")
    assert result.stderr.rstrip("\n").isprintable()


def test_a_setting_start_up_refuses_is_escaped_once(write_ini, run_cli, monkeypatch):
    # repr()'d in the message, then escaped again: C:\dir came out as C:\\\\dir
    monkeypatch.setenv("TELEMETRY_URL", f"http://h/{OUTSIDE}")
    result = run_cli("status", write_ini())
    assert result.returncode == 2, result.stderr
    line = f"fftelemetry: TELEMETRY_URL='http://h/{OUTSIDE_SHOWN}' is not a valid URL\n"
    assert result.stderr == line


def test_a_url_of_a_megabyte_stops_start_up_in_a_short_line(write_ini, run_cli, tmp_path):
    # a .env may say anything: it was every line the sender wrote, a megabyte each
    (tmp_path / ".env").write_text("TELEMETRY_URL=http://h/" + "a" * 1_000_000 + "\n")
    result = run_cli("status", write_ini(**{"fftelemetry.env_file": str(tmp_path / ".env")}))
    cut = "TELEMETRY_URL='http://h/" + "a" * 191 + "…' (1,000,009 characters)"
    assert_one_line(result, 2, f"{cut} is longer than 2,000 characters")
    assert len(result.stderr) < 300


def test_a_file_an_error_names_is_escaped_once(tmp_path, write_ini, run_cli):
    # an OSError's text repr()s the file's name, and the line escaped that again (an ini value
    # cannot hold a line break); here a transfer log in a folder that does not exist
    log = tmp_path / "unmounted" / "C:\\dir\x1b[2J.log"
    result = run_cli("status", write_ini(**{"zodbconn.transferlog": str(log)}))
    named = f"'{tmp_path}/unmounted/C:\\\\dir\\x1b[2J.log'"
    assert_one_line(result, 2, f": [Errno 2] No such file or directory: {named}")
    assert result.stderr.rstrip("\n").isprintable()


def test_a_database_link_and_its_target_are_escaped_once(tmp_path, write_ini, run_cli):
    # a link to a file on a volume not mounted: the line names both
    data = tmp_path / "C:\\dir\x1b[2J.fs"
    data.symlink_to(tmp_path / "un\u202emounted" / "Data.fs")
    result = run_cli("status", write_ini(**{"zodbconn.uri": f"file://{data}"}))
    link, target = f"{tmp_path}/C:\\\\dir\\x1b[2J.fs", f"{tmp_path}/un\\u202emounted/Data.fs"
    assert_one_line(result, 2, f", {link}, is a link to {target}, which does not exist")
    assert result.stderr.rstrip("\n").isprintable()


def test_a_config_that_is_no_regular_file_is_named_for_what_it_is(tmp_path, run_cli):
    # both were "config file ... not found"
    fifo = tmp_path / "app.ini"
    os.mkfifo(fifo)
    assert_one_line(run_cli("status", str(fifo)), 2,
                    f"fftelemetry: {fifo} is a named pipe (FIFO), not a config file")
    assert_one_line(run_cli("status", os.devnull), 2,
                    f"fftelemetry: {os.devnull} is a device, not a config file")


def test_a_dotenv_that_is_a_fifo_stops_pserve_and_the_commands_in_one_line(
    tmp_path, write_ini, run_cli
):
    # opening it waited for a writer: pserve and every command hung for ever
    ini = write_ini()
    with open(ini, "a") as file:
        file.write("\n[server:main]\nuse = egg:waitress#main\nlisten = 127.0.0.1:0\n")
    os.mkfifo(tmp_path / ".env")
    line = f"fftelemetry: {tmp_path}/.env: the .env file is a named pipe (FIFO), not a regular file"
    assert_one_line(run_cli("status", ini, timeout=30), 2, line)
    pserve = subprocess.run([Path(sys.executable).parent / "pserve", ini], capture_output=True,
                            text=True, timeout=30, check=False)
    assert pserve.returncode == 1
    assert pserve.stderr.endswith(f"{line}\n"), pserve.stderr


def test_a_folder_or_a_name_without_suffix_is_one_line_and_status_2(tmp_path, run_cli):
    assert_one_line(run_cli("status", str(tmp_path)), 2, f"{tmp_path} is a folder, not a config")
    odd = tmp_path / "settings"
    odd.write_text("[app:main]\n")
    assert_one_line(run_cli("status", str(odd)), 2, f"cannot load {odd}: ", "loader scheme")


@pytest.mark.parametrize(
    "text",
    ["this is not an ini file\n[app:main\n", "[loggers]\nkeys = root\n", "[other]\nx = 1\n"],
    ids=["garbage", "broken logging", "no app section"],
)
def test_broken_config_is_one_line_and_status_2(tmp_path, run_cli, text):
    ini = tmp_path / "broken.ini"
    ini.write_text(text)
    assert_one_line(run_cli("status", str(ini)), 2, f"fftelemetry: cannot load {ini}: ")


def test_a_long_reason_a_config_cannot_be_loaded_is_cut_with_its_length(tmp_path, run_cli):
    # cut as a log line is, after escaping (the reason repr()s the line: each ESC is \\x1b in
    # it), and its length told: it was cut before escaping, "..." after it
    ini = tmp_path / "broken.ini"
    ini.write_text("not an ini file " + "\x1b" * 400 + "\n")
    result = run_cli("status", str(ini))
    assert_one_line(result, 2, f"fftelemetry: cannot load {ini}: File contains no section")
    reason = result.stderr.partition(f"cannot load {ini}: ")[2]
    kept, _, length = reason.rpartition("… (")
    assert len(kept) == 300 and re.fullmatch(r"[0-9],[0-9]{3} characters\)\n", length), reason


@pytest.mark.parametrize(
    "more",
    ["", "receiver.max_records = abc\n", "receiver.max_body_bytes = 0\n"],
    ids=["valid", "bad-max-records", "bad-max-body-bytes"],
)
def test_the_receivers_ini_is_one_line_and_status_2(tmp_path, run_cli, more):
    # the command ran on the receiver's app and failed with a traceback (no request.telemetry);
    # with a limit the receiver refused, its line came prefixed twice ("fftelemetry: fftelemetry
    # receiver: ..."): the same line either way, the command would not run on it anyway
    ini = tmp_path / "receiver.ini"
    ini.write_text(
        "[app:main]\nuse = egg:fftelemetry#receiver\n"
        f"zodbconn.uri = file://{tmp_path}/r.fs\n{more}"
    )
    result = run_cli("cron", str(ini))
    assert_one_line(result, 2, f"fftelemetry: {ini} does not make fftelemetry's app")
    assert not (tmp_path / "r.fs").exists()  # the receiver's database is not even opened


COMPOSITE = """
def in_front(loader, global_conf, **local_conf):
    return loader.get_app("receiver")
"""


def test_the_receivers_ini_behind_a_composite_is_one_line_and_status_2(tmp_path, run_cli,
                                                                       monkeypatch):
    # a composite's factory is not told from the ini (factory_of): the app is made, and its
    # registry, the receiver's, has no settings of the app's for the command to run on
    (tmp_path / "composites.py").write_text(COMPOSITE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    ini = tmp_path / "receiver.ini"
    ini.write_text(
        "[composite:main]\nuse = call:composites:in_front\n\n[app:receiver]\n"
        f"use = egg:fftelemetry#receiver\nzodbconn.uri = file://{tmp_path}/r.fs\n"
    )
    result = run_cli("status", str(ini))
    assert_one_line(result, 2, f"fftelemetry: {ini} does not make fftelemetry's app")


@pytest.mark.parametrize("behind_a_filter", [False, True], ids=["app", "pipeline"])
def test_the_receivers_ini_is_told_apart_while_the_receiver_serves(tmp_path, run_cli, receiver,
                                                                   behind_a_filter):
    # as while `make run` serves: its FileStorage locked, the command said "in use by another
    # process ... serve it with ZEO", advice for the app's database, not for a wrong ini
    app = f"use = egg:fftelemetry#receiver\nzodbconn.uri = file://{tmp_path}/receiver.fs\n"
    ini = tmp_path / "receiver.ini"
    ini.write_text(
        "[pipeline:main]\npipeline = prefix receiver\n\n[filter:prefix]\n"
        f"use = egg:PasteDeploy#prefix\n\n[app:receiver]\n{app}"
        if behind_a_filter else f"[app:main]\n{app}"
    )
    before = receiver.stats()
    assert_one_line(run_cli("status", str(ini)), 2,
                    f"fftelemetry: {ini} does not make fftelemetry's app")
    assert receiver.stats() == before


def test_an_app_behind_a_filter_is_found(tmp_path, write_ini, run_cli):
    # a [pipeline:main] as pserve serves it behind a proxy: the filter's app has no registry
    ini = tmp_path / "app.ini"
    ini.write_text(
        Path(write_ini()).read_text().replace(
            "[app:main]",
            "[pipeline:main]\npipeline = proxy-prefix app\n\n"
            "[filter:proxy-prefix]\nuse = egg:PasteDeploy#prefix\n\n[app:app]",
        )
    )
    created = run_cli("create-user", str(ini), "--email", "cy@example.org", "--password-stdin",
                      input="a good password\n")
    assert created.returncode == 0, created.stderr
    assert values(stored(tmp_path)[1], "system.users.count") == [1]


def test_an_ini_without_a_database_is_one_line_and_status_2(write_ini, run_cli):
    result = run_cli("status", write_ini(**{"zodbconn.uri": None}))
    assert_one_line(result, 2, "fftelemetry: no database: set zodbconn.uri in the ini")


def name_the_database(tmp_path, monkeypatch, where, uri):
    """ZODBCONN_URI=`uri` in the test's environment (a command's) or in the .env beside the
    ini; what the lines call where it was set."""
    if where == "environment":
        monkeypatch.setenv("ZODBCONN_URI", uri)
        return "ZODBCONN_URI (in the environment)"
    (tmp_path / ".env").write_text(f"ZODBCONN_URI={uri}\n")
    return f"ZODBCONN_URI (in {tmp_path}/.env)"


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_zodbconn_uri_names_the_database_in_place_of_the_ini(tmp_path, write_ini, run_cli,
                                                             monkeypatch, where):
    name_the_database(tmp_path, monkeypatch, where, f"file://{tmp_path}/Data.fs")
    # the ini names another database, or none at all
    for number, in_ini in enumerate((f"file://{tmp_path}/ini.fs", None), 1):
        ini = write_ini(**{"zodbconn.uri": in_ini})
        created = run_cli("create-user", ini, "--email", f"u{number}@example.org",
                          "--password-stdin", input="a good password\n")
        assert created.returncode == 0, created.stderr
    assert values(stored(tmp_path)[1], "system.users.count") == [1, 2]
    assert not (tmp_path / "ini.fs").exists()


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_a_refused_zodbconn_uri_is_named_where_it_was_set(tmp_path, write_server_ini, run_cli,
                                                          monkeypatch, where):
    ini, _, _ = write_server_ini("fftelemetry")  # its own database opens: not the one refused
    set_in = name_the_database(tmp_path, monkeypatch, where, f"file://{tmp_path}/env.fs?x=1")
    line = f"fftelemetry: {set_in}: unknown parameter x for a file:// database"
    result = run_cli("status", ini)
    assert (result.returncode, result.stderr.splitlines()) == (2, [line])
    server = run_pserve(ini)
    assert (server.returncode, server.stderr.splitlines()) == (1, [line])
    assert not (tmp_path / "Data.fs").exists() and not (tmp_path / "env.fs").exists()


@pytest.mark.parametrize("where", ["environment", ".env", "ini"])
def test_a_database_uri_of_a_kind_not_known_shows_no_password(tmp_path, write_server_ini, run_cli,
                                                              monkeypatch, where):
    # libpq's and SQLAlchemy's spelling: zodburi's error quoted the whole URI, password and all,
    # in the command's line and in pserve's traceback
    uri = "postgresql://fftelemetry:pass-w0rd@127.0.0.1:5432/fftelemetry"
    ini, _, _ = write_server_ini("fftelemetry")
    if where == "ini":
        text = re.sub(r"^zodbconn\.uri = .*$", f"zodbconn.uri = {uri}", ini.read_text(), flags=re.M)
        ini.write_text(text)
        setting = f"zodbconn.uri in {ini}"
    else:
        setting = name_the_database(tmp_path, monkeypatch, where, uri)
    line = (f"fftelemetry: {setting}: no database of the kind postgresql:// is known here "
            "(only demo://, file://")
    for result, status in ((run_cli("status", ini), 2), (run_pserve(ini), 1)):
        assert_one_line(result, status, line, "RelStorage's PostgreSQL is postgres://")
        assert "pass-w0rd" not in result.stderr


@pytest.mark.parametrize("where", ["environment", ".env", "both"])
def test_install_instructions_say_cron_needs_zodbconn_uri_in_env_file(tmp_path, write_ini,
                                                                       run_cli, monkeypatch,
                                                                       where):
    uri = f"file://{tmp_path}/Data.fs"
    if where != ".env":
        monkeypatch.setenv("ZODBCONN_URI", uri)
    if where != "environment":  # as make run's honcho hands the .env on to each process
        (tmp_path / ".env").write_text(f"ZODBCONN_URI={uri}\n")
    (tmp_path / "home").mkdir()
    ini = write_ini(**{"zodbconn.uri": None, "fftelemetry.send_telemetry": "false"})
    shown = run_cli("instructions", "install", ini).stdout
    step = f"Put ZODBCONN_URI in {tmp_path}/.env (readable by the processes' user alone"
    assert (step in shown) == (where == "environment"), shown
    # as cron runs the line: from the home folder, with a bare PATH and nothing of ours around
    line = re.search(r"^ +17 4 \* \* \*  (.*)$", shown, re.M).group(1)
    cron = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "SHELL": "/bin/sh"}
    result = subprocess.run(["/bin/sh", "-c", line], cwd=tmp_path / "home", env=cron,
                            capture_output=True, text=True, timeout=60, check=False)
    log = (tmp_path / "cron.log").read_text()
    assert (result.returncode, "no database" in log) == ((2, True) if where == "environment"
                                                         else (0, False)), log



def test_install_instructions_with_no_env_file_say_where_cron_finds_the_database(
    tmp_path, write_ini, run_cli, monkeypatch
):
    # "Put ZODBCONN_URI in /dev/null (...: chmod 600)": root's chmod of it broke /dev/null
    monkeypatch.setenv("ZODBCONN_URI", f"file://{tmp_path}/Data.fs")
    ini = write_ini(**{"fftelemetry.env_file": os.devnull, "fftelemetry.send_telemetry": "false"})
    shown = run_cli("instructions", "install", ini).stdout
    assert os.devnull not in shown.replace("(it names /dev/null: none)", ""), shown
    assert ("Name the database for the cron lines in the ini's zodbconn.uri, or in ZODBCONN_URI "
            "in a .env that fftelemetry.env_file names") in shown

def test_an_ini_without_a_database_names_zodbconn_uri_too(write_ini, run_cli):
    result = run_cli("status", write_ini(**{"zodbconn.uri": None}))
    # the whole line: its end names the kinds of URI and where an example is
    assert result.stderr.strip() == (
        "fftelemetry: no database: set zodbconn.uri in the ini, or ZODBCONN_URI in the "
        "environment or .env (zeo://, file://; see development.ini)"
    ), result.stderr


# zodbconn.uri's query -> what the line says: zodburi's own error named neither the setting nor
# the parameter of a value it could not convert ("invalid literal for int() with base 10: 'x'"),
# and quoted an unknown one as a KeyError ("'Unrecognized database keyword(s): wait_timeout'")
BAD_QUERIES = [
    pytest.param("file", "read_only=maybe",
                 "read_only='maybe' is refused: invalid literal for int() with base 10: 'maybe'",
                 id="file-switch"),
    pytest.param("file", "create=1&connection_cache_size=abc",
                 "connection_cache_size='abc' is refused: invalid literal for int()",
                 id="file-connection-number"),
    pytest.param("zeo", "wait_timeout=x",
                 "wait_timeout='x' is refused: invalid literal for int() with base 10: 'x'",
                 id="zeo-number"),
    pytest.param("zeo", "cache_size=abc",
                 "cache_size='abc' is refused: invalid literal for int() with base 10: 'abc'",
                 id="zeo-bytes"),
    pytest.param("file", "wait_timeout=5",
                 "unknown parameter wait_timeout for a file:// database", id="file-unknown"),
    pytest.param("zeo", "pool_size=3&bogus=1",
                 "unknown parameters pool_size, bogus for a zeo:// database", id="zeo-unknown"),
]


@pytest.mark.parametrize(("scheme", "query", "said"), BAD_QUERIES)
def test_a_refused_zodbconn_uri_parameter_is_named_in_one_line(tmp_path, write_ini, run_cli,
                                                               scheme, query, said):
    made_quietly(write_ini, run_cli)
    before = (tmp_path / "Data.fs").read_bytes()
    where = f"file://{tmp_path}/Data.fs" if scheme == "file" else f"zeo://{tmp_path}/zeo.sock"
    ini = write_ini(**{"zodbconn.uri": f"{where}?{query}"})

    result = run_cli("status", ini)
    assert_one_line(result, 2, f"fftelemetry: zodbconn.uri in {ini}: {said}")
    # pserve's app factory: the same line, not a traceback
    with pytest.raises(SystemExit) as stopped:
        main({"here": str(tmp_path), "__file__": ini},
             **app_settings(tmp_path, **{"zodbconn.uri": f"{where}?{query}"}))
    assert stopped.value.code.startswith(f"fftelemetry: zodbconn.uri in {ini}: {said}")
    assert (tmp_path / "Data.fs").read_bytes() == before


def test_a_refused_parameter_of_a_named_database_is_named_with_its_setting(
    tmp_path, write_ini, run_cli, monkeypatch
):
    # the primary's URI was looked at again, resolved, and the line was zodburi's own, said of
    # the whole ini ("cannot load app.ini: invalid literal for int() with base 10: 'x'")
    named = {"zodbconn.uri.other": f"zeo://{tmp_path}/zeo.sock?wait_timeout=x"}
    ini = write_ini(**named)
    said = "wait_timeout='x' is refused: invalid literal for int() with base 10: 'x'"

    result = run_cli("status", ini)
    assert_one_line(result, 2, f"fftelemetry: zodbconn.uri.other in {ini}: {said}")
    with pytest.raises(SystemExit) as stopped:  # pserve's app factory: not a traceback
        main({"here": str(tmp_path), "__file__": ini}, **app_settings(tmp_path, **named))
    assert stopped.value.code == f"fftelemetry: zodbconn.uri.other in {ini}: {said}"

    # ZODBCONN_URI names the primary alone: the line named the ini's zodbconn.uri.other as if it
    # were in the environment ("zodbconn.uri.other in ZODBCONN_URI (in the environment): …")
    monkeypatch.setenv("ZODBCONN_URI", f"file://{tmp_path}/Data.fs")
    result = run_cli("status", ini)
    assert_one_line(result, 2, f"fftelemetry: zodbconn.uri.other in {ini}: {said}")
    with pytest.raises(SystemExit) as stopped:
        main({"here": str(tmp_path), "__file__": ini}, **app_settings(tmp_path, **named))
    assert stopped.value.code == f"fftelemetry: zodbconn.uri.other in {ini}: {said}"


def test_a_named_database_that_cannot_be_opened_is_named_with_its_setting(
    tmp_path, write_ini, run_cli, monkeypatch
):
    # these lines named the primary's setting: "the ZEO server named in ZODBCONN_URI (in the
    # environment)", which names Data.fs alone; "the PostgreSQL database named in zodbconn.uri"
    # beside "zodbconn.uri leaves out its port", of zodbconn.uri.other
    monkeypatch.setenv("ZODBCONN_URI", f"file://{tmp_path}/Data.fs")
    zeo = write_ini(**{"zodbconn.uri.other": f"zeo://{tmp_path}/no-zeo.sock?wait_timeout=1"})
    assert_one_line(run_cli("status", zeo), 2, f"fftelemetry: cannot reach the ZEO server named "
                    f"in zodbconn.uri.other in {zeo}: is runzeo running?")
    # no server listens on that port of 127.0.0.1
    refused = f"postgres://fftelemetry:s3cret@127.0.0.1:{free_port()}/app"
    ini = write_ini(**{"zodbconn.uri.other": refused})
    result = run_cli("status", ini)
    assert_one_line(result, 2, f"fftelemetry: cannot open the PostgreSQL database named in "
                    f"zodbconn.uri.other in {ini}: ", "Connection refused")
    assert "s3cret" not in result.stderr
    named = {"zodbconn.uri.other": "postgres://fftelemetry@127.0.0.1/app"}
    unwritten = write_ini(**named)
    with pytest.raises(SystemExit) as stopped:  # pserve's app factory
        main({"here": str(tmp_path), "__file__": unwritten}, **app_settings(tmp_path, **named))
    assert stopped.value.code == (
        f"fftelemetry: cannot open the PostgreSQL database named in zodbconn.uri.other in "
        f"{unwritten}: zodbconn.uri.other leaves out its password, port, which RelStorage needs "
        "written out (postgres://user:password@host:port/dbname)"
    )
    # checked before anything is opened: "the database named in ZODBCONN_URI (in the
    # environment), …/other.fs, …: name the database's file in ZODBCONN_URI"
    (tmp_path / "other.fs").symlink_to(tmp_path / "gone" / "other.fs")
    linked = write_ini(**{"zodbconn.uri.other": f"file://{tmp_path}/other.fs"})
    assert_one_line(run_cli("status", linked), 2, f"fftelemetry: the database named in "
                    f"zodbconn.uri.other in {linked}, {tmp_path}/other.fs, is a link to ",
                    "name the database's file in zodbconn.uri.other")


def test_a_named_databases_file_that_cannot_be_opened_is_named_with_its_setting(
    tmp_path, write_ini, run_cli, monkeypatch
):
    # its missing folder, its lock held and its format: each line named the primary's setting
    monkeypatch.setenv("ZODBCONN_URI", f"file://{tmp_path}/Data.fs")
    other = tmp_path / "other.fs"
    ini = write_ini(**{"zodbconn.uri.other": f"file://{tmp_path}/gone/other.fs"})
    named = f"the database named in zodbconn.uri.other in {ini}"
    assert_one_line(run_cli("status", ini), 2, f"fftelemetry: {named} cannot be opened: its "
                    f"folder, {tmp_path}/gone, does not exist")
    ini = write_ini(**{"zodbconn.uri.other": f"file://{other}"})
    db = DB(FileStorage(str(other)))  # holds the lock, as a running pserve would
    try:
        result = run_cli("status", ini)
    finally:
        db.close()
    assert_one_line(result, 2, f"fftelemetry: {named}, {other}, is in use by another process")
    for name in ("other.fs", "other.fs.index", "other.fs.lock", "other.fs.tmp"):
        (tmp_path / name).unlink(missing_ok=True)
    other.write_bytes(b"SQLite format 3\x00" + bytes(100))
    assert_one_line(run_cli("status", ini), 2, f"fftelemetry: the database of zodbconn.uri.other "
                    f"in {ini}, {other}, is not a ZODB FileStorage file (zodbconn.uri.other names")


def test_a_zodbconn_uri_whose_port_is_refused_blames_no_parameter(tmp_path, write_ini, run_cli):
    # each parameter was tried alone on the same host and port: the port's error was said of the
    # first parameter ("cache_size='100' is refused: Port could not be cast ...")
    ini = write_ini(**{"zodbconn.uri": "zeo://localhost:abc?cache_size=100"})

    result = run_cli("status", ini)
    assert_one_line(result, 2, "Port could not be cast to integer value as 'abc'")
    assert "cache_size" not in result.stderr


def test_a_database_file_that_is_no_filestorage_is_one_line_and_status_2(tmp_path, write_ini,
                                                                           run_cli):
    # the line said "cannot load app.ini: <the file's name>", and nothing about it
    (tmp_path / "Data.fs").write_bytes(b"SQLite format 3\x00" + bytes(100))
    result = run_cli("status", write_ini())
    assert_one_line(result, 2, f"the database of {tmp_path}/app.ini, {tmp_path}/Data.fs, "
                    "is not a ZODB FileStorage file")
    assert (tmp_path / "Data.fs").read_bytes() == b"SQLite format 3\x00" + bytes(100)


def test_a_database_error_not_a_servers_keeps_its_own_words(tmp_path, write_ini, run_cli):
    # ZConfig's error reached start-up's catch-all for a database server's refusal, which is
    # not one: it is said as it was, not as a server's ("cannot open the None")
    conf = tmp_path / "zodb.conf"
    conf.write_text("<zodb>\n  <bogus>\n  </bogus>\n</zodb>\n")
    said = f"unknown type name: 'bogus' (line 2 in file://{conf})"
    ini = write_ini(**{"zodbconn.uri": f"zconfig://{conf}"})
    assert_one_line(run_cli("status", ini), 2, f"fftelemetry: cannot load {ini}: {said}")
    # nor when a PostgreSQL database is named beside it
    ini = write_ini(**{"zodbconn.uri": f"zconfig://{conf}",
                       "zodbconn.uri.other": "postgres://u:s3cret@127.0.0.1:5432/app"})
    assert_one_line(run_cli("status", ini), 2, f"fftelemetry: cannot load {ini}: {said}")


def test_bad_switch_is_one_line_and_status_2(write_ini, run_cli, monkeypatch):
    monkeypatch.setenv("SEND_TELEMETRY", "maybe")
    result = run_cli("cron", write_ini())
    assert_one_line(
        result, 2, "fftelemetry: SEND_TELEMETRY='maybe' (in the environment) is not understood"
    )


@pytest.mark.parametrize(
    ("setting", "raw", "reason"),
    [
        # status and cron, after a success, put the next one past the year 9999: a traceback
        ("fftelemetry.interval_days", "1000000000000", "must be at most 365"),
        # cron's POST raised urllib3's "Invalid value NaN" and a traceback
        ("fftelemetry.read_timeout", "nan", "is not a number"),
        # pyramid_retry's: "cannot load ...: <class 'AssertionError'>: in: Line 0 of file None:"
        ("retry.attempts", "0", "must be at least 1"),
        ("retry.attempts", "1e3", "is not a number"),  # int() raised, and said as much
    ],
)
def test_a_number_out_of_bounds_is_one_line_and_status_2(tmp_path, write_ini, run_cli, receiver,
                                                         setting, raw, reason):
    assert run_cli("cron", write_ini(**{"fftelemetry.telemetry_url": receiver.url})).returncode == 0
    sent = stored(tmp_path)
    ini = write_ini("bad.ini", **{"fftelemetry.telemetry_url": receiver.url, setting: raw})
    for command in (["status", ini], ["cron", ini, "--force"]):
        assert_one_line(run_cli(*command), 2, f"fftelemetry: {setting}={raw!r} {reason}")
    assert stored(tmp_path) == sent and receiver.stats()["batches"] == 1


@pytest.mark.parametrize("where", ["ini", "environment"])
def test_a_ca_bundle_that_names_nothing_is_one_line_and_status_2(tmp_path, write_ini, run_cli,
                                                                 receiver, monkeypatch, where):
    assert run_cli("cron", write_ini(**{"fftelemetry.telemetry_url": receiver.url})).returncode == 0
    sent = stored(tmp_path)
    given = f"certs/{OUTSIDE}.pem"  # relative: from the ini's folder, whatever the command's
    in_ini = given.replace("\n", "\n  ") if where == "ini" else None  # a continuation line
    ini = write_ini("bad.ini", **{"fftelemetry.telemetry_url": receiver.url,
                                  "fftelemetry.telemetry_ca_bundle": in_ini})
    if where == "environment":
        monkeypatch.setenv("TELEMETRY_CA_BUNDLE", given)
    setting = "fftelemetry.telemetry_ca_bundle" if where == "ini" else "TELEMETRY_CA_BUNDLE"
    shown = f"certs/{OUTSIDE_SHOWN}.pem"
    line = (f"fftelemetry: {setting}='{shown}' (in the {where}): there is no file or folder "
            f"{tmp_path}/{shown}\n")
    for command in (["status", ini], ["cron", ini, "--force"]):
        result = run_cli(*command, cwd="/")
        assert (result.returncode, result.stderr) == (2, line)
    assert stored(tmp_path) == sent and receiver.stats()["batches"] == 1


def test_a_locked_database_points_to_zeo(tmp_path, write_ini, run_cli):
    ini = write_ini()
    db = DB(FileStorage(str(tmp_path / "Data.fs")))  # holds the lock, as a running pserve would
    try:
        result = run_cli("status", ini)
    finally:
        db.close()
    assert_one_line(result, 2, "is in use by another process", "ZEO")



def test_a_locked_or_linked_database_of_zodbconn_uri_is_named_so(tmp_path, write_server_ini,
                                                                 run_cli, monkeypatch):
    # "the database of app.ini is in use", whose zodbconn.uri names another file (pserve's was
    # zc.lockfile's traceback); and "name the database's file in zodbconn.uri"
    ini, _, _ = write_server_ini("fftelemetry")
    held = tmp_path / "held.fs"
    monkeypatch.setenv("ZODBCONN_URI", f"file://{held}")
    db = DB(FileStorage(str(held)))  # holds the lock, as a running pserve would
    try:
        results = [(run_cli("status", ini), 2), (run_pserve(ini), 1)]
    finally:
        db.close()
    for result, status in results:
        assert_one_line(result, status, f"fftelemetry: the database named in ZODBCONN_URI (in "
                        f"the environment), {held}, is in use by another process", "ZEO")
    (tmp_path / "link.fs").symlink_to(tmp_path / "gone" / "Data.fs")
    monkeypatch.setenv("ZODBCONN_URI", f"file://{tmp_path}/link.fs")
    result = run_cli("status", ini)
    assert_one_line(result, 2, "ZODBCONN_URI (in the environment), ", "is a link to",
                    "name the database's file in ZODBCONN_URI")

def test_bad_usage_is_status_2(write_ini, run_cli):
    assert run_cli("instructions", "reinstall", write_ini()).returncode == 2
    assert run_cli("cron").returncode == 2
    assert "--dry-run" in run_cli("cron", "--help").stdout
    no_email = run_cli("create-user", write_ini(), "--password-stdin", input="a good password\n")
    assert no_email.returncode == 2 and "required: --email" in no_email.stderr


# -- cron -------------------------------------------------------------------------------------


def test_cron_sends_then_waits_a_week_unless_forced(tmp_path, write_ini, run_cli, receiver):
    ini = write_ini(**{"fftelemetry.telemetry_url": receiver.url})
    first = run_cli("cron", ini)
    assert first.returncode == 0, first.stderr
    [uuid] = receiver.read(lambda r: list(r.batches.keys()))
    assert f'Result of submission [200]: {{"uuid":"{uuid}"}}' in first.stderr
    assert "Telemetry is on (ini)." in first.stderr
    assert "Sent 1 record; the receiver's reference is" in first.stderr
    _, records, log = stored(tmp_path)
    assert records == [("system.command.executed", "cron", True)]
    assert (log[0].uuid, log[0].sent) == (uuid, 1)

    run_cli("status", ini)  # a new pending record
    waiting = run_cli("cron", ini)
    assert waiting.returncode == 0
    assert re.search(r"Not due: the next submission is due \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(",
                     waiting.stderr), waiting.stderr
    assert receiver.stats()["batches"] == 1 and stored(tmp_path)[1][-1][2] is False

    forced = run_cli("cron", ini, "--force")
    assert forced.returncode == 0, forced.stderr
    assert receiver.stats() == {"records": 2, "batches": 2}
    assert all(submitted for _, _, submitted in stored(tmp_path)[1])


def test_cron_failure_exits_1_and_shows_in_status(tmp_path, write_ini, run_cli):
    stub = Stub(status="500 Internal Server Error", body=b'{"error":"down for maintenance"}')
    with serving(stub) as url:
        ini = write_ini(**{"fftelemetry.telemetry_url": url})
        result = run_cli("cron", ini)
    assert result.returncode == 1
    assert 'Result of submission [500]: {"error":"down for maintenance"}' in result.stderr
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert "the receiver answered HTTP 500" in warning
    _, records, log = stored(tmp_path)
    assert not any(submitted for _, _, submitted in records)
    assert values(records, "system.command.errored") == ["cron"]
    assert "HTTP 500" in log[0].error
    status = run_cli("status", ini).stdout
    assert "FAILED: the receiver answered HTTP 500" in status
    assert "Next submission due: now" in status


@pytest.mark.parametrize("where", [None, "ini", ".env"])
def test_cron_trusts_the_receivers_ca_where_the_setting_names_it(tmp_path, write_ini, run_cli,
                                                                 receiver, monkeypatch, where):
    # this machine's (a login shell's) REQUESTS_CA_BUNDLE: cron's environment has none
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "our-ca.pem"))
    if where == ".env":
        (tmp_path / ".env").write_text("TELEMETRY_CA_BUNDLE=our-ca.pem\n")
    in_ini = "our-ca.pem" if where == "ini" else None
    with tls_serving(receiver.app, ca.issue_cert("127.0.0.1")) as url:
        ini = write_ini(**{"fftelemetry.telemetry_url": url,
                           "fftelemetry.telemetry_ca_bundle": in_ini})
        result = run_cli("cron", ini, cwd="/")  # relative to the ini's folder, not cron's
    _, records, log = stored(tmp_path)
    if where is None:
        assert result.returncode == 1, result.stderr
        assert log[0].error == (
            f"the certificate of {url}/submit was not accepted: unable to get local issuer "
            "certificate (checked against certifi's CAs: name a CA of your own in "
            "TELEMETRY_CA_BUNDLE)"
        )
        assert not any(submitted for _, _, submitted in records)
        assert receiver.stats()["batches"] == 0
    else:
        assert result.returncode == 0, result.stderr
        assert "Sent 1 record; the receiver's reference is" in result.stderr
        [uuid] = receiver.read(lambda r: list(r.batches.keys()))
        assert (log[0].uuid, log[0].sent) == (uuid, 1)
        assert records == [("system.command.executed", "cron", True)]


def test_cron_through_a_socks_version_pysocks_does_not_know_fails_in_one_line(tmp_path, write_ini,
                                                                             run_cli, monkeypatch):
    # urllib3's SOCKSProxyManager refuses socks6:// with a bare ValueError, which the exchange
    # raised again as not the request's: cron's traceback, "fftelemetry cron failed"
    pytest.importorskip("socks")  # PySocks: selenium's urllib3[socks] brings it to the tests
    use_proxy(monkeypatch, "socks6://127.0.0.1:1080", "HTTPS_PROXY")
    ini = write_ini(**{"fftelemetry.telemetry_url": "https://192.0.2.1:6544"})
    result = run_cli("cron", ini, "--force")
    said = (
        "the proxy for https://192.0.2.1:6544/submit cannot be used: "
        "HTTPS_PROXY='socks6://127.0.0.1:1080' names a SOCKS version PySocks does not know (it "
        "knows socks4, socks4a, socks5, socks5h)"
    )
    assert result.returncode == 1, result.stderr
    assert [line for line in result.stderr.splitlines() if not line.startswith("INFO [")] == [
        f"WARNING [fftelemetry.telemetry.sender] Telemetry submission failed: {said}; the "
        "records stay pending."
    ]
    _, records, log = stored(tmp_path)
    assert records and not any(submitted for _, _, submitted in records)
    assert log[0].error == said


def test_cron_retries_the_next_day_after_a_failure(tmp_path, write_ini, run_cli,
                                                   closed_port_url, receiver):
    up = write_ini("up.ini", **{"fftelemetry.telemetry_url": receiver.url})
    assert run_cli("cron", up).returncode == 0  # a success: the next run is due in a week
    down = write_ini(**{"fftelemetry.telemetry_url": closed_port_url})
    run_cli("status", down)  # a new pending record
    assert run_cli("cron", down, "--force").returncode == 1
    again = run_cli("cron", write_ini(**{"fftelemetry.telemetry_url": receiver.url}))
    assert again.returncode == 0, again.stderr
    assert receiver.stats()["records"] == 3  # executed cron, then status + errored cron


def test_cron_dry_run_prints_what_it_would_send_and_sends_nothing(tmp_path, write_ini, run_cli):
    stub = Stub()
    with serving(stub) as url:
        ini = write_ini(**{"fftelemetry.telemetry_url": url, "fftelemetry.batch_size": "2"})
        run_cli("instructions", "install", ini)  # 5 records
        _, before, _ = stored(tmp_path)
        result = run_cli("cron", ini, "--dry-run")
    assert result.returncode == 0 and stub.requests == []
    bodies = [json.loads(line) for line in result.stdout.splitlines()]
    assert [len(body) for body in bodies] == [2, 2, 1]
    sent_keys = [record["key"] for body in bodies for record in body]
    _, records, log = stored(tmp_path)
    assert records == before, "a dry run changes nothing, not even its own first use"
    assert sent_keys == [key for key, _, _ in records]
    assert not any(submitted for _, _, submitted in records) and log == []


def test_cron_sends_nothing_while_telemetry_is_off(tmp_path, write_ini, run_cli):
    stub = Stub()
    with serving(stub) as url:
        run_cli("status", write_ini(**{"fftelemetry.telemetry_url": url}))  # one pending record
        off = write_ini(**{"fftelemetry.telemetry_url": url, "fftelemetry.send_telemetry": "no"})
        result = run_cli("cron", off, "--force")
    assert result.returncode == 0 and stub.requests == [], "the receiver must never be called"
    assert "Telemetry is off (ini): nothing to submit." in result.stderr
    assert "WARNING" not in result.stderr
    assert [submitted for _, _, submitted in stored(tmp_path)[1]] == [False]


def made_quietly(write_ini, run_cli):
    """The app's database, made by a command that collects nothing (telemetry off): a record
    collected now and then sent on a clock days back would be sent before it was collected."""
    run_cli("status", write_ini("made.ini", **{"fftelemetry.send_telemetry": "false"}))


def collected_days_ago(tmp_path, days, values):
    """Collect `values` as `system.users.count` `days` days ago (a float: less than a day too),
    and leave them pending (the app's database: closed again after)."""
    then = utcnow() - timedelta(days=days)
    db = DB(FileStorage(str(tmp_path / "Data.fs")))
    try:
        with db.transaction() as conn:
            store = telemetry_store_in(conn.root())
            for value in values:
                store.add_feature("system.users.count", value, then)
    finally:
        db.close()


def sent_days_ago(tmp_path, url, days, values):
    """Collect `values` an hour before `days` days ago and send them, with every other pending
    record, to the receiver at `url` by the real sender on a clock that many days back (the app's
    database: closed again after). How many were sent."""
    then = utcnow() - timedelta(days=days)
    collected_days_ago(tmp_path, days + 1 / 24, values)
    db = DB(FileStorage(str(tmp_path / "Data.fs")))
    try:
        app_settings = settings.load(
            {"fftelemetry.session_secret": SECRET, "fftelemetry.send_telemetry": "true",
             "fftelemetry.telemetry_url": url}, environ={},
        )
        outcome = submit_pending(db, app_settings, now=then)
    finally:
        db.close()
    assert outcome.ok, outcome.error
    return outcome.sent


EXPIRED = "Deleted {} records submitted more than 90 days ago (fftelemetry.keep_submitted_days)."


def test_cron_deletes_what_was_sent_longer_ago_than_kept(tmp_path, write_ini, run_cli, receiver):
    ini = write_ini(**{"fftelemetry.telemetry_url": receiver.url})
    made_quietly(write_ini, run_cli)
    assert sent_days_ago(tmp_path, receiver.url, 91, [1, 2, 3]) == 3
    assert sent_days_ago(tmp_path, receiver.url, 89, [4]) == 1
    result = run_cli("cron", ini)
    assert result.returncode == 0, result.stderr
    assert EXPIRED.format(3) in result.stderr
    assert "Sent 1 record" in result.stderr  # and it still sends (due: the last success is old)
    assert stored(tmp_path)[1] == [("system.users.count", 4, True),
                                   ("system.command.executed", "cron", True)]
    assert receiver.stats()["records"] == 5  # the receiver keeps what it got
    status = run_cli("status", ini)
    assert ("Retention: submitted records are kept 90 days after they were sent, then deleted "
            "by fftelemetry cron") in status.stdout
    assert "Deleted records: still in the database file until the next" in status.stdout
    # the memory of what was sent stays: a value sent and deleted is not collected again
    assert sent_days_ago(tmp_path, receiver.url, 0, [1, 5]) == 2  # 5, and status's record
    assert values(stored(tmp_path)[1], "system.users.count") == [4, 5]
    again = run_cli("cron", ini)
    assert again.returncode == 0 and "Deleted" not in again.stderr  # nothing old: no line


def test_cron_deletes_old_records_while_telemetry_is_off(tmp_path, write_ini, run_cli, receiver):
    made_quietly(write_ini, run_cli)
    sent_days_ago(tmp_path, receiver.url, 100, [1, 2])
    off = write_ini("off.ini", **{"fftelemetry.telemetry_url": receiver.url,
                                  "fftelemetry.send_telemetry": "no"})
    result = run_cli("cron", off, "--force")
    assert result.returncode == 0, result.stderr
    assert EXPIRED.format(2) in result.stderr
    assert "Telemetry is off (ini): nothing to submit." in result.stderr
    assert receiver.stats()["batches"] == 1, "deleting sends nothing"
    assert stored(tmp_path)[1] == []


def test_cron_dry_run_says_what_it_would_delete_and_deletes_nothing(tmp_path, write_ini,
                                                                   run_cli, receiver):
    ini = write_ini(**{"fftelemetry.telemetry_url": receiver.url})
    made_quietly(write_ini, run_cli)
    sent_days_ago(tmp_path, receiver.url, 100, [1, 2, 3])
    run_cli("instructions", "install", ini)  # pending records for the dry run to print
    before = (tmp_path / "Data.fs").read_bytes()
    result = run_cli("cron", ini, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert ("Would delete 3 records submitted more than 90 days ago (a dry run deletes nothing)."
            in result.stderr)
    assert [len(json.loads(line)) for line in result.stdout.splitlines()] == [5]
    assert (tmp_path / "Data.fs").read_bytes() == before
    assert receiver.stats()["batches"] == 1


def test_cron_that_cannot_write_says_how_many_it_had_deleted(tmp_path, write_ini, run_cli):
    """A full disk in expiry's second chunk (10,000 records a chunk): the first one stays
    deleted, so "rolled back" alone would mislead; one line says how far it got, nothing is
    sent, and with room again the next run goes on."""
    ini = write_ini(**{"fftelemetry.send_telemetry": "false"})  # cron writes nothing else
    made_quietly(write_ini, run_cli)
    then = utcnow() - timedelta(days=100)
    db = DB(FileStorage(str(tmp_path / "Data.fs")))
    try:
        with db.transaction() as conn:
            store = telemetry_store_in(conn.root())
            for i in range(10_001):
                store.add_feature("system.users.count", i, then - timedelta(seconds=10_001 - i))
            store.mark_submitted([seq for seq, _ in store.pending_batch(10_001)], "u", then)
    finally:
        db.close()
    data = tmp_path / "Data.fs"
    original = data.read_bytes()
    assert "Deleted 10001 records" in run_cli("cron", ini).stderr  # how long it all is
    room = data.stat().st_size - 1  # for every transaction but the last one's last byte
    data.write_bytes(original)
    (tmp_path / "Data.fs.index").unlink()

    with file_size_limit(room):
        result = run_cli("cron", ini)

    assert_one_line(
        result, 1, "fftelemetry cron: deleting old submitted records stopped after 10000 "
        "records (OSError: [Errno 27] File too large); the others stay until the next run, "
        "and nothing was submitted",
    )
    assert len(stored(tmp_path)[1]) == 1
    again = run_cli("cron", ini)
    assert again.returncode == 0, again.stderr
    assert "Deleted 1 record submitted more than 90 days ago" in again.stderr


def test_cron_keeps_submitted_records_for_ever_with_0_days(tmp_path, write_ini, run_cli,
                                                           receiver):
    ini = write_ini(**{"fftelemetry.telemetry_url": receiver.url,
                       "fftelemetry.keep_submitted_days": "0"})
    made_quietly(write_ini, run_cli)
    sent_days_ago(tmp_path, receiver.url, 3650, [1])
    result = run_cli("cron", ini)
    assert result.returncode == 0 and "Deleted" not in result.stderr
    assert [submitted for _, _, submitted in stored(tmp_path)[1]] == [True, True]
    status = run_cli("status", ini).stdout
    assert "Retention: submitted records are kept until you delete them" in status
    assert "Deleted records" not in status


def test_a_bad_keep_submitted_days_is_one_line_and_status_2(tmp_path, write_ini, run_cli):
    result = run_cli("cron", write_ini(**{"fftelemetry.keep_submitted_days": "90d"}))
    assert_one_line(result, 2, "fftelemetry: fftelemetry.keep_submitted_days='90d' is not a number")
    assert not (tmp_path / "Data.fs").exists()


def test_an_unreachable_zeo_server_is_one_line(tmp_path, write_ini, run_cli):
    ini = write_ini(**{"zodbconn.uri": f"zeo://{tmp_path}/no-zeo.sock?wait_timeout=1"})
    result = run_cli("status", ini)
    assert_one_line(result, 2, "cannot reach the ZEO server", "runzeo")
    assert "ZEO" not in result.stderr.replace("the ZEO server", ""), "ZEO's retries are not shown"


CTRL_C = b"\x03"  # the terminal turns it into SIGINT
CTRL_D = b"\x04"  # on an empty line, the terminal's end of input
SIGTERM = "SIGTERM"  # an answer that is no answer: the command is sent SIGTERM at the prompt


def converse(argv, *answers, timeout=30):
    """Run argv on a pseudo-terminal (getpass reads /dev/tty), typing each answer after the
    next prompt; returns (exit status, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes the command
        os.execv(argv[0], argv)  # noqa: S606 - argv is ours, no shell wanted
    shown, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if pending and shown.endswith(b": "):  # a prompt waits (an answer ends that)
                answer = pending.pop(0).encode()
                if answer == SIGTERM.encode():
                    os.kill(pid, signal.SIGTERM)
                else:
                    os.write(fd, answer if answer in (CTRL_C, CTRL_D) else answer + b"\n")
    else:
        os.kill(pid, signal.SIGKILL)  # stuck: fail the test, don't hang it
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_create_user_asks_for_the_password_twice(tmp_path, write_ini):
    argv = [sys.executable, "-m", "fftelemetry.cli.main", "create-user", write_ini(),
            "--email", "cy@example.org"]
    status, shown = converse(argv, "a good password", "another one")
    assert status == 1 and "the two passwords differ" in shown
    status, shown = converse(argv, "a good password", "a good password")
    assert status == 0 and "Created administrator cy@example.org." in shown
    assert "a good password" not in shown, "a password prompt does not echo"


def test_create_user_interrupted_at_the_prompt_is_one_line(tmp_path, write_ini):
    argv = [sys.executable, "-m", "fftelemetry.cli.main", "create-user", write_ini(),
            "--email", "cy@example.org"]
    status, shown = converse(argv, "a good password", CTRL_C.decode())
    assert status == 130 and "fftelemetry create-user: interrupted" in shown
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown
    assert values(stored(tmp_path)[1], "system.users.count") == []


def test_create_user_given_no_password_at_the_prompt_is_one_line(tmp_path, write_ini):
    argv = [sys.executable, "-m", "fftelemetry.cli.main", "create-user", write_ini(),
            "--email", "cy@example.org"]
    status, shown = converse(argv, CTRL_D.decode())
    assert status == 1, shown
    assert shown.splitlines()[-1].endswith(": fftelemetry create-user: no password given")
    assert "Traceback" not in shown
    assert values(stored(tmp_path)[1], "system.users.count") == []


def test_create_user_stopped_by_sigterm_is_one_line_and_closes_the_database(tmp_path, write_ini):
    # SIGTERM ended the command at once: the new Data.fs was left with no index, which the next
    # open rebuilds by reading the whole file
    argv = [sys.executable, "-m", "fftelemetry.cli.main", "create-user", write_ini(),
            "--email", "cy@example.org"]
    status, shown = converse(argv, "a good password", SIGTERM)
    assert status == 143, shown
    assert shown.splitlines()[-1].endswith(  # after the prompt it stopped at
        ": fftelemetry create-user: stopped by SIGTERM; the change in progress, if any, "
        "was rolled back"
    )
    assert "Traceback" not in shown and "KeyboardInterrupt" not in shown
    data = tmp_path / "Data.fs"
    assert fsIndex.load(f"{data}.index")["pos"] == os.path.getsize(data)
    assert values(stored(tmp_path)[1], "system.users.count") == []


def test_create_user_without_a_terminal_asks_for_password_stdin(tmp_path, write_ini, run_cli):
    result = run_cli("create-user", write_ini(), "--email", "cy@example.org", input="")
    assert_one_line(result, 2, "no terminal to ask for the password on", "--password-stdin")
    assert values(stored(tmp_path)[1], "system.users.count") == []


@pytest.mark.parametrize("errors", ["surrogateescape", "strict"])
def test_a_password_that_is_not_utf8_is_one_line(tmp_path, write_ini, monkeypatch, errors):
    # C.UTF-8 reads the byte as a lone surrogate, which argon2 could not encode; a strict
    # locale stops the read: both were a traceback
    monkeypatch.setenv("PYTHONIOENCODING", f"utf-8:{errors}")
    argv = [sys.executable, "-m", "fftelemetry.cli.main", "create-user", write_ini(),
            "--email", "cy@example.org", "--password-stdin"]
    result = subprocess.run(argv, input=b"a good p\xe4ssword\n", capture_output=True,
                            timeout=60, check=False)
    result.stderr = result.stderr.decode()
    assert_one_line(result, 1, "fftelemetry create-user: the password is not UTF-8 text")
    assert values(stored(tmp_path)[1], "system.users.count") == []


def test_a_closed_input_for_the_password_is_one_line_and_status_2(tmp_path, write_ini):
    # `--password-stdin <&-`: sys.stdin is None, and reading it was a traceback
    argv = [sys.executable, "-m", "fftelemetry.cli.main", "create-user", write_ini(),
            "--email", "cy@example.org", "--password-stdin"]
    result = subprocess.run(["sh", "-c", 'exec "$0" "$@" <&-', *argv], capture_output=True,
                            text=True, timeout=60, check=False)
    assert_one_line(result, 2, "fftelemetry create-user: standard input is closed")
    assert values(stored(tmp_path)[1], "system.users.count") == []


def test_output_cut_off_by_its_reader_is_no_error(write_ini):
    # `fftelemetry status app.ini | head -1`: the reader goes away before the output is written
    argv = [sys.executable, "-m", "fftelemetry.cli.main", "status", write_ini()]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()
    stderr = child.stderr.read().decode()
    child.stderr.close()
    assert child.wait(60) == 141, stderr
    assert [line for line in stderr.splitlines() if not line.startswith("INFO [")] == []


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_output_that_cannot_be_written_is_one_line_and_status_1(write_ini, monkeypatch,
                                                                 unbuffered):
    # `> out` on a full disk: a traceback at the exit's flush and status 120; printed at once
    # (PYTHONUNBUFFERED, or more than a buffer), the line for a database that cannot write
    monkeypatch.setenv("PYTHONUNBUFFERED", unbuffered)
    argv = [sys.executable, "-m", "fftelemetry.cli.main", "status", write_ini()]
    with open("/dev/full", "w") as full:
        result = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True,
                                timeout=60, check=False)
    assert_one_line(result, 1, "fftelemetry status: cannot write to standard output "
                    "(No space left on device); only what it printed is lost")


def test_a_closed_output_is_one_line_and_status_2_and_nothing_is_done(tmp_path, write_ini):
    # `>&-`: the command ran, then stopped with a traceback (sys.stdout is None); meanwhile
    # the first file it opened was file 1
    argv = [sys.executable, "-m", "fftelemetry.cli.main", "status", write_ini()]
    result = subprocess.run(["sh", "-c", 'exec "$0" "$@" >&-', *argv], stderr=subprocess.PIPE,
                            text=True, timeout=60, check=False)
    assert_one_line(result, 2, "fftelemetry status: standard output is closed")
    assert not (tmp_path / "Data.fs").exists()


SHIPPED_RECORD = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO   |WARNING) \[fftelemetry\.[\w.]+\] \S"
)


def test_an_ini_without_logging_sections_logs_the_commands_results(tmp_path, write_ini, run_cli,
                                                                  receiver):
    """An operator's own ini, with no [loggers], [handlers] or [formatters]: cron's log says
    what a run did, as with the shipped inis (Python's default said warnings only, so nothing
    of a run that succeeded); an ini that configures logging is obeyed as it is."""
    shipped = Path(write_ini(**{"fftelemetry.telemetry_url": receiver.url}))
    own = tmp_path / "own.ini"
    own.write_text(shipped.read_text().replace(LOGGING_SECTIONS, ""))
    assert "[loggers]" not in own.read_text()

    result = run_cli("cron", str(own))
    assert result.returncode == 0, result.stderr
    assert " INFO    [fftelemetry.cli.cron] Telemetry is on (ini).\n" in result.stderr
    lines = result.stderr.splitlines()
    assert all(SHIPPED_RECORD.match(line) for line in lines), lines
    assert " INFO    [fftelemetry.telemetry.sender] Result of submission [200]: " in result.stderr
    assert re.search(r" INFO    \[fftelemetry\.cli\.cron\] Sent 1 record; the receiver's "
                     r"reference is \S+\.$", result.stderr, re.M), result.stderr

    # the ini's own logging, warnings only: obeyed, no INFO line
    own.write_text(shipped.read_text().replace("level = INFO", "level = WARNING"))
    quiet = run_cli("cron", str(own), "--force")
    assert (quiet.returncode, quiet.stderr) == (0, ""), quiet.stderr


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (
            "http://alice:p%wsecret@127.0.0.1:6544",
            "holds a '%' followed by neither '%' nor '(': write a '%' as '%%'",
        ),
        (
            "http://alice:p%(wsecret)s@127.0.0.1:6544",
            "holds a %(name)s whose name is set neither there nor in [DEFAULT]",
        ),
    ],
)
def test_a_percent_the_ini_cannot_substitute_is_named_not_quoted(write_ini, run_cli, value, said):
    # configparser's own text quotes the value from the '%' on: there, a password
    ini = write_ini(**{"fftelemetry.telemetry_url": value})
    result = run_cli("status", ini)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"fftelemetry: cannot load {ini}: fftelemetry.telemetry_url in [app:main] {said}"
    ]
    assert "secret" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("held", "said"),
    [
        ("p%wsecret", "holds a '%' followed by neither '%' nor '(': write a '%' as '%%'"),
        ("p%(wsecret)s", "holds a %(name)s whose name is set neither there nor in [DEFAULT]"),
    ],
)
def test_a_percent_is_blamed_on_the_setting_that_holds_it(write_ini, run_cli, held, said):
    # configparser names the setting it was substituting into: the URL, which is right
    ini = write_ini(**{
        "fftelemetry.telemetry_url": "http://alice:%(receiver_password)s@127.0.0.1:6544",
        "receiver_password": held,
    })
    result = run_cli("status", ini)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"fftelemetry: cannot load {ini}: receiver_password in [app:main] {said}"
    ]
    assert "secret" not in result.stderr + result.stdout


def test_a_substitution_that_loops_is_named_not_quoted(write_ini, run_cli):
    # configparser's InterpolationDepthError quotes the raw value; holder follows the loop, once
    ini = write_ini(**{
        "fftelemetry.telemetry_url": "http://alice:%(first)s@127.0.0.1:6544",
        "first": "secret%(second)s",
        "second": "%(first)s",
    })
    result = run_cli("status", ini)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"fftelemetry: cannot load {ini}: first in [app:main] cannot be substituted "
        "(InterpolationDepthError)"
    ]
    assert "secret" not in result.stderr + result.stdout
