"""Database generations on real FileStorages: a new database records the current one, a root
from before generations counts as 1, a newer database stops the app, the receiver and every
console command in one line without a byte written, and an older one is evolved step by step at
start-up (the steps here are registered for the test only, and run by the real runner)."""

import gc
import json
import logging
import os
import subprocess
import sys
from contextlib import contextmanager

import pytest
import webtest
import ZEO
from ZODB import DB
from ZODB.FileStorage import FileStorage

from fftelemetry import main
from fftelemetry.receiver import main as receiver_main
from fftelemetry.receiver.resources import GENERATIONS as RECEIVER_GENERATIONS
from fftelemetry.receiver.resources import ROOT_KEY as RECEIVER_KEY
from fftelemetry.resources import GENERATIONS, ROOT_KEY, Admin
from fftelemetry.scripting import close_databases, database
from tests.conftest import app_settings, run_pserve
from tests.functional.test_receiver import post, record

NEWER = (
    "the database named in {where} is of generation 99, but this {program} knows up to "
    "generation 1 (a newer version has changed the database): upgrade fftelemetry again, or "
    "restore a backup of the database made before that upgrade"
)


def set_generation(path, key, generation):
    """Give the root under `key` another generation, as another version would have left it;
    None drops it, as in a database made before generations were recorded."""
    db = DB(FileStorage(str(path)))
    try:
        with db.transaction() as conn:
            root = conn.root()[key]
            if generation is None:
                del root.generation
            else:
                root.generation = generation
    finally:
        db.close()


def stored(path, key):
    """The stored attributes of the root under `key`."""
    db = DB(FileStorage(str(path), read_only=True))
    try:
        conn = db.open()
        state = conn.root()[key].__getstate__()
        conn.close()
        return state
    finally:
        db.close()


def first_page(make_app):
    """Start the app (an older database is evolved), show its first page (the root is made if
    there was none), and close it, as a server stopped again would."""
    app = make_app()
    webtest.TestApp(app).get("/", status=200)
    close_databases(app.registry)


@pytest.fixture
def app_database(tmp_path, make_app):
    """Data.fs as the app leaves it after its first page (its root made), the app closed."""
    first_page(make_app)
    return tmp_path / "Data.fs"


def start_receiver(tmp_path):
    return receiver_main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs"})


@pytest.fixture
def receiver_database(tmp_path):
    """receiver.fs with the receiver's root, the receiver closed."""
    app = start_receiver(tmp_path)
    webtest.TestApp(app).get("/stats", status=200)
    close_databases(app.registry)
    return tmp_path / "receiver.fs"


@pytest.fixture
def next_generation():
    """next_generation(generations, step): `step` brings the database one generation forward,
    for this test only."""
    added = []

    def add(generations, step):
        generations.steps.append(step)
        added.append((generations, step))

    yield add
    for generations, step in added:
        generations.steps.remove(step)


# -- a new database, and one from before generations ------------------------------------------


def test_a_new_database_records_the_current_generation(app_database, receiver_database):
    assert GENERATIONS.current == RECEIVER_GENERATIONS.current == 1
    assert stored(app_database, ROOT_KEY)["generation"] == 1
    assert stored(receiver_database, RECEIVER_KEY)["generation"] == 1


def test_a_root_without_a_generation_is_of_generation_1_and_works(app_database, make_site):
    set_generation(app_database, ROOT_KEY, None)
    site = make_site()
    admin = site.register("owner@example.org")
    assert "Telemetry" in admin.get("/admin/telemetry", status=200).text
    assert "generation" not in stored(app_database, ROOT_KEY)  # read as 1, nothing stamped


def test_a_root_without_a_generation_is_evolved_from_1(
    app_database, make_app, next_generation
):
    set_generation(app_database, ROOT_KEY, None)
    evolved_from = []
    next_generation(GENERATIONS, lambda root: evolved_from.append(root.generation))
    make_app()
    assert evolved_from == [1]


def test_the_upgrade_instructions_name_the_generation(write_ini, run_cli):
    result = run_cli("instructions", "upgrade", write_ini())
    assert result.returncode == 0, result.stderr
    assert ". Its database is of generation 1.\n" in result.stdout


# -- a newer database: refused, nothing written -------------------------------------------------


