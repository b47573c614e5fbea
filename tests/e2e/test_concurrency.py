"""Many users at once: threads through waitress on one FileStorage, and two `pserve` processes
sharing one ZEO server. No error may reach a user (pyramid_retry reruns a request on a
ConflictError), the user-count records must agree with the number of users, no record is lost."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import transaction
from ZODB import DB
from zodburi import resolve_uri

from fftelemetry.resources import appmaker
from tests.conftest import serving

from .harness import app_settings, free_port, post_form, pserve, write_server_ini, zeo_server

pytestmark = pytest.mark.slow

CLIENTS = 6
USERS_PER_CLIENT = 4
LANGUAGES = ("en", "de", "fr", "nl", "es", "it")
PASSWORD = "correct horse battery"


def sign_up(base_url, email, language):
    """What a person does: register (signed in at once), then finish the wizard."""
    session = requests.Session()
    registered = post_form(session, f"{base_url}/register", {"email": email, "password": PASSWORD})
    assert registered.status_code == 200, registered.text[:300]
    assert registered.url.startswith(f"{base_url}/welcome"), registered.url
    finished = post_form(
        session, registered.url, {"language": language, "locale": "equal"}
    )
    assert finished.status_code == 200, finished.text[:300]
    assert "you are all set" in finished.text


def sign_up_many(base_urls):
    """CLIENTS threads, each signing up USERS_PER_CLIENT people, spread over `base_urls`."""
    errors = []
    barrier = threading.Barrier(CLIENTS)

    def client(index):
        barrier.wait()  # start together: the point is to collide
        for n in range(USERS_PER_CLIENT):
            base = base_urls[(index + n) % len(base_urls)]
            try:
                sign_up(base, f"user{index}-{n}@example.org", LANGUAGES[index % len(LANGUAGES)])
            except Exception as exc:  # collected, so every failure is reported
                errors.append(repr(exc))

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    return errors


def check_database(root):
    users = root["users"]
    store = root["admin"]["telemetry"].store
    total = CLIENTS * USERS_PER_CLIENT
    assert len(users) == total == len(list(users.data.keys()))
    assert sum(1 for user in users.data.values() if user.is_admin) == 1
    records = [record for _, record in store.page(size=10_000)]
    counts = sorted(r.value for r in records if r.key == "system.users.count")
    # every registration saw a different number of users: 1, 2, ... total, each once
    assert counts == list(range(1, total + 1))
    languages = {r.value for r in records if r.key == "user.preferences.language"}
    assert languages == set(LANGUAGES[:CLIENTS])
    assert store.counts()["all"] == len(records)


def test_threads_through_waitress_on_one_filestorage(make_app):
    app = make_app(**{"fftelemetry.password_profile": "cheapest"})
    with serving(app) as url:
        errors = sign_up_many([url])
    assert errors == []
    db = app.registry._zodb_databases[""]
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        check_database(appmaker(conn.root()))
    finally:
        conn.close()


def test_two_pserve_processes_share_one_zeo_server(tmp_path):
    with zeo_server(tmp_path) as uri:
        settings = app_settings(uri, **{"fftelemetry.password_profile": "cheapest"})
        ports = free_port(), free_port()
        inis = [
            write_server_ini(tmp_path / f"web{i}.ini", settings, port)
            for i, port in enumerate(ports)
        ]
        with pserve(inis[0], ports[0]) as first, pserve(inis[1], ports[1]) as second:
            errors = sign_up_many([first, second])
            assert errors == []
            # both processes see what the other wrote
            for base in (first, second):
                assert requests.get(f"{base}/login", timeout=10).status_code == 200
        factory, dbkw = resolve_uri(uri)
        db = DB(factory(), **dbkw)
        try:
            with db.transaction() as conn:
                check_database(appmaker(conn.root()))
        finally:
            db.close()
