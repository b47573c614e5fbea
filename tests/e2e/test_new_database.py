"""Processes started at the same moment on a new database: ZODB's DB makes the database's root
(oid 0) as each opens it, and all but the first to commit it conflict. Each of those must open
the database again and use the root the first one made: `pserve` serves, a command does its
work. Forced, not hoped for: the test is the first process, and commits its root once the
process has found none and waits to commit its own (ZEO: behind the server's commit lock, which
the test's voted commit holds; PostgreSQL: in an event trigger on RelStorage's temporary
tables). Before the root, on PostgreSQL, RelStorage's tables, which the first process makes in
a transaction the test holds open; and after it, an evolve step another process committed
first."""

import sys
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg2
import pytest
import requests
import transaction
import webtest
from ZEO.ClientStorage import ClientStorage
from ZODB import DB
from ZODB.Connection import TransactionMetaData
from ZODB.MappingStorage import MappingStorage
from ZODB.utils import z64
from zodburi import resolve_uri

from fftelemetry import main
from fftelemetry.receiver.resources import ROOT_KEY as RECEIVER_KEY
from fftelemetry.resources import GENERATIONS, ROOT_KEY
from fftelemetry.scripting import close_databases

from .harness import (
    app_settings,
    child_environment,
    free_port,
    port_open,
    process,
    runzeo,
    wait_until,
    write_server_ini,
    zeo_uri,
)
from .postgresql import PASSWORD, USER

pytestmark = pytest.mark.slow

MARK = "made by the other process"


def new_root_record():
    """The record of a root as ZODB's DB makes it (a PersistentMapping), with a mark in it."""
    db = DB(MappingStorage())
    with db.transaction() as conn:
        conn.root()["mark"] = MARK
    record, _ = db.storage.load(z64)
    db.close()
    return record


class RootBeingMade:
    """Another process's commit of the new database's root, voted: it holds the ZEO server's
    commit lock until finish_behind_another(), once another commit waits for that lock."""

    def __init__(self, folder):
        self.storage = ClientStorage(str(Path(folder) / "zeo.sock"), wait_timeout=30)
        self.txn = transaction.Transaction()
        self.storage.tpc_begin(self.txn)
        self.storage.store(z64, z64, new_root_record(), "", self.txn)
        self.storage.tpc_vote(self.txn)

    def finish_behind_another(self, child):
        """Commit once the server has a commit waiting (`child`'s root, which it made when it
        found none: ours is not committed yet), so that one conflicts."""
        wait_until(
            lambda: self.storage.server_status()["waiting"] == 1 or child.poll() is not None,
            what="the process's commit of a root to wait for the server's commit lock",
        )
        assert child.poll() is None, "the process ended before it made a root"
        self.storage.tpc_finish(self.txn)

    def close(self):
        self.storage.close()


def database_root(folder):
    """The ZODB root's keys and mark, read through the ZEO server."""
    storage = ClientStorage(str(Path(folder) / "zeo.sock"), wait_timeout=30)
    db = DB(storage)
    try:
        with db.transaction() as conn:
            root = conn.root()
            return sorted(root), root.get("mark")
    finally:
        db.close()


AGAIN = "another process made the new database's root as this one opened it: opening it again"
TABLES_AGAIN = AGAIN.replace("root", "RelStorage tables")


def without_tracebacks(log):
    text = Path(log).read_text()
    assert "Traceback" not in text and "ConflictError" not in text, text
    return text


@pytest.mark.parametrize(
    ("use", "page", "key"),
    [("egg:fftelemetry", "/", ROOT_KEY), ("egg:fftelemetry#receiver", "/stats", RECEIVER_KEY)],
)
def test_pserve_that_loses_the_race_to_make_the_root_serves_on_the_winners(
    tmp_path, use, page, key
):
    port = free_port()
    ini = write_server_ini(tmp_path / "app.ini", app_settings(zeo_uri(tmp_path)), port, use=use)
    log = tmp_path / "pserve.log"
    with runzeo(tmp_path):
        other = RootBeingMade(tmp_path)
        try:
            with process(pserve_command(ini), log, env=child_environment()) as child:
                other.finish_behind_another(child)
                wait_until(lambda: port_open(port) or child.poll() is not None, what="pserve")
                assert child.poll() is None, Path(log).read_text()
                answer = requests.get(f"http://127.0.0.1:{port}{page}", timeout=30)
                assert answer.status_code == 200, answer.text[:300]
        finally:
            other.close()
        assert f"INFO [fftelemetry.opening] {AGAIN}" in without_tracebacks(log)
        assert database_root(tmp_path) == (sorted(["mark", key]), MARK)


