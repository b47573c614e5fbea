"""A console command and a web request writing at the same moment, as `fftelemetry create-user`
or a first `fftelemetry cron` does beside `pserve` on one ZEO server. The web request commits
between the command's reads and its commit: the command's commit conflicts, and the command
reruns its transaction (as pyramid_retry reruns a request) instead of failing with a traceback.

The commands run in this process on the real app's registry; the web request is a real one
through the same app, sent from a subscriber at the moment the command's transaction is open."""

import argparse
import io

from pyramid_zodbconn import ZODBConnectionOpened

from fftelemetry.cli import create_user, delete
from fftelemetry.cli.main import collect, run_command
from fftelemetry.events import UserRegistered
from tests.functional.conftest import ADMIN_EMAIL

CLI_EMAIL = "console@example.org"


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
    args = argparse.Namespace(command="delete", run=delete.run, kind="all", yes=True)

    assert run_command(site.app.registry, args) == 1

    assert len(registered) == 2
    assert capsys.readouterr() == ("", (
        "fftelemetry delete: could not delete (conflicting writes on every attempt: the records "
        "kept changing meanwhile); nothing was deleted: try again\n"
    ))
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert site.counts()["all"] == 5  # the three and the registrations' system.users.count
