"""The real WSGI app on a real FileStorage answers along the traversal tree."""

import pytest
import webtest
from pyramid.interfaces import INewRequest, IRequestExtensions

from fftelemetry import main
from fftelemetry.catalog import CatalogError
from fftelemetry.receiver import main as receiver_main
from fftelemetry.request import AppRequest
from fftelemetry.scripting import close_databases, request_environment
from tests.conftest import OUTSIDE, OUTSIDE_SHOWN, app_settings


def test_admin_telemetry_pages_answer_with_a_login_first(testapp):
    # The pages themselves, as admin, are tested in test_admin_telemetry.py.
    for url in ("/admin/telemetry", "/admin/telemetry/view"):
        assert "/login?came_from=" in testapp.get(url, status=303).location
    assert "Log in" in testapp.get("/", status=200).text


def test_unknown_paths_are_404(testapp):
    testapp.get("/admin/telemetry/nope", status=404)
    testapp.get("/nothing-here", status=404)


def test_resource_urls_follow_the_tree(make_app):
    app = make_app()
    with request_environment(app.registry) as env:
        telemetry = env["root"]["admin"]["telemetry"]
        request = env["request"]
        assert request.resource_url(telemetry) == "http://localhost/admin/telemetry/"
        assert request.resource_url(telemetry["view"], "submit").endswith(
            "/admin/telemetry/view/submit"
        )


def test_bad_switch_stops_start_up_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SEND_TELEMETRY", "maybe")
    with pytest.raises(SystemExit) as info:
        main({"here": str(tmp_path)}, **app_settings(tmp_path))
    assert str(info.value) == (
        "fftelemetry: SEND_TELEMETRY='maybe' (in the environment) is not understood: "
        "use true or false (also 1/0, yes/no, on/off)"
    )


def test_a_number_out_of_bounds_stops_start_up_in_one_line(tmp_path):
    # pserve started, and /login was a 500 once an address had used up its attempts
    settings = app_settings(tmp_path, **{"fftelemetry.login_window_seconds": "1" + "0" * 400})
    with pytest.raises(SystemExit) as info:
        main({"here": str(tmp_path)}, **settings)
    assert str(info.value) == (
        f"fftelemetry: fftelemetry.login_window_seconds='1{'0' * 39}…' (401 characters) "
        "must be at most 86400"
    )


def test_a_file_the_ini_names_is_shown_escaped_when_start_up_stops(tmp_path):
    # pserve prints this line; an ini value may hold a line break (a continuation line)
    settings = app_settings(tmp_path, **{"fftelemetry.env_file": "gone\nFAKE\x1b[2J.env"})
    with pytest.raises(SystemExit) as info:
        main({"here": str(tmp_path)}, **settings)
    assert str(info.value).endswith(f"there is no file {tmp_path}/gone\\nFAKE\\x1b[2J.env")
    assert str(info.value).isprintable()


@pytest.mark.parametrize(
    ("setting", "given", "line"),
    [
        ("SEND_TELEMETRY", OUTSIDE, "SEND_TELEMETRY='{}' (in the environment) is not understood: "
         "use true or false (also 1/0, yes/no, on/off)"),
        ("TELEMETRY_URL", f"http://h/{OUTSIDE}", "TELEMETRY_URL='http://h/{}' is not a valid URL"),
        ("fftelemetry.batch_size", OUTSIDE, "fftelemetry.batch_size='{}' is not a number"),
        ("fftelemetry.password_profile", OUTSIDE,
         "fftelemetry.password_profile='{}': use one of default, cheapest"),
        ("fftelemetry.env_file", OUTSIDE,
         "fftelemetry.env_file='{}': there is no file {tmp_path}/{}"),
    ],
)
def test_a_value_in_the_line_that_stops_start_up_is_escaped_once(
    tmp_path, monkeypatch, setting, given, line
):
    # pserve prints this line. The value was repr()'d in it, then escaped again: each backslash
    # came out doubled, C:\\dir as C:\\\\dir, and \x1b as \\x1b.
    if setting.isupper():  # an environment variable
        monkeypatch.setenv(setting, given)
        settings = app_settings(tmp_path)
    else:
        settings = app_settings(tmp_path, **{setting: given})
    with pytest.raises(SystemExit) as info:
        main({"here": str(tmp_path)}, **settings)
    expected = line.replace("{tmp_path}", str(tmp_path)).replace("{}", OUTSIDE_SHOWN)
    assert str(info.value) == f"fftelemetry: {expected}"