def test_a_newer_database_stops_the_app_in_one_line(app_database, make_app):
    set_generation(app_database, ROOT_KEY, 99)
    before = app_database.read_bytes()
    with pytest.raises(SystemExit) as stopped:
        make_app()
    expected = NEWER.format(where="zodbconn.uri", program="fftelemetry")
    assert stopped.value.code == f"fftelemetry: {expected}"
    assert app_database.read_bytes() == before
    with pytest.raises(SystemExit):  # the same line, not a locked FileStorage: it was closed
        make_app()


def test_the_ini_pserve_names_in_that_line_is_shown_escaped(app_database, tmp_path):
    # pserve passes the config file it was given as __file__; an escape sequence in it went to
    # the terminal as it was
    set_generation(app_database, ROOT_KEY, 99)
    ini = tmp_path / "site\x1b[2J\u202e.ini"
    with pytest.raises(SystemExit) as stopped:
        main({"here": str(tmp_path), "__file__": str(ini)}, **app_settings(tmp_path))
    where = f"{tmp_path}/site\\x1b[2J\\u202e.ini"
    assert stopped.value.code == f"fftelemetry: {NEWER.format(where=where, program='fftelemetry')}"


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["cron"],
        ["cron", "--dry-run"],
        ["instructions", "install"],
        ["instructions", "upgrade"],
        ["create-user", "--email", "ann@example.org", "--password-stdin"],
        ["pack"],
    ],
)
def test_a_newer_database_stops_every_console_command_in_one_line(
    app_database, write_ini, run_cli, command
):
    ini = write_ini()
    set_generation(app_database, ROOT_KEY, 99)
    before = app_database.read_bytes()
    result = run_cli(*command, ini, input="a good password\n")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO [")]
    assert lines == [f"fftelemetry: {NEWER.format(where=ini, program='fftelemetry')}"]
    assert result.stdout == ""
    assert app_database.read_bytes() == before


def test_a_newer_database_stops_the_receiver_in_one_line(tmp_path, receiver_database):
    set_generation(receiver_database, RECEIVER_KEY, 99)
    before = receiver_database.read_bytes()
    with pytest.raises(SystemExit) as stopped:
        start_receiver(tmp_path)
    expected = NEWER.format(where="zodbconn.uri", program="fftelemetry receiver")
    assert stopped.value.code == f"fftelemetry receiver: {expected}"
    assert receiver_database.read_bytes() == before


def evolve_behind_its_back(app, key, generation):
    """What a newer version's start does to a database this running app shares (over ZEO)."""
    with database(app.registry).transaction() as conn:
        conn.root()[key].generation = generation


def test_a_running_app_refuses_requests_once_a_newer_version_evolved_its_database(
    tmp_path, site, admin
):
    form = site.browser().get("/register").forms["register"]
    evolve_behind_its_back(site.app, ROOT_KEY, 2)
    data = tmp_path / "Data.fs"
    before = data.read_bytes()

    form["email"], form["password"] = "second@example.org", "long enough password"
    refused = form.submit(status=503)
    assert "Database of another version" in refused.text
    assert (
        "Nothing was changed: the database is of generation 2, but this fftelemetry knows up "
        "to generation 1"
    ) in refused.text
    assert "Set-Cookie" not in refused.headers
    assert "Database of another version" in admin.get("/admin/telemetry", status=503).text
    assert data.read_bytes() == before


def test_a_running_receiver_refuses_batches_once_a_newer_version_evolved_its_database(
    tmp_path,
):
    app = start_receiver(tmp_path)
    try:
        browser = webtest.TestApp(app)
        post(browser, [record()], 200)
        evolve_behind_its_back(app, RECEIVER_KEY, 2)
        data = tmp_path / "receiver.fs"
        before = data.read_bytes()
        refused = post(browser, [record()], 503)
        assert refused.json["error"].startswith(
            "nothing was stored: the database is of generation 2, but this fftelemetry "
            "receiver knows up to generation 1"
        )
        assert data.read_bytes() == before
    finally:
        close_databases(app.registry)


def test_a_running_app_refuses_requests_on_a_database_older_than_it_knows(
    tmp_path, site, admin, next_generation
):
    """As when a backup is restored under a running server: its start did not evolve it."""
    next_generation(GENERATIONS, lambda root: None)
    data = tmp_path / "Data.fs"
    before = data.read_bytes()
    refused = admin.get("/admin/telemetry", status=503)
    assert (
        "Nothing was changed: the database is of generation 1, older than this fftelemetry's 2: "
        "restart fftelemetry to bring it up to date."
    ) in refused.text
    assert data.read_bytes() == before


# -- an older database: evolved at start-up, each step in a transaction of its own --------------


def test_an_older_database_is_evolved_once(app_database, make_app, next_generation):
    runs = []

    def step(root):  # what a change of layout would do: here, a new attribute
        runs.append(root.generation)
        root.evolved = "yes"

    next_generation(GENERATIONS, step)
    for _ in range(2):
        first_page(make_app)
    assert runs == [1]
    state = stored(app_database, ROOT_KEY)
    assert (state["generation"], state["evolved"]) == (2, "yes")


def test_a_step_another_process_finished_first_is_not_applied_twice(
    app_database, make_app, next_generation
):
    """Two processes started at once on one ZEO server both find generation 1 and run the step;
    the one that commits second conflicts, and reads the database again instead of failing."""
    runs = []

    def step(root):
        runs.append(root.generation)
        root.evolved = "by this process"
        with root._p_jar.db().transaction() as other:  # the other process, a moment faster
            theirs = other.root()[ROOT_KEY]
            theirs.evolved, theirs.generation = "by the other process", 2

    next_generation(GENERATIONS, step)
    first_page(make_app)
    assert runs == [1]
    state = stored(app_database, ROOT_KEY)
    assert (state["generation"], state["evolved"]) == (2, "by the other process")


def test_steps_run_in_order_and_a_failing_one_leaves_its_generation(
    app_database, make_app, next_generation, caplog
):
    def second(root):
        root.evolved = "to 2"

    def third(root):
        root.evolved = "half way to 3"
        raise ValueError("cannot convert")

    next_generation(GENERATIONS, second)
    next_generation(GENERATIONS, third)
    with pytest.raises(SystemExit) as stopped:
        make_app()
    assert stopped.value.code == (
        "fftelemetry: evolving the database named in zodbconn.uri from generation 2 to 3 "
        "failed (ValueError: cannot convert); it is left at generation 2, nothing of the step "
        "was stored"
    )
    # a step that raises is a bug of this version: its traceback is logged, to be reported
    [failed] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert failed.getMessage() == (
        "evolving the database named in zodbconn.uri to generation 3 failed"
    )
    assert failed.exc_info[0] is ValueError
    state = stored(app_database, ROOT_KEY)
    assert (state["generation"], state["evolved"]) == (2, "to 2")


def test_a_step_that_fails_stores_nothing(app_database, make_app, next_generation):
    def step(root):  # changes two objects, then fails
        root.evolved = "half"
        root["admin"].add("half", Admin())
        raise ValueError("cannot convert")

    next_generation(GENERATIONS, step)
    before = app_database.read_bytes()
    with pytest.raises(SystemExit):
        make_app()
    assert app_database.read_bytes() == before
    assert stored(app_database, ROOT_KEY)["generation"] == 1


def test_an_older_receiver_database_is_evolved_once(
    tmp_path, receiver_database, next_generation
):
    runs = []

    def step(receiver):
        runs.append(receiver.generation)
        receiver.evolved = "yes"

    next_generation(RECEIVER_GENERATIONS, step)
    for _ in range(2):
        app = start_receiver(tmp_path)
        stats = webtest.TestApp(app).get("/stats", status=200)
        close_databases(app.registry)
    assert json.loads(stats.text) == {"records": 0, "batches": 0}
    assert runs == [1]
    state = stored(receiver_database, RECEIVER_KEY)
    assert (state["generation"], state["evolved"]) == (2, "yes")


# The real console script, in a process of its own whose code has one more (test) step: what a
# release with an evolve step is to the database this test leaves at generation 1.
WITH_A_STEP = """
import sys
from fftelemetry.cli.main import main
from fftelemetry.resources import GENERATIONS
GENERATIONS.steps.append(lambda root: setattr(root, "evolved", "yes"))
sys.exit(main(sys.argv[1:]))
"""


def test_a_dry_run_does_not_evolve_an_older_database(app_database, write_ini):
    """A dry run changes nothing, so it does not evolve the database either: it says what to
    do, in one line, and the file stays as it was; a command that may write evolves it."""

    def fftelemetry(*args):
        return subprocess.run([sys.executable, "-c", WITH_A_STEP, *args], capture_output=True,
                              text=True, timeout=60, check=False)

    ini = write_ini()
    before = app_database.read_bytes()
    result = fftelemetry("cron", ini, "--force", "--dry-run")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO [")]
    assert lines == [
        f"fftelemetry: the database named in {ini} is of generation 1, older than this "
        "fftelemetry's 2, and this run changes nothing: start fftelemetry (or run the command "
        "without --dry-run) to bring it up to date first"
    ]
    assert app_database.read_bytes() == before

    assert fftelemetry("status", ini).returncode == 0  # a command that may write evolves it
    state = stored(app_database, ROOT_KEY)
    assert (state["generation"], state["evolved"]) == (2, "yes")
    result = fftelemetry("cron", ini, "--force", "--dry-run")
    assert result.returncode == 0, result.stderr


# -- a read-only database that needs a write first: refused at start-up, nothing written --------
# A replica (zodbconn.uri's read_only=true, or a read-only ZEO server) of a database no writable
# process has made or brought up to date yet: the app started on a new one and failed every
# request on the root it could not make (the receiver with a 500 and a traceback), and an older
# one stopped start-up with "evolving ... failed (ReadOnlyError: )".

WRITERS = {
    "fftelemetry": "start fftelemetry (or run fftelemetry status)",
    "fftelemetry receiver": "start fftelemetry receiver",
}
NOT_MADE = (
    "the database named in {where} is read-only and holds no {program} data yet (a new "
    "database): {writer} once with a config that opens it writable, to make it"
)
OLDER_READ_ONLY = (
    "the database named in {where} is of generation 1, older than this {program}'s 2, and "
    "read-only: {writer} once with a config that opens it writable, to bring it up to date"
)


def start_read_only(tmp_path, program, data):
    """The app or the receiver on `data` opened read-only, as a replica's ini would name it."""
    uri = f"file://{data}?read_only=true"
    if program == "fftelemetry":
        return main({"here": str(tmp_path)}, **app_settings(tmp_path, **{"zodbconn.uri": uri}))
    return receiver_main({}, **{"zodbconn.uri": uri})


def refusal(template, program, where="zodbconn.uri"):
    return f"{program}: " + template.format(where=where, program=program, writer=WRITERS[program])


def new_database(path, kind):
    """A database no app has started on: a FileStorage with only ZODB's root ("made"), or a file
    of 0 bytes, which has not even that."""
    if kind == "made":
        DB(FileStorage(str(path))).close()
    else:
        path.write_bytes(b"")


@pytest.mark.parametrize("kind", ["made", "empty file"])
@pytest.mark.parametrize("program", ["fftelemetry", "fftelemetry receiver"])
def test_a_new_read_only_database_stops_the_app_and_the_receiver_in_one_line(
    tmp_path, program, kind
):
    data = tmp_path / "new.fs"
    new_database(data, kind)
    before = data.read_bytes()
    with pytest.raises(SystemExit) as stopped:
        start_read_only(tmp_path, program, data)
    assert stopped.value.code == refusal(NOT_MADE, program)
    assert data.read_bytes() == before


def test_a_new_read_only_database_beside_a_named_one_is_the_one_named(tmp_path):
    # ZODB.DB maps a database by its name before it fails to make its root: the primary's line
    # named the zodbconn.uri.NAME after it, and a named one's the primary
    read_only, writable = f"file://{tmp_path}/new.fs?read_only=true", f"file://{tmp_path}/w.fs"
    new_database(tmp_path / "new.fs", "empty file")
    for primary, other, where in ((read_only, writable, "zodbconn.uri"),
                                  (writable, read_only, "zodbconn.uri.other")):
        settings = app_settings(tmp_path, **{"zodbconn.uri": primary, "zodbconn.uri.other": other})
        with pytest.raises(SystemExit) as stopped:
            main({"here": str(tmp_path)}, **settings)
        assert stopped.value.code == refusal(NOT_MADE, "fftelemetry", where)


@pytest.mark.parametrize("program", ["fftelemetry", "fftelemetry receiver"])
def test_a_read_only_database_whose_file_is_missing_stops_in_one_line(tmp_path, program):
    # FileStorage's FileNotFoundError came out of pserve as a traceback
    data = tmp_path / "never made.fs"
    with pytest.raises(SystemExit) as stopped:
        start_read_only(tmp_path, program, data)
    assert stopped.value.code == (
        f"{program}: the database named in zodbconn.uri, {data}, does not exist, and opened "
        f"read-only it is not made: {WRITERS[program]} once with a config that opens it "
        "writable, to make it"
    )
    assert not data.exists()


NO_FOLDER = (
    "{program}: the database named in {where} cannot be opened: its folder, {folder}, does not "
    "exist (a volume not mounted? a misspelt path?), and opening a database does not make one"
)


@pytest.mark.parametrize("query", ["?read_only=true", ""], ids=["read-only", "writable"])
@pytest.mark.parametrize("make", [main, receiver_main], ids=["app", "receiver"])
def test_a_database_whose_folder_is_missing_stops_start_up_in_one_line(tmp_path, make, query):
    # FileStorage's FileNotFoundError (of the file read-only, of its .lock writable) came out
    # of pserve as a traceback
    folder = tmp_path / "unmounted" / "var"
    ini = tmp_path / "app.ini"
    settings = app_settings(tmp_path, **{"zodbconn.uri": f"file://{folder}/Data.fs{query}"})
    with pytest.raises(SystemExit) as stopped:
        make({"__file__": str(ini), "here": str(tmp_path)}, **settings)
    program = "fftelemetry" if make is main else "fftelemetry receiver"
    assert stopped.value.code == NO_FOLDER.format(program=program, where=ini, folder=folder)
    assert not (tmp_path / "unmounted").exists()


def test_a_database_whose_folder_is_missing_stops_a_command_in_one_line(
    tmp_path, write_ini, run_cli
):
    # "cannot load app.ini: [Errno 2] No such file or directory: '…/Data.fs'"; the folder's
    # name is outside text, shown escaped
    folder = tmp_path / "un\x1b[2Jmounted"
    ini = write_ini(**{"zodbconn.uri": f"file://{folder}/Data.fs?read_only=true"})
    result = run_cli("status", ini)
    assert result.returncode == 2, result.stderr
    shown_folder = f"{tmp_path}/un\\x1b[2Jmounted"
    line = NO_FOLDER.format(program="fftelemetry", where=ini, folder=shown_folder)
    assert result.stderr.splitlines() == [line]


@contextmanager
def no_garbage_collection():
    """The collector closes a storage left open, some time later: not by chance here."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def open_in_this_process(path):
    """The file descriptors of this process open on `path`."""
    fds = os.listdir("/proc/self/fd")
    return [fd for fd in fds if os.path.realpath(f"/proc/self/fd/{fd}") == str(path)]


@pytest.mark.parametrize("program", ["fftelemetry", "fftelemetry receiver"])
def test_a_refused_start_on_a_new_read_only_database_leaves_its_file_closed(tmp_path, program):
    # ZODB.DB raised ReadOnlyError making its root, and the FileStorage it was given stayed open
    data = tmp_path / "new.fs"
    new_database(data, "empty file")
    with no_garbage_collection():
        with pytest.raises(SystemExit):
            start_read_only(tmp_path, program, data)
        assert open_in_this_process(data) == []


def test_a_refused_start_releases_the_lock_of_a_database_it_opened_before(tmp_path):
    # pyramid_zodbconn opens a named database after the main one; when that one is refused,
    # Data.fs stayed locked: the same process could not open it again
    data, other = tmp_path / "Data.fs", tmp_path / "other.fs"
    new_database(other, "empty file")
    settings = app_settings(tmp_path, **{"zodbconn.uri.other": f"file://{other}?read_only=true"})
    with no_garbage_collection():
        with pytest.raises(SystemExit):
            main({"here": str(tmp_path)}, **settings)
        FileStorage(str(data)).close()


LINK_TO_NOTHING = (
    "{program}: the database named in {ini}, {link}, is a link to {target}, which does not "
    "exist (a volume not mounted? a file moved or deleted?): nothing was opened or made; "
    "restore what it links to, or name the database's file in zodbconn.uri"
)


@pytest.mark.parametrize("query", ["", "?read_only=true"], ids=["writable", "read-only"])
def test_a_database_whose_file_links_nowhere_stops_a_command_in_one_line(
    tmp_path, write_ini, run_cli, query
):
    # Data.fs a link onto a volume not mounted: the writable FileStorage cannot make the file
    # either, and the line said "opened read-only it is not made", of a database opened
    # writable; then "cannot load …: [Errno 2] No such file or directory", naming the link alone
    data = tmp_path / "Data.fs"
    target = tmp_path / "unmounted" / "Data.fs"
    data.symlink_to(target)
    ini = write_ini(**{"zodbconn.uri": f"file://{data}{query}"})
    result = run_cli("status", ini)
    assert result.returncode == 2, result.stderr
    line = LINK_TO_NOTHING.format(program="fftelemetry", ini=ini, link=data, target=target)
    assert result.stderr.splitlines() == [line]
    assert not (tmp_path / "unmounted").exists() and not (tmp_path / "Data.fs.lock").exists()


@pytest.mark.parametrize("folder", ["there", "not there"])
@pytest.mark.parametrize("program", ["fftelemetry", "fftelemetry receiver"])
def test_pserve_on_a_database_whose_file_links_nowhere_stops_in_one_line(
    tmp_path, write_server_ini, program, folder
):
    # pserve printed FileStorage's traceback where the link's folder was not there, and where
    # it was (a shared file gone) made a new, empty database there and served it
    ini, data, _ = write_server_ini(program)
    shared = tmp_path / "shared"
    if folder == "there":
        shared.mkdir()
    data.symlink_to(shared / data.name)
    result = run_pserve(ini, timeout=30)
    assert result.returncode == 1, result.stderr
    line = LINK_TO_NOTHING.format(program=program, ini=ini, link=data, target=shared / data.name)
    assert result.stderr.splitlines() == [line]
    if folder == "there":
        assert list(shared.iterdir()) == []
    else:
        assert not shared.exists()
    assert sorted(tmp_path.glob(f"{data.name}*")) == [data]  # no .lock beside the link either


def test_a_read_only_client_of_a_new_zeo_server_stops_the_app_in_one_line(tmp_path, make_app):
    # ZODB.DB makes the ZODB root of a storage without one as it opens it: it raised
    # ReadOnlyError out of pserve, a traceback
    address, stop = ZEO.server(path=str(tmp_path / "zeo.fs"))
    try:
        host, port = address
        with pytest.raises(SystemExit) as stopped:
            make_app(**{"zodbconn.uri": f"zeo://{host}:{port}?read_only=true&wait_timeout=10"})
    finally:
        stop()
    assert stopped.value.code == refusal(NOT_MADE, "fftelemetry")


def test_an_older_read_only_database_stops_the_app_and_the_receiver_in_one_line(
    tmp_path, app_database, receiver_database, next_generation
):
    runs = []
    for generations, data in ((GENERATIONS, app_database),
                              (RECEIVER_GENERATIONS, receiver_database)):
        next_generation(generations, runs.append)
        before = data.read_bytes()
        with pytest.raises(SystemExit) as stopped:
            start_read_only(tmp_path, generations.program, data)
        assert stopped.value.code == refusal(OLDER_READ_ONLY, generations.program)
        assert data.read_bytes() == before
    assert runs == []  # not tried: it could not be stored


def console_with_a_step(*args):
    """The real console script, its code one (test) step ahead of the database (WITH_A_STEP)."""
    return subprocess.run([sys.executable, "-c", WITH_A_STEP, *args], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("state", ["new", "older"])
@pytest.mark.parametrize(
    "command", [["status"], ["status", "--check"], ["cron", "--dry-run"], ["pack"]]
)
def test_a_read_only_database_that_needs_a_write_stops_a_console_command_in_one_line(
    tmp_path, write_ini, app_database, state, command
):
    # status said "could not write" (exit 1, which --check also gives for "overdue"), a dry run
    # "run the command without --dry-run", which a replica refuses too
    if state == "new":
        data, template = tmp_path / "new.fs", NOT_MADE
        new_database(data, "made")
    else:
        data, template = app_database, OLDER_READ_ONLY
    ini = write_ini("replica.ini", **{"zodbconn.uri": f"file://{data}?read_only=true"})
    before = data.read_bytes()
    result = console_with_a_step(*command, ini)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO [")]
    assert lines == [refusal(template, "fftelemetry", where=ini)]
    assert result.stdout == ""
    assert data.read_bytes() == before


@pytest.mark.parametrize("uri", ["new.fs", "var/Data.fs"])
def test_a_relative_database_path_is_the_working_folders(tmp_path, write_ini, run_cli, uri):
    # a file in the working folder was said to have no folder ("its folder, , does not exist"),
    # and a missing folder was named as given, relative to no folder the line said
    ini = write_ini(**{"zodbconn.uri": f"file://{uri}?read_only=true"})
    result = run_cli("status", ini, cwd=tmp_path)
    expected = {
        "new.fs": "fftelemetry: the database named in {where}, new.fs, does not exist, and "
        f"opened read-only it is not made: {WRITERS['fftelemetry']} once with a config that "
        "opens it writable, to make it",
        "var/Data.fs": NO_FOLDER.format(program="fftelemetry", where="{where}",
                                        folder=tmp_path / "var"),
    }[uri]
    assert result.stderr.splitlines() == [expected.format(where=ini)]
    assert result.returncode == 2
    assert not (tmp_path / "new.fs").exists()


def test_a_missing_file_that_is_no_databases_is_not_said_to_be(tmp_path, write_ini, run_cli):
    # pyramid_zodbconn opens its transfer log once the databases are open: a folder missing
    # there was said to be the database's, "its folder, …/unmounted, does not exist"
    log = tmp_path / "unmounted" / "zodb.log"
    result = run_cli("status", write_ini(**{"zodbconn.transferlog": str(log)}))
    assert result.stderr.splitlines() == [
        f"fftelemetry: cannot load {tmp_path}/app.ini: [Errno 2] No such file or directory: "
        f"'{log}'"
    ]
    assert result.returncode == 2
    assert (tmp_path / "Data.fs").exists()  # it was opened, and is closed


LINK_INTO_NO_FOLDER = (
    "{program}: the database named in {ini}, {data}, cannot be opened: {link} is a link to "
    "{target}, whose folder does not exist (a volume not mounted? a folder moved or deleted?): "
    "nothing was opened or made; restore that folder, or remove the link (a FileStorage makes "
    "that file itself)"
)


@pytest.mark.parametrize("suffix", [".lock", ".tmp"])
def test_a_database_whose_lock_or_tmp_links_into_no_folder_stops_a_command_in_one_line(
    tmp_path, write_ini, run_cli, suffix
):
    # a writable FileStorage opens both beside its file and cannot make them there: the
    # command ended in FileNotFoundError's traceback, naming the link alone
    data, link = tmp_path / "Data.fs", tmp_path / f"Data.fs{suffix}"
    target = tmp_path / "unmounted" / link.name
    link.symlink_to(target)
    ini = write_ini(**{"zodbconn.uri": f"file://{data}"})
    result = run_cli("status", ini)
    assert result.returncode == 2, result.stderr
    line = LINK_INTO_NO_FOLDER.format(
        program="fftelemetry", ini=ini, data=data, link=link, target=target
    )
    assert result.stderr.splitlines() == [line]
    assert sorted(tmp_path.iterdir()) == sorted([link, tmp_path / "app.ini"])  # nothing made


def test_a_read_only_database_whose_lock_links_into_no_folder_is_opened(
    tmp_path, write_ini, run_cli
):
    # read-only, a FileStorage opens neither its .lock nor its .tmp: nothing to refuse
    data = tmp_path / "Data.fs"
    assert run_cli("status", write_ini()).returncode == 0  # makes the database
    (tmp_path / "Data.fs.lock").unlink()
    (tmp_path / "Data.fs.lock").symlink_to(tmp_path / "unmounted" / "Data.fs.lock")
    result = run_cli("status", write_ini(**{"zodbconn.uri": f"file://{data}?read_only=true"}))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("program", ["fftelemetry", "fftelemetry receiver"])
def test_pserve_on_a_database_whose_lock_links_into_no_folder_stops_in_one_line(
    tmp_path, write_server_ini, program
):
    ini, data, _ = write_server_ini(program)
    link = data.with_name(f"{data.name}.lock")
    link.symlink_to(tmp_path / "unmounted" / link.name)
    result = run_pserve(ini, timeout=30)
    assert result.returncode == 1, result.stderr
    line = LINK_INTO_NO_FOLDER.format(
        program=program, ini=ini, data=data, link=link, target=tmp_path / "unmounted" / link.name
    )
    assert result.stderr.splitlines() == [line]
    assert not data.exists()
