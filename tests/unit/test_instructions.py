"""The system facts of `fftelemetry instructions`: each passes the catalog's validator."""

import pytest
from ZODB import DB
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


def test_database_driver_names_the_storage_kind(tmp_path):
    for storage, kind in ((MappingStorage(), "MappingStorage"),
                          (FileStorage(str(tmp_path / "x.fs")), "FileStorage")):
        db = DB(storage)
        try:
            assert database_driver(db) == kind
        finally:
            db.close()


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


def test_a_cron_line_escapes_the_percent_sign_that_cron_reads_as_a_new_line():
    # (PasteDeploy refuses an ini in such a folder, but a virtual environment may be in one)
    line = cron_line("/srv/50%/app.ini#main")
    assert line.startswith("17 4 * * *  cd /srv/50\\% && ")
    assert line.endswith(" cron 'app.ini#main' >> cron.log 2>&1")
    assert "%" not in line.replace("\\%", "")
