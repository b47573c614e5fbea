"""Shared fixtures: real apps on real FileStorages in temp dirs, and a clean environment."""

import pytest
import transaction
import webtest
from ZODB import DB
from ZODB.FileStorage import FileStorage

from fftelemetry import main
from fftelemetry.resources import appmaker
from fftelemetry.scripting import close_databases

# Variables that steer the application; every test starts without them.
STEERING_VARIABLES = ("SEND_TELEMETRY", "DO_NOT_TRACK", "TELEMETRY_URL", "FFTELEMETRY_SECRET")
SECRET = "test-secret-that-is-long-enough"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in STEERING_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def app_settings(tmp_path, **overrides):
    settings = {
        "zodbconn.uri": f"file://{tmp_path}/Data.fs",
        "fftelemetry.session_secret": SECRET,
        "fftelemetry.strict_catalog": "true",
        "fftelemetry.env_file": str(tmp_path / ".env"),
        "fftelemetry.send_telemetry": "true",
        "retry.attempts": "3",
    }
    settings.update(overrides)
    return settings


@pytest.fixture
def make_app(tmp_path):
    """make_app(**settings) -> the real WSGI app on a FileStorage in tmp_path; closed after."""
    apps = []

    def make(**overrides):
        app = main({"here": str(tmp_path)}, **app_settings(tmp_path, **overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        close_databases(app.registry)


@pytest.fixture
def testapp(make_app):
    return webtest.TestApp(make_app())


@pytest.fixture
def zodb(tmp_path):
    """A plain DB on a FileStorage, for tests of persistent classes without the web app."""
    db = DB(FileStorage(str(tmp_path / "store.fs")))
    yield db
    db.close()


@pytest.fixture
def opened_root(zodb):
    """The application root in an open connection; commit with transaction.commit()."""
    tm = transaction.TransactionManager()
    conn = zodb.open(tm)
    root = appmaker(conn.root())
    tm.commit()
    yield root, tm
    tm.abort()
    conn.close()
