"""A console command and a web request writing at the same moment, as `fftelemetry create-user`
or a first `fftelemetry cron` does beside `pserve` on one ZEO server. The web request commits
between the command's reads and its commit: the command's commit conflicts, and the command
reruns its transaction (as pyramid_retry reruns a request) instead of failing with a traceback;
if that happens on every attempt, the command says so in one line.

The commands run in this process on the real app's registry; the web request (or another
command's write) is a real one through the same app, sent from a subscriber at the moment the
command's transaction is open."""

import argparse
import io
import platform
import re

from pyramid_zodbconn import ZODBConnectionOpened

from fftelemetry.cli import create_user
from fftelemetry.cli.main import build_parser, collect, run_on
from fftelemetry.cli.pack import record_pack
from fftelemetry.events import UserRegistered
from fftelemetry.resources.store import utcnow
from tests.functional.conftest import ADMIN_EMAIL
from tests.functional.test_pack import PACKED

CLI_EMAIL = "console@example.org"
CONFLICTS = "conflicting writes on every attempt: another process kept changing the same data"


def command(*argv):
    """`fftelemetry *argv CONFIG_URI` as the console parses it, for run_on on a site's registry
    (the app is loaded already: the config file is not read). run_on closes the site's database
    when the command ends: look at the outcome through a site opened again."""
    return build_parser().parse_args([*argv, "site.ini"])


def errors_logged(caplog):
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR" or r.exc_info]


def warned(caplog):
    """What was logged above INFO: (level, message) pairs."""
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.levelname != "INFO"]


def values_of(site, key):
    with site.store() as store:
        return sorted(r.value for _, r in store.page() if r.key == key)


def meanwhile(site, event_type, web_request):
    """Send `web_request()` once, the first time `event_type` is announced (on a database that
    has its tree already, as an installation has after its first page)."""
    site.browser().get("/")
    sent = []

    def handler(event):
        if not sent:
            sent.append(True)
            web_request()

    site.app.registry.registerHandler(handler, (event_type,))
    return sent


def test_create_user_while_the_first_user_registers_on_the_web(site, monkeypatch, capsys):
    """Both see no users: both would own the installation, both count one user. The web's
    registration lands first; the command's retry makes an ordinary second user, counted 2."""
    sent = meanwhile(site, UserRegistered, lambda: site.register(ADMIN_EMAIL, wizard=None))
    monkeypatch.setattr("sys.stdin", io.StringIO("a good password\n"))
    args = argparse.Namespace(email=CLI_EMAIL, admin=False, password_stdin=True)

    assert create_user.run(site.app.registry, args) == 0

    assert sent and capsys.readouterr().out == f"Created user {CLI_EMAIL}.\n"
    with site.root() as root:
        users = root["users"]
        assert (len(users), users.owner) == (2, ADMIN_EMAIL)
        assert users[ADMIN_EMAIL].is_admin and not users[CLI_EMAIL].is_admin
    with site.store() as store:
        counts = [r.value for _, r in store.page() if r.key == "system.users.count"]
    assert sorted(counts) == [1, 2]


def test_a_commands_first_record_and_the_webs_make_one_installation_id(site):
    """The installation's very first records, one from a command and one from a registration
    at once: each transaction makes an installation id. The web's commits first, and the
    command's rerun keeps it, so every record carries the one id."""
    sent = meanwhile(site, ZODBConnectionOpened, lambda: site.register(ADMIN_EMAIL, wizard=None))

    collect(site.app.registry, "system.command.executed", "status")

    assert sent
    with site.store() as store:
        records = [r for _, r in store.page()]
        installation_id = store.installation_id
    assert sorted(r.key for r in records) == ["system.command.executed", "system.users.count"]
    assert {r.installation_id for r in records} == {installation_id}


