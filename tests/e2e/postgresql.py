"""A throwaway PostgreSQL cluster for the RelStorage tests: initdb and pg_ctl on a free port of
127.0.0.1 (no unix socket), password authentication; `cluster` (tests/e2e/conftest.py) makes one
for each module that asks for it, and removes it after."""

import glob
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from itertools import count
from pathlib import Path

import psycopg2
import pytest

from .harness import child_environment, free_port

USER = "fftelemetry"
PASSWORD = "pg-password-4711"  # a line that names the database must never hold it

PROGRAMS = ("initdb", "pg_ctl", "createdb")


def server_binaries():
    """The folder of PostgreSQL's initdb, pg_ctl and createdb: Debian keeps them out of PATH,
    one folder per major version (the newest is taken)."""
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: int(f.split("/")[-2]))
    for folder in [*reversed(folders), os.path.dirname(shutil.which("pg_ctl") or "")]:
        if folder and all(os.access(f"{folder}/{name}", os.X_OK) for name in PROGRAMS):
            return Path(folder)
    return None


class Cluster:
    """A running PostgreSQL cluster; `database()` makes a new database in it, `stop()` and
    `start()` take its server away and bring it back, as an outage would."""

    def __init__(self, binaries, folder, port, as_postgres):
        self.binaries, self.folder, self.port = binaries, folder, port
        self.as_postgres = as_postgres
        self.names = count()

    def pg(self, *args):
        done = subprocess.run([*self.as_postgres, *map(str, args)], capture_output=True,
                              text=True, cwd=self.folder, timeout=60)
        if done.returncode:  # what it said, and the server's log: CalledProcessError says
            log = self.folder / "server.log"  # neither
            said = log.read_text() if log.exists() else ""
            pytest.fail(f"{Path(args[0]).name} failed: {done.stdout}{done.stderr}{said}")

    def start(self):
        self.pg(self.binaries / "pg_ctl", "-D", self.folder / "data", "-l",
                self.folder / "server.log", "-w", "start",
                "-o", f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off")

    def stop(self, immediate=False):
        """A fast shutdown: the server ends every client's connection, rolling back what is
        in progress, and stops listening. An immediate one ends every session at once, none
        rolled back: a lock a session of the test's holds is never let go to a commit waiting
        for it (in a fast one, the test's session now and then ended first, and the commit
        then went on, to meet the lost server as it finished)."""
        mode = "immediate" if immediate else "fast"
        self.pg(self.binaries / "pg_ctl", "-D", self.folder / "data", "-m", mode, "-w", "stop")

    @contextmanager
    def stopped(self):
        """The server away for the block, started again after it, however it ends."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def uri(self, name, password=PASSWORD, port=None):
        return f"postgres://{USER}:{password}@127.0.0.1:{port or self.port}/{name}"

    def database(self, name=None):
        name = name or f"app{next(self.names)}"
        subprocess.run(
            [self.binaries / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name],
            env=child_environment({"PGPASSWORD": PASSWORD}), check=True, capture_output=True,
        )
        return self.uri(name)

    def set(self, name, setting, value):
        """`setting` (statement_timeout, lock_timeout) of database `name`, for the sessions
        started after."""
        self.run(name, f"ALTER DATABASE {name} SET {setting} = %s", value)

    def run(self, name, sql, *args):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD,
                                dbname=name)
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, args)
        finally:
            conn.close()

    @contextmanager
    def locked(self, name):
        """Every table of database `name` locked by another session for the block: a statement
        that needs one waits (until the server cancels it, by `statement_timeout`)."""
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD,
                                dbname=name)
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                tables = ", ".join(table for (table,) in cursor.fetchall())
                cursor.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
            yield
        finally:
            conn.rollback()
            conn.close()

    def query(self, name, sql, *args):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD,
                                dbname=name)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, args)
                return cursor.fetchall()
        finally:
            conn.close()


@contextmanager
def throwaway_cluster():
    """A new cluster, started; stopped and removed after. PostgreSQL refuses to run as root: as
    root, its commands run as the postgres user, in a folder of its own outside pytest's (which
    only root may enter). Without PostgreSQL's programs the test skips, saying so."""
    binaries = server_binaries()
    if binaries is None:
        pytest.skip(
            "NO POSTGRESQL SERVER HERE: the RelStorage tests did not run. "
            "Install Debian's postgresql (.ci/run does)."
        )
    folder = Path(tempfile.mkdtemp(prefix="fftelemetry-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    (folder / "password").write_text(PASSWORD)
    if as_postgres:  # initdb reads the password file as postgres: root's, made under a umask
        shutil.chown(folder, "postgres")  # of 077 or 027, was unreadable to it
        shutil.chown(folder / "password", "postgres")
    cluster = Cluster(binaries, folder, free_port(), as_postgres)
    try:
        cluster.pg(binaries / "initdb", "-D", folder / "data", "-U", USER, "--pwfile",
                   folder / "password", "--auth", "scram-sha-256", "--no-sync", "--encoding",
                   "UTF8", "--locale", "C")
        try:
            cluster.start()
            yield cluster
        finally:  # a start that failed or timed out may have left its server running all the
            # same (pg_ctl -w gives up waiting, it does not stop what it started)
            if (folder / "data" / "postmaster.pid").exists():
                cluster.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