@pytest.mark.parametrize(("make", "program"), [(main, "fftelemetry"),
                                               (receiver_main, "fftelemetry receiver")])
def test_a_database_file_that_is_no_filestorage_stops_start_up_in_one_line(tmp_path, make,
                                                                          program):
    # pserve stopped with a traceback ending in FileStorageFormatError: <the file's name>
    (tmp_path / "Data.fs").write_bytes(b"SQLite format 3\x00" + bytes(100))
    ini = tmp_path / "app.ini"
    with pytest.raises(SystemExit) as info:
        make({"__file__": str(ini), "here": str(tmp_path)}, **app_settings(tmp_path))
    assert str(info.value) == (
        f"{program}: the database of {ini}, {tmp_path}/Data.fs, is not a ZODB FileStorage file "
        "(zodbconn.uri names another kind of file?)"
    )
    assert (tmp_path / "Data.fs").read_bytes() == b"SQLite format 3\x00" + bytes(100)


def test_collect_through_the_request_respects_the_switch(make_app, tmp_path):
    for switch, expected in (("false", 0), ("true", 1)):
        app = make_app(**{"fftelemetry.send_telemetry": switch})
        with request_environment(app.registry) as env:
            record = env["request"].telemetry.collect("system.users.count", 1)
        with request_environment(app.registry) as env:
            store = env["request"].telemetry.store
            assert store.counts()["all"] == expected
            assert (record is not None) == bool(expected)
            assert (store.installation_id is not None) == bool(expected)
        close_databases(app.registry)


def test_refused_value_is_dropped_and_logged_when_not_strict(make_app, caplog):
    app = make_app(**{"fftelemetry.strict_catalog": "false"})
    with request_environment(app.registry) as env:
        request = env["request"]
        assert request.telemetry.collect("system.users.count", "12.50 EUR") is None
        assert request.telemetry.collect("finance.balance", 100) is None
        assert request.telemetry.store.counts()["all"] == 0
    assert "telemetry value dropped: system.users.count" in caplog.text


def test_refused_value_raises_when_strict(make_app):
    app = make_app()
    with pytest.raises(CatalogError), request_environment(app.registry) as env:
        env["request"].telemetry.collect("system.users.count", "12.50 EUR")


def test_webtest_app_is_reusable_across_requests(make_app):
    app = webtest.TestApp(make_app())
    for _ in range(3):
        app.get("/", status=200)


def test_production_ini_ships_without_a_secret_and_refuses_to_start(tmp_path):
    from pathlib import Path

    from pyramid.paster import get_app

    shipped = Path(__file__).resolve().parents[2] / "production.ini"
    copy = tmp_path / "production.ini"  # away from any .env a developer keeps beside the repo's
    copy.write_text(shipped.read_text())
    with pytest.raises(SystemExit) as info:
        get_app(str(copy))
    assert str(info.value).startswith("fftelemetry: no session secret: set FFTELEMETRY_SECRET")


def test_every_request_is_an_app_request_with_no_class_of_its_own(site, admin):
    """Pyramid gives each request a class of its own when anything is added with
    add_request_method(reify=True), which slows every attribute lookup on it (see
    fftelemetry/request.py). The request properties live on AppRequest instead, pyramid_tm's
    `tm` included; the console's requests are made the same way."""
    assert site.app.registry.queryUtility(IRequestExtensions) is None
    seen = []
    site.app.registry.registerHandler(
        lambda event: seen.append(type(event.request)), (INewRequest,)
    )
    admin.get("/admin/telemetry")
    assert seen == [AppRequest]
    with request_environment(site.app.registry) as env:
        assert type(env["request"]) is AppRequest
        assert env["request"].tm.explicit  # pyramid_tm's manager hook still applies