def test_a_delete_whose_every_attempt_conflicts_is_one_line_and_deletes_nothing(
    make_site, capsys, caplog
):
    """Records collected on the web between each attempt's count and its commit (a busy site):
    the delete is rerun, and once its attempts are spent it says so in one line, no traceback."""
    site = make_site(**{"retry.attempts": "2"})
    site.seed(3)
    busy, registered = [], []

    def register_meanwhile(event):  # as each attempt opens its connection
        if busy or len(registered) == 2:  # a registration opens connections of its own
            return
        busy.append(True)
        registered.append(site.register(f"user{len(registered)}@example.org", wizard=None))
        busy.clear()

    site.app.registry.registerHandler(register_meanwhile, (ZODBConnectionOpened,))

    assert run_on(site.app.registry, command("delete", "all", "--yes")) == 1

    assert len(registered) == 2
    assert capsys.readouterr() == ("", (
        f"fftelemetry delete: could not delete ({CONFLICTS}); nothing was deleted: try again\n"
    ))
    assert errors_logged(caplog) == []
    assert make_site().counts()["all"] == 5  # the three and the registrations' system.users.count


def test_a_create_user_whose_every_attempt_conflicts_is_one_line_and_creates_nobody(
    make_site, monkeypatch, capsys, caplog
):
    """A registration on the web during each attempt, counting the same number of users as the
    command does (on the first, both would own the installation too): once its attempts are
    spent the command says so in one line, exit 1, no traceback, and its account is not made."""
    site = make_site(**{"retry.attempts": "2"})
    busy, registered = [], []

    def register_meanwhile(event):  # as each attempt announces its account, before its commit
        if busy:  # the registration announces its own
            return
        busy.append(True)
        registered.append(site.register(f"user{len(registered)}@example.org", wizard=None))
        busy.clear()

    site.app.registry.registerHandler(register_meanwhile, (UserRegistered,))
    monkeypatch.setattr("sys.stdin", io.StringIO("a good password\n"))

    assert run_on(site.app.registry, command("create-user", "--email", CLI_EMAIL,
                                             "--password-stdin")) == 1

    assert len(registered) == 2
    assert capsys.readouterr() == ("", (
        f"fftelemetry create-user: could not write ({CONFLICTS}); the change in progress was "
        "rolled back: try again\n"
    ))
    assert errors_logged(caplog) == []
    site = make_site()
    with site.root() as root:
        users = root["users"]
        assert (len(users), users.owner, CLI_EMAIL in users) == (2, "user0@example.org", False)
    assert values_of(site, "system.users.count") == [1, 2]  # the registrations' only
    # its use was collected before it ran; a failed write is not the command's failure
    assert values_of(site, "system.command.executed") == ["create-user"]
    assert values_of(site, "system.command.errored") == []


def note_packs_meanwhile(site, skip):
    """As each transaction opens its connection, another pack notes its time in the store (in a
    transaction of its own, whose connections do not count), unless skip(connections opened so
    far, notes so far). The times noted, as a list that grows."""
    busy, opened, noted = [], [], []

    def note_a_pack(event):
        if busy:
            return
        opened.append(True)
        if skip(len(opened), len(noted)):
            return
        busy.append(True)
        noted.append(utcnow())
        record_pack(site.app.registry, noted[-1], 7)
        busy.clear()

    site.app.registry.registerHandler(note_a_pack, (ZODBConnectionOpened,))
    return noted


def test_a_pack_whose_note_conflicts_on_every_attempt_says_the_pack_was_done(
    make_site, capsys, caplog
):
    """Another pack noting its time in the store during each attempt to note this one's: the
    pack itself is done, and the one line says only its note failed (exit 1, no traceback)."""
    site = make_site(**{"retry.attempts": "2"})
    site.seed(1)  # the installation has its id
    # not while the command's use is collected (the first transaction): a record needs the
    # store it read, and a note written meanwhile would change it
    noted = note_packs_meanwhile(site, skip=lambda opened, noted: opened == 1)

    assert run_on(site.app.registry, command("pack")) == 1

    out, err = capsys.readouterr()
    assert PACKED.fullmatch(out)
    assert err == (
        f"fftelemetry pack: the database was packed, but the time of the pack could not be "
        f"recorded ({CONFLICTS}); the status page still shows the pack before it\n"
    )
    assert errors_logged(caplog) == []
    assert len(noted) == 2  # the note's two attempts
    site = make_site()
    with site.store() as store:
        assert (store.packed_at, store.pack_kept_days) == (noted[-1], 7)  # the other's note
    assert values_of(site, "system.command.executed") == ["pack"]