def test_a_command_that_loses_the_race_to_make_the_root_does_its_work(tmp_path):
    ini = write_server_ini(tmp_path / "app.ini", app_settings(zeo_uri(tmp_path)))
    log = tmp_path / "status.log"
    with runzeo(tmp_path):
        other = RootBeingMade(tmp_path)
        try:
            status = app_command("status", "--json", ini)
            with process(status, log, env=child_environment()) as child:
                other.finish_behind_another(child)
                assert child.wait(60) == 0, Path(log).read_text()
        finally:
            other.close()
        assert '"enabled": true' in without_tracebacks(log)
        assert database_root(tmp_path)[1] == MARK



def test_a_command_that_loses_the_race_for_two_new_databases_roots_does_its_work(tmp_path):
    """A zodbconn.uri.NAME on a new ZEO server of its own, opened after the primary: the race
    for its root is lost after the primary's, and was taken for the same race lost twice."""
    named = tmp_path / "named"
    named.mkdir()
    ini = write_server_ini(tmp_path / "app.ini", app_settings(
        zeo_uri(tmp_path), **{"zodbconn.uri.other": zeo_uri(named)}))
    log = tmp_path / "status.log"
    with runzeo(tmp_path), runzeo(named):
        others = [RootBeingMade(tmp_path), RootBeingMade(named)]
        try:
            with process(app_command("status", ini), log, env=child_environment()) as child:
                for other in others:  # the primary's root first, as the command opens it
                    other.finish_behind_another(child)
                assert child.wait(60) == 0, Path(log).read_text()
        finally:
            for other in others:
                other.close()
        assert Path(log).read_text().count(f"INFO [fftelemetry.opening] {AGAIN}") == 2
        without_tracebacks(log)
        assert database_root(named) == (["mark"], MARK)

LOCK = 4711  # PostgreSQL's advisory lock the test holds a process back with


@contextmanager
def held_ddl(cluster, name, which):
    """A connection to the database `name` of `cluster` that holds an advisory lock, and an event
    trigger that makes each DDL statement `which` (a condition on the statement's
    pg_event_trigger_ddl_commands()) wait for it, in its transaction: a process is held there
    until the test calls the function this yields, or the block ends."""
    hold = psycopg2.connect(host="127.0.0.1", port=cluster.port, user=USER, password=PASSWORD,
                            dbname=name)
    with closing(hold):  # its lock goes with it
        hold.autocommit = True
        with hold.cursor() as cursor:
            cursor.execute(f"""
                CREATE FUNCTION wait_for_the_test() RETURNS event_trigger AS $$
                BEGIN
                  IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands() WHERE {which}) THEN
                    PERFORM pg_advisory_xact_lock_shared({LOCK});
                  END IF;
                END $$ LANGUAGE plpgsql;
                CREATE EVENT TRIGGER held_ddl ON ddl_command_end
                  EXECUTE FUNCTION wait_for_the_test();
                SELECT pg_advisory_lock({LOCK});
            """)

        def release():
            with hold.cursor() as cursor:
                cursor.execute(f"SELECT pg_advisory_unlock({LOCK})")

        yield release


def waiting(cluster, name, wait_event, query="%"):
    """How many of the database's sessions wait for `wait_event`, in a statement like `query`."""
    sql = ("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event = %s "
           "AND query LIKE %s")
    return cluster.query(name, sql, name, wait_event, query)[0][0]


def app_command(*args):
    return [sys.executable, "-m", "fftelemetry.cli.main", *map(str, args)]


def pserve_command(ini):
    return [str(Path(sys.executable).parent / "pserve"), str(ini)]


