"""The disk of a RelStorage database's PostgreSQL server has no room: the database is made in a
tablespace on a tmpfs of its own, which a file then fills. The server answers DiskFull (SQLSTATE
53100), said as a file:// database's or a ZEO server's full disk is: the app's "Not saved" page,
the receiver's 507 in JSON, one log line without a traceback, a command's one line, a start's
one line; nothing is saved, and once the file is gone the same writes succeed, with no
restart."""

import errno
import json
import pwd
import subprocess
import sys
from contextlib import contextmanager
from itertools import count

import pytest

from tests.conftest import Stub, run_pserve, serving
from tests.functional.test_faults import EVOLVE_NOT_WRITTEN
from tests.functional.test_generations import WITH_A_STEP

from .harness import (
    app_settings,
    child_environment,
    free_port,
    new_session,
    pserve,
    tmpfs,
    write_server_ini,
)
from .test_postgresql_outage import CHEAP, cron, receiver_and_sender, register
from .test_zeo_outage import fftelemetry, records_in

pytestmark = pytest.mark.slow

# A new database takes some 7.5 MB (template1's copy): room for it, and for the app's first
# writes, before the filler takes the rest.
TMPFS_SIZE = "24m"
FULL = "the PostgreSQL server's disk is full"
DISK_FULL = "DiskFull: could not extend file "

tablespaces = count()


class Room:
    """A tmpfs that a file can fill (`full()`): the tablespace of a database."""

    def __init__(self, folder):
        self.folder = folder

    @contextmanager
    def full(self):
        """No room left on the tmpfs for the block: a file takes every byte of it."""
        filler = self.folder / "filler"
        with open(filler, "wb", buffering=0) as file:
            try:
                while True:
                    file.write(bytes(1 << 16))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        try:
            yield
        finally:
            filler.unlink()


@contextmanager
def database_on_a_tmpfs(cluster):
    """A new database of `cluster`, in a tablespace on a tmpfs mounted for it: its URI and its
    Room. Mounting needs root (the tests run as root in CI, .ci/run); elsewhere the test skips."""
    name = f"tiny{next(tablespaces)}"
    folder = cluster.folder / name
    options = f"size={TMPFS_SIZE},mode=0700"
    if cluster.as_postgres:  # the server runs as postgres: the tablespace's folder is its own
        owner = pwd.getpwnam("postgres")
        options += f",uid={owner.pw_uid},gid={owner.pw_gid}"
    with tmpfs(folder, options, "the PostgreSQL full-disk tests"):
        cluster.run("postgres", f"CREATE TABLESPACE {name} LOCATION '{folder}'")
        cluster.run("postgres", f"CREATE DATABASE {name} TABLESPACE {name}")
        # a first connection writes the server's cache of the new database's catalogs: without
        # room for it, the server refuses every connection ("could not write init file")
        cluster.query(name, "SELECT 1")
        try:
            yield cluster.uri(name), Room(folder)
        finally:
            cluster.run("postgres", f"DROP DATABASE {name} WITH (FORCE)")
            cluster.run("postgres", f"DROP TABLESPACE {name}")


def test_the_app_on_a_full_postgresql_server_says_not_saved(cluster, tmp_path):
    stub = Stub()
    port = free_port()
    with database_on_a_tmpfs(cluster) as (uri, room), serving(stub) as url:
        settings = app_settings(uri, **{"fftelemetry.telemetry_url": url}, **CHEAP)
        ini = write_server_ini(tmp_path / "web.ini", settings, port)
        with pserve(ini, port) as base:
            admin = new_session()
            assert register(base, "owner@example.org", admin).status_code == 200
            before = records_in(ini)
            with room.full():
                refused = register(base, "second@example.org")
                assert refused.status_code == 503, refused.text
                assert "Not saved" in refused.text and "Welcome!" not in refused.text
                assert f"The database could not store this ({FULL}). Nothing was changed." in (
                    refused.text)
                assert "could not extend file" not in refused.text  # nor the server's file
                sent = cron(ini)
                assert sent.returncode == 1, sent.stderr
                [said] = sent.stderr.splitlines()  # no traceback before it
                assert said.startswith(f"fftelemetry cron: could not write ({DISK_FULL}"), said
                assert said.endswith(": No space left on device); the change in progress was "
                                     "rolled back"), said
                assert stub.requests == []  # the records stay pending
            log = ini.with_suffix(".log").read_text()
            assert f"POST /register not saved: {DISK_FULL}" in log, log
            assert "Traceback" not in log, log
            assert register(base, "second@example.org").status_code == 200
            assert records_in(ini) > before
            sent = cron(ini)
            assert sent.returncode == 0, sent.stderr
            [(_, body)] = stub.requests
            assert len(json.loads(body)) >= before