def test_a_commands_use_whose_collection_conflicts_on_every_attempt_still_runs_it(
    make_site, capsys, caplog
):
    """A new installation, whose first record (the command's use) makes the installation id,
    while another process writes the same store (a pack's note) during each attempt. The
    operator's command runs all the same: exit 0, its output, one WARNING line and no traceback;
    nothing is written, and the next run collects the use."""
    site = make_site(**{"retry.attempts": "2"})
    site.browser().get("/")  # the site's tree, as an installation has after its first page
    noted = note_packs_meanwhile(site, skip=lambda opened, noted: noted == 2)

    assert run_on(site.app.registry, command("status")) == 0

    assert len(noted) == 2
    out, err = capsys.readouterr()
    assert re.search(r"^Installation id: none yet$", out, re.M), out
    assert err == ""
    assert errors_logged(caplog) == []
    assert warned(caplog) == [(
        "WARNING",
        f"system.command.executed 'status' not collected ({CONFLICTS}); a later run collects it",
    )]
    site = make_site()
    assert site.counts()["all"] == 0

    assert run_on(site.app.registry, command("status")) == 0
    assert values_of(make_site(), "system.command.executed") == ["status"]


def test_instructions_whose_facts_conflict_on_every_attempt_are_printed_all_the_same(
    make_site, capsys, caplog
):
    """Another process writes the store (a pack's note) during each attempt to collect the
    system facts: the operator gets the instructions all the same (exit 0, one WARNING line, no
    traceback), nothing of the facts is written, and the next run collects them."""
    site = make_site(**{"retry.attempts": "2"})
    site.seed(1)  # the installation has its id
    # not while the command's use is collected (the first transaction), nor once both attempts
    # at the facts have met a note (the instructions' reads)
    noted = note_packs_meanwhile(site, skip=lambda opened, noted: opened == 1 or noted == 2)

    assert run_on(site.app.registry, command("instructions", "install")) == 0

    assert len(noted) == 2
    out, err = capsys.readouterr()
    assert "Next steps:" in out and "fftelemetry create-user" in out
    assert out.endswith(
        "could not be recorded this time (see the warning); running this command again records "
        "them.\n"
    )
    assert err == ""
    assert errors_logged(caplog) == []
    assert warned(caplog) == [(
        "WARNING",
        f"system facts not collected ({CONFLICTS}); a later run of instructions collects them",
    )]
    site = make_site()
    assert values_of(site, "system.python.version") == []
    assert values_of(site, "system.command.executed") == ["instructions"]

    assert run_on(site.app.registry, command("instructions", "install")) == 0
    assert "are recorded, each value once" in capsys.readouterr().out
    assert values_of(make_site(), "system.python.version") == [platform.python_version()]


def test_cron_whose_note_while_off_conflicts_on_every_attempt_is_one_line(
    make_site, capsys, caplog
):
    """Telemetry off, records pending: cron notes its run in the store (note_off), while a pack
    notes its own there during each attempt. Its one line is the write's, exit 1: there is
    nothing old to delete, so not the deleting's."""
    site = make_site(**{"retry.attempts": "2", "fftelemetry.send_telemetry": "false"})
    site.seed(1)
    noted = note_packs_meanwhile(site, skip=lambda opened, noted: False)

    assert run_on(site.app.registry, command("cron")) == 1

    assert capsys.readouterr() == ("", (
        f"fftelemetry cron: could not write ({CONFLICTS}); the change in progress was rolled "
        "back: try again\n"
    ))
    assert errors_logged(caplog) == []
    assert noted
    with make_site().store() as store:
        assert store.cron_ran_off_at is None