def test_pserve_that_loses_the_race_to_make_the_root_on_postgresql_serves(cluster, tmp_path):
    uri = cluster.database()
    name = uri.rpartition("/")[2]
    port = free_port()
    ini = write_server_ini(tmp_path / "app.ini", app_settings(uri), port)
    log = tmp_path / "pserve.log"
    factory, _ = resolve_uri(uri)
    storage = factory()  # RelStorage makes its tables
    try:
        txn = TransactionMetaData()
        storage.tpc_begin(txn)  # its own temporary tables made before the trigger is
        storage.store(z64, z64, new_root_record(), "", txn)
        storage.tpc_vote(txn)
        # a process's first commit makes RelStorage's temporary tables (its store connection's),
        # after it loaded the root it did not find: held there
        with (
            held_ddl(cluster, name, "schema_name LIKE 'pg_temp%'") as release,
            process(pserve_command(ini), log, env=child_environment()) as child,
        ):
            wait_until(
                lambda: waiting(cluster, name, "advisory", "%CREATE TEMPORARY TABLE%") == 1
                or child.poll() is not None,
                what="pserve's commit of a root to wait in the trigger",
            )
            assert child.poll() is None, log.read_text()
            storage.tpc_finish(txn)
            release()
            wait_until(lambda: port_open(port) or child.poll() is not None, what="pserve")
            assert child.poll() is None, log.read_text()
            answer = requests.get(f"http://127.0.0.1:{port}/", timeout=30)
            assert answer.status_code == 200, answer.text[:300]
    finally:
        storage.close()
    assert f"INFO [fftelemetry.opening] {AGAIN}" in without_tracebacks(log)
    db = DB(factory())
    try:
        with db.transaction() as conn:
            assert (sorted(conn.root()), conn.root()["mark"]) == (sorted(["mark", ROOT_KEY]), MARK)
    finally:
        db.close()


def test_an_evolve_step_another_process_committed_first_is_read_again_over_zeo(tmp_path):
    """The same race one step later: two processes start on a database of an older generation
    and both run its evolve step; the one whose commit of it conflicts on the ZEO server reads
    the database again, finds it evolved, and starts."""
    uri = zeo_uri(tmp_path)
    runs = []

    def step(root):
        runs.append(root.generation)
        root.evolved = "by this process"
        with other.transaction() as conn:  # the other process, a moment faster
            theirs = conn.root()[ROOT_KEY]
            theirs.evolved, theirs.generation = "by the other process", 2

    with runzeo(tmp_path):
        first = main({}, **app_settings(uri))
        webtest.TestApp(first).get("/", status=200)  # the app's root, of generation 1
        close_databases(first.registry)
        other = DB(ClientStorage(str(tmp_path / "zeo.sock"), wait_timeout=30))
        GENERATIONS.steps.append(step)
        try:
            app = main({}, **app_settings(uri))
            webtest.TestApp(app).get("/", status=200)
            close_databases(app.registry)
            with other.transaction() as conn:
                root = conn.root()[ROOT_KEY]
                assert (root.generation, root.evolved) == (2, "by the other process")
        finally:
            GENERATIONS.steps.remove(step)
            other.close()
    assert runs == [1]


def test_processes_that_lose_the_race_to_make_relstorages_tables_open_the_database_again(
    cluster, tmp_path
):
    """RelStorage makes its tables in one transaction as a process opens a new database: the
    first, a command here, is held at its first table until the other, pserve, waits for that
    table; let go, it commits them all, and pserve's own first table is then a duplicate."""
    uri = cluster.database()
    name = uri.rpartition("/")[2]
    port = free_port()
    ini = write_server_ini(tmp_path / "app.ini", app_settings(uri), port)
    first_log, second_log = tmp_path / "status.log", tmp_path / "pserve.log"
    with (
        held_ddl(cluster, name, "TRUE") as release,
        process(app_command("status", ini), first_log, env=child_environment()) as first,
    ):
        wait_until(lambda: waiting(cluster, name, "advisory") == 1 or first.poll() is not None,
                   what="the command to make its first table")
        assert first.poll() is None, first_log.read_text()
        with process(pserve_command(ini), second_log, env=child_environment()) as second:
            wait_until(
                lambda: waiting(cluster, name, "transactionid") == 1 or second.poll() is not None,
                what="pserve to wait for the command's first table",
            )
            assert second.poll() is None, second_log.read_text()
            release()
            assert first.wait(60) == 0, first_log.read_text()
            wait_until(lambda: port_open(port) or second.poll() is not None, what="pserve")
            assert second.poll() is None, second_log.read_text()
            answer = requests.get(f"http://127.0.0.1:{port}/", timeout=30)
            assert answer.status_code == 200, answer.text[:300]
    without_tracebacks(first_log)
    said = without_tracebacks(second_log)
    assert f"INFO [fftelemetry.opening] {TABLES_AGAIN}" in said
