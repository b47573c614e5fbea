"""The system facts of `fftelemetry instructions`: each passes the catalog's validator."""

import os
from pathlib import Path

import pytest
import ZEO
import ZODB.config
from ZEO.ClientStorage import ClientStorage
from ZODB import DB
from ZODB.blob import BlobStorage
from ZODB.DemoStorage import DemoStorage
from ZODB.FileStorage import FileStorage
from ZODB.MappingStorage import MappingStorage

from fftelemetry import catalog
from fftelemetry.cli.instructions import (
    cron_line,
    database_driver,
    is_docker,
    os_version,
    system_facts,
)


@pytest.mark.parametrize(
    ("system", "release", "expected"),
    [
        ("Linux", "6.1.0-18-amd64", "Linux 6.1"),
        ("Darwin", "23.1.0", "Darwin 23.1"),
        ("Windows", "10", "Windows 10"),
        ("CYGWIN_NT-10.0", "3.4.9", "CYGWINNT100 3.4"),
        ("Linux", "", "Linux"),
        ("", "weird", "unknown"),
        ("9front", "1", "os9front 1"),
    ],
)
def test_os_version_is_name_and_major_minor(system, release, expected):
    assert os_version(system, release) == expected
    catalog.validate("system.os.version", expected)


class ShardedStorage(MappingStorage):
    """A storage of a kind the catalog does not name (a third party's, say)."""


def test_database_driver_names_the_storage_kind(tmp_path):
    for storage, kind in ((MappingStorage(), "MappingStorage"),
                          (FileStorage(str(tmp_path / "x.fs")), "FileStorage"),
                          (ShardedStorage(), "other")):
        db = DB(storage)
        try:
            assert database_driver(db) == kind
            catalog.validate("system.database.driver", kind)
        finally:
            db.close()


def sqlite_relstorage(folder):
    return ZODB.config.storageFromString(
        f"%import relstorage\n<relstorage>\n<sqlite3>\ndata-dir {folder}\n</sqlite3>\n"
        "</relstorage>\n"
    )


def test_database_driver_names_each_kind_the_catalog_knows(tmp_path):
    # A ZEO or RelStorage site taken for "other" would report a wrong driver every week
    address, stop = ZEO.server(path=str(tmp_path / "zeo.fs"))
    try:
        for storage, kind in (
            (lambda: ClientStorage(address, wait_timeout=10), "ZEO"),
            (lambda: sqlite_relstorage(tmp_path / "rel"), "RelStorage"),
            (DemoStorage, "DemoStorage"),
            (lambda: BlobStorage(str(tmp_path / "blobs"), MappingStorage()), "BlobStorage"),
        ):
            db = DB(storage())
            try:
                assert database_driver(db) == kind
                catalog.validate("system.database.driver", kind)
            finally:
                db.close()
    finally:
        stop()


def test_is_docker_looks_at_dockerenv_and_cgroup(tmp_path):
    nothing, cgroup = tmp_path / "absent", tmp_path / "cgroup"
    assert is_docker(nothing, nothing) is False
    cgroup.write_text("0::/system.slice/docker-4f2a.scope\n")
    assert is_docker(nothing, cgroup) is True
    cgroup.write_text("0::/init.scope\n")
    assert is_docker(nothing, cgroup) is False
    assert is_docker(cgroup, nothing) is True  # /.dockerenv exists


def test_every_fact_passes_the_catalog():
    db = DB(MappingStorage())
    try:
        facts = system_facts(db)
        assert set(facts) == {"system.python.version", "system.os.version",
                              "system.database.driver", "system.os.is_docker"}
        for key, value in facts.items():
            catalog.validate(key, value)
    finally:
        db.close()


def test_a_cron_line_escapes_the_percent_sign_that_cron_reads_as_a_new_line(tmp_path):
    # (PasteDeploy refuses an ini in such a folder, but a virtual environment may be in one)
    (tmp_path / "50%").mkdir()
    line = cron_line(f"{tmp_path}/50%/app.ini#main")
    assert line.startswith(f"17 4 * * *  cd {tmp_path}/50\\% && ")
    assert line.endswith(" cron 'app.ini#main' >> cron.log 2>&1")
    assert "%" not in line.replace("\\%", "")


def test_a_cron_line_appends_only_to_a_log_it_may_write(tmp_path, monkeypatch):
    # sh opens the log before it runs the command: a log it may not write (var/ owned by the
    # ZEO server's user, an ini in /etc) would stop the daily submission itself, every day.
    (tmp_path / "var").mkdir()
    writable = {tmp_path / "var": True, tmp_path: True}
    monkeypatch.setattr(os, "access", lambda path, mode: writable.get(Path(path), False))
    assert cron_line(f"{tmp_path}/app.ini").endswith(" cron app.ini >> var/cron.log 2>&1")
    writable[tmp_path / "var"] = False
    assert cron_line(f"{tmp_path}/app.ini").endswith(" cron app.ini >> cron.log 2>&1")
    writable[tmp_path] = False
    assert cron_line(f"{tmp_path}/app.ini").endswith(" cron app.ini")