def test_a_receiver_on_a_full_postgresql_server_answers_507(cluster, tmp_path):
    with database_on_a_tmpfs(cluster) as (uri, room):
        receiver_ini, port, ini = receiver_and_sender(tmp_path, uri)
        with pserve(receiver_ini, port) as base:
            assert new_session().get(f"{base}/stats", timeout=30).json()["records"] == 0
            with room.full():
                refused = cron(ini)
                stats = new_session().get(f"{base}/stats", timeout=30).json()
            assert refused.returncode == 1, refused.stderr
            assert (f"the receiver answered HTTP 507: the receiver has no room to store the batch "
                    f"({FULL}); nothing was stored, send the batch again later; the records stay "
                    "pending") in refused.stderr, refused.stderr
            assert stats["records"] == 0
            log = receiver_ini.with_suffix(".log").read_text()
            warned = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
            assert len(warned) == 1, log
            assert warned[0].startswith(f"WARNING [fftelemetry.receiver.views] POST /submit not "
                                        f"stored, no room: {DISK_FULL}"), log
            assert "Traceback" not in log, log
            sent = cron(ini)
            assert sent.returncode == 0, sent.stderr
            assert new_session().get(f"{base}/stats", timeout=30).json()["records"] > 0


def test_a_new_database_on_a_full_postgresql_server_stops_in_one_line(cluster, tmp_path):
    """RelStorage makes its tables, and ZODB the root, as a new database is first opened: the
    server's full disk there stops a command and pserve in the one line of a file:// database's
    or a ZEO server's, not as a server that refused the connection; the next start with room
    makes the database."""
    with database_on_a_tmpfs(cluster) as (uri, room):
        ini = write_server_ini(tmp_path / "app.ini", app_settings(uri))
        with room.full():
            command = fftelemetry("status", ini)
            _, said = command.communicate(timeout=60)
            served = run_pserve(ini)
        line = (f"fftelemetry: the database named in {ini} could not be written as it was opened "
                f"({FULL}): nothing it holds was changed; start again once there is room")
        assert (command.returncode, said.splitlines()) == (2, [line]), said
        assert (served.returncode, served.stderr.splitlines()) == (1, [line]), served.stderr
        again = fftelemetry("status", ini)
        again.communicate(timeout=60)
        assert again.returncode == 0


def test_an_evolve_on_a_full_postgresql_server_stops_in_one_line(cluster, tmp_path):
    """An evolve step's commit meets the server's full disk: its one line with the reason, as
    on a file:// database or a ZEO server, the database left at its generation; with room again
    the next start evolves it."""
    with database_on_a_tmpfs(cluster) as (uri, room):
        ini = write_server_ini(tmp_path / "app.ini", app_settings(uri))
        made = fftelemetry("status", ini)  # generation 1, made by this version
        made.communicate(timeout=60)
        assert made.returncode == 0

        def with_a_step():
            return subprocess.run([sys.executable, "-c", WITH_A_STEP, "status", str(ini)],
                                  capture_output=True, text=True, timeout=120, check=False,
                                  env=child_environment())

        with room.full():
            refused = with_a_step()
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.splitlines() == [
            EVOLVE_NOT_WRITTEN.format(ini=ini).replace("File too large", FULL)
        ], refused.stderr
        evolved = with_a_step()
        assert evolved.returncode == 0, evolved.stderr
        assert "evolved the database" in evolved.stderr, evolved.stderr
