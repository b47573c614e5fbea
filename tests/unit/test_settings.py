"""The opt-in switch and the other settings: every spelling, precedence, DO_NOT_TRACK, errors."""

import inspect
import os
import re
from pathlib import Path

import pytest

from fftelemetry import settings
from fftelemetry.settings import SettingsError

SECRET = "a-secret-of-sufficient-length"


def load(ini=None, environ=None, dotenv_text=None, tmp_path=None):
    ini = {"fftelemetry.session_secret": SECRET, **(ini or {})}
    global_config = {}
    if tmp_path is not None:
        global_config["here"] = str(tmp_path)
        if dotenv_text is not None:
            (tmp_path / ".env").write_text(dotenv_text)
    return settings.load(ini, global_config, environ=environ or {})


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("true", True), ("TRUE", True), ("True", True), ("1", True), ("yes", True),
        ("on", True), (" On ", True), ("false", False), ("FALSE", False), ("0", False),
        ("no", False), ("off", False), ("Off", False),
    ],
)
def test_every_spelling(raw, expected):
    result = load(environ={"SEND_TELEMETRY": raw})
    assert result.send_telemetry is expected
    assert result.send_telemetry_source == "environment"


@pytest.mark.parametrize("raw", ["2", "enabled", "ja", "null", "tru", "-1", "true!"])
def test_a_bad_value_is_one_clear_line(raw):
    with pytest.raises(SettingsError) as info:
        load(environ={"SEND_TELEMETRY": raw})
    message = str(info.value)
    assert "SEND_TELEMETRY" in message and repr(raw) in message
    assert "\n" not in message


def test_bad_ini_value_names_the_ini_setting():
    with pytest.raises(SettingsError, match=r"fftelemetry\.send_telemetry='maybe' \(in the ini\)"):
        load(ini={"fftelemetry.send_telemetry": "maybe"})


@pytest.mark.parametrize("source", ["environment", ".env", "ini"])
def test_a_bad_switch_says_where_it_is_set(tmp_path, source):
    # the line said SEND_TELEMETRY='ture' alone, which the environment, the .env or (by another
    # name) the ini may hold, unlike TELEMETRY_CA_BUNDLE's and ZODBCONN_URI's lines
    given = {
        "environment": {"environ": {"SEND_TELEMETRY": "ture"}},
        ".env": {"dotenv_text": "SEND_TELEMETRY=ture\n"},
        "ini": {"ini": {"fftelemetry.send_telemetry": "ture"}},
    }[source]
    with pytest.raises(SettingsError) as refused:
        load(tmp_path=tmp_path, **given)
    setting = {
        "environment": "SEND_TELEMETRY='ture' (in the environment)",
        ".env": f"SEND_TELEMETRY='ture' (in {tmp_path}/.env)",
        "ini": "fftelemetry.send_telemetry='ture' (in the ini)",
    }[source]
    assert str(refused.value) == (
        f"{setting} is not understood: use true or false (also 1/0, yes/no, on/off)"
    )


def test_a_bad_switch_that_honcho_hands_on_from_the_env_file_is_the_env_files(tmp_path):
    # `make run` gives the .env's lines to pserve as its environment: the .env is what to edit
    with pytest.raises(SettingsError, match=re.escape(f"'ture' (in {tmp_path}/.env)")):
        load(environ={"SEND_TELEMETRY": "ture"}, dotenv_text="SEND_TELEMETRY=ture\n",
             tmp_path=tmp_path)


@pytest.mark.parametrize("in_dotenv", ["maybe", ""])
def test_a_bad_switch_in_the_environment_is_the_environments_whatever_the_env_file_holds(
    tmp_path, in_dotenv
):
    # neither means anything, nor the same: the line must not send the operator to the .env
    with pytest.raises(SettingsError, match=re.escape("'ture' (in the environment)")):
        load(environ={"SEND_TELEMETRY": "ture"}, dotenv_text=f"SEND_TELEMETRY={in_dotenv}\n",
             tmp_path=tmp_path)


def test_a_bad_ini_only_switch_says_the_ini():
    with pytest.raises(SettingsError) as refused:
        load(ini={"fftelemetry.secure_cookies": "ja"})
    assert str(refused.value).startswith("fftelemetry.secure_cookies='ja' (in the ini) is not")


@pytest.mark.parametrize(
    ("name", "default"),
    [("allow_registration", True), ("strict_catalog", False), ("secure_cookies", False)],
)
def test_an_ini_only_switch_has_its_default_and_takes_the_other_value(name, default):
    # strict by default, a value the catalog refuses would be an error page, not a dropped fact
    assert getattr(load(), name) is default
    assert getattr(load(ini={f"fftelemetry.{name}": str(not default)}), name) is (not default)


def test_default_is_off():
    result = load()
    assert (result.send_telemetry, result.send_telemetry_source) == (False, "default")
    empty = load(environ={"SEND_TELEMETRY": ""}, ini={"fftelemetry.send_telemetry": " "})
    assert (empty.send_telemetry, empty.send_telemetry_source) == (False, "default")


def test_precedence_environment_then_dotenv_then_ini(tmp_path):
    ini = {"fftelemetry.send_telemetry": "false"}
    assert load(ini=ini).send_telemetry_source == "ini"
    from_dotenv = load(ini=ini, dotenv_text="SEND_TELEMETRY=true\n", tmp_path=tmp_path)
    assert (from_dotenv.send_telemetry, from_dotenv.send_telemetry_source) == (True, ".env")
    from_env = load(
        ini=ini, environ={"SEND_TELEMETRY": "off"}, dotenv_text="SEND_TELEMETRY=true\n",
        tmp_path=tmp_path,
    )
    assert (from_env.send_telemetry, from_env.send_telemetry_source) == (False, "environment")


def test_the_dotenv_handed_on_as_the_environment_is_still_the_dotenv(tmp_path):
    # honcho (`make run`) gives pserve the .env's lines as its environment: cron reads the .env
    # too, so the switch is not this process's alone
    text = "SEND_TELEMETRY=true\nDO_NOT_TRACK=\n"
    result = load(environ={"SEND_TELEMETRY": "true"}, dotenv_text=text, tmp_path=tmp_path)
    assert (result.send_telemetry, result.send_telemetry_source) == (True, ".env")
    assert not result.switch_in_environment
    text = "SEND_TELEMETRY=true\nDO_NOT_TRACK=1\n"
    environ = {"SEND_TELEMETRY": "true", "DO_NOT_TRACK": "1"}
    off = load(environ=environ, dotenv_text=text, tmp_path=tmp_path)
    assert (off.send_telemetry, off.send_telemetry_source) == (False, "DO_NOT_TRACK")
    assert not off.switch_in_environment


@pytest.mark.parametrize(
    ("in_environment", "in_dotenv"),
    [({"SEND_TELEMETRY": "TRUE"}, "SEND_TELEMETRY=true\n"),  # another spelling, same switch
     ({"SEND_TELEMETRY": "1"}, "SEND_TELEMETRY=yes\n"),
     # `docker run --env-file .env` hands the .env's quotes on; python-dotenv strips them
     ({"SEND_TELEMETRY": "true", "DO_NOT_TRACK": '"1"'}, 'SEND_TELEMETRY=true\nDO_NOT_TRACK="1"\n'),
     ({"SEND_TELEMETRY": "true", "DO_NOT_TRACK": "1"}, "SEND_TELEMETRY=true\nDO_NOT_TRACK=yes\n")],
)
def test_an_environment_that_means_what_the_dotenv_says_is_the_dotenv(
    in_environment, in_dotenv, tmp_path
):
    # cron reads the .env and is switched alike: the status page must not say it may not be,
    # nor tell the operator to set in the .env what is there
    result = load(environ=in_environment, dotenv_text=in_dotenv, tmp_path=tmp_path)
    assert result.send_telemetry_source in (".env", "DO_NOT_TRACK")
    assert not result.switch_in_environment
    differs = load(environ={**in_environment, "SEND_TELEMETRY": "false"}, dotenv_text=in_dotenv,
                   tmp_path=tmp_path)
    assert differs.send_telemetry_source in ("environment", "DO_NOT_TRACK")


@pytest.mark.parametrize("blank", ["", " ", "\t"])
def test_a_blank_value_leaves_the_choice_to_the_next_source(blank, tmp_path):
    ini = {"fftelemetry.send_telemetry": "true"}
    from_ini = load(ini=ini, environ={"SEND_TELEMETRY": blank})
    assert (from_ini.send_telemetry, from_ini.send_telemetry_source) == (True, "ini")
    text = f"SEND_TELEMETRY='{blank}'\n"
    past_dotenv = load(
        ini=ini, environ={"SEND_TELEMETRY": blank}, dotenv_text=text, tmp_path=tmp_path
    )
    assert (past_dotenv.send_telemetry, past_dotenv.send_telemetry_source) == (True, "ini")


def test_dotenv_quotes_comments_and_export(tmp_path):
    text = '# telemetry\nexport SEND_TELEMETRY="yes" # opted in\nTELEMETRY_URL=http://x:1/\n'
    result = load(dotenv_text=text, tmp_path=tmp_path)
    assert result.send_telemetry is True
    assert result.telemetry_url == "http://x:1"


@pytest.mark.parametrize("value", ["1", "true", "yes", "2", "please"])
def test_do_not_track_forces_off(value, tmp_path):
    result = load(environ={"SEND_TELEMETRY": "true", "DO_NOT_TRACK": value})
    assert (result.send_telemetry, result.send_telemetry_source) == (False, "DO_NOT_TRACK")
    assert result.switch_in_environment
    via_dotenv = load(
        environ={"SEND_TELEMETRY": "true"}, dotenv_text=f"DO_NOT_TRACK={value}\n",
        tmp_path=tmp_path,
    )
    assert via_dotenv.send_telemetry is False and not via_dotenv.switch_in_environment


@pytest.mark.parametrize("value", ["0", "false", "", " "])
def test_do_not_track_zero_or_empty_changes_nothing(value):
    result = load(environ={"SEND_TELEMETRY": "true", "DO_NOT_TRACK": value})
    assert (result.send_telemetry, result.send_telemetry_source) == (True, "environment")


def test_broken_dotenv_line_is_an_error_not_a_skip(tmp_path):
    with pytest.raises(SettingsError, match=r"line 2 of the \.env file"):
        load(dotenv_text='A=1\nSEND_TELEMETRY="tr\n', tmp_path=tmp_path)


def test_undecodable_dotenv_is_an_error(tmp_path):
    (tmp_path / ".env").write_bytes(b"SEND_TELEMETRY=\xff\xfe\n")
    with pytest.raises(SettingsError, match=r"cannot read \.env"):
        load(tmp_path=tmp_path)


def test_a_dotenv_link_to_nothing_is_an_error_not_a_skip(tmp_path):
    # a deploy links each release's .env to a shared one; with that one gone, its
    # DO_NOT_TRACK or SEND_TELEMETRY went without a word, as if there were no .env
    (tmp_path / ".env").symlink_to(tmp_path / "shared" / ".env")
    with pytest.raises(SettingsError, match=r"is a link to .*shared/\.env, which does not exist"):
        load(tmp_path=tmp_path)


def test_a_dotenv_that_is_no_regular_file_is_an_error(tmp_path):
    # a folder was "cannot read .env file (Is a directory)", /dev/null read as an empty file
    # (a FIFO, which hung start-up, is tried on the real console script: tests/functional)
    (tmp_path / ".env").mkdir()
    with pytest.raises(SettingsError) as folder:
        load(tmp_path=tmp_path)
    assert str(folder.value) == f"{tmp_path}/.env: the .env file is a folder, not a regular file"
    (tmp_path / ".env").rmdir()
    (tmp_path / ".env").symlink_to("/dev/zero")  # read, it never ends
    with pytest.raises(SettingsError) as device:
        load(tmp_path=tmp_path)
    assert str(device.value) == (
        f"{tmp_path}/.env: the .env file is a link to /dev/zero, which is a device, "
        "not a regular file"
    )


def test_dev_null_is_an_empty_dotenv_not_a_device_refused(tmp_path):
    # "no .env", as the benchmark says it (fftelemetry.env_file = /dev/null), or a .env linked
    # to it: an empty file, read as one
    named = load({"fftelemetry.env_file": os.devnull, "fftelemetry.send_telemetry": "true"},
                 tmp_path=tmp_path)
    assert (named.env_file, named.send_telemetry) == (os.devnull, True)
    (tmp_path / ".env").symlink_to(os.devnull)
    assert load(tmp_path=tmp_path).send_telemetry is False


def test_missing_dotenv_is_fine(tmp_path):
    assert load(tmp_path=tmp_path).send_telemetry is False


def test_zodbconn_uri_from_the_environment_then_env_file(tmp_path):
    # not the ini's zodbconn.uri: pyramid_zodbconn reads that one as it is
    ini = {"zodbconn.uri": "file:///ini.fs"}
    assert (load(ini).database_uri, load(ini).database_set_in) == (None, None)
    dotenv = "ZODBCONN_URI= postgres://u:pw@db:5432/app \n"
    from_dotenv = load(ini, {"ZODBCONN_URI": " "}, dotenv, tmp_path)  # blank: no value
    assert (from_dotenv.database_uri, from_dotenv.database_set_in) == (
        "postgres://u:pw@db:5432/app", f"ZODBCONN_URI (in {tmp_path}/.env)"
    )
    from_environment = load(ini, {"ZODBCONN_URI": "zeo://db:8100"}, dotenv, tmp_path)
    assert (from_environment.database_uri, from_environment.database_set_in) == (
        "zeo://db:8100", "ZODBCONN_URI (in the environment)"
    )


def test_only_a_database_the_environment_alone_names_is_this_process_only(tmp_path):
    # `instructions install` then tells the operator to put ZODBCONN_URI in the .env for cron
    uri = "zeo://db:8100"
    assert load(tmp_path=tmp_path).database_in_environment_only is False  # the ini's: shared
    assert load({}, {"ZODBCONN_URI": uri}, "", tmp_path).database_in_environment_only is True
    dotenv = f"ZODBCONN_URI={uri}\n"
    assert load({}, {}, dotenv, tmp_path).database_in_environment_only is False
    # honcho hands the .env on as the environment: cron's lines read the same .env
    assert load({}, {"ZODBCONN_URI": uri}, dotenv, tmp_path).database_in_environment_only is False


def test_the_settings_repr_holds_no_secret(tmp_path):
    # a debugger, a traceback's locals, a log line of the object: none of them shows a secret
    settings = load({"fftelemetry.session_secret": "the-session-secret-0123456789"},
                    {"ZODBCONN_URI": "postgres://u:the-db-password@db:5432/app",
                     "TELEMETRY_URL": "https://u:the-receiver-token@receiver.example/"},
                    "", tmp_path)
    assert settings.session_secret == "the-session-secret-0123456789"
    assert "the-session-secret" not in repr(settings)
    assert "the-db-password" not in repr(settings)
    assert "the-receiver-token" not in repr(settings)  # a receiver's password (docs: receiver)
    assert "ZODBCONN_URI (in the environment)" in repr(settings)


@pytest.mark.parametrize("uri", ["file:///var/Data.fs\nx", "file:///var/\udcffData.fs"])
def test_zodbconn_uri_that_is_not_printable_is_refused_unquoted(uri):
    with pytest.raises(SettingsError) as refused:
        load(environ={"ZODBCONN_URI": uri})
    assert str(refused.value) == (
        "ZODBCONN_URI (in the environment) is not a valid URI: it holds a character that is "
        "not printable"
    )


def test_explicit_env_file_setting(tmp_path):
    other = tmp_path / "elsewhere.env"
    other.write_text("SEND_TELEMETRY=on\n")
    result = load(ini={"fftelemetry.env_file": str(other)})
    assert result.send_telemetry is True and result.env_file == str(other)


def test_a_relative_env_file_is_found_beside_the_ini_from_any_folder(tmp_path, monkeypatch):
    (tmp_path / "custom.env").write_text("DO_NOT_TRACK=1\n")
    monkeypatch.chdir("/")
    result = load(ini={"fftelemetry.env_file": "custom.env", "fftelemetry.send_telemetry": "on"},
                  tmp_path=tmp_path)
    assert (result.send_telemetry, result.send_telemetry_source) == (False, "DO_NOT_TRACK")
    assert result.env_file == str(tmp_path / "custom.env")


def test_an_env_file_that_is_not_there_stops_start_up(tmp_path):
    with pytest.raises(SettingsError, match=r"env_file='custom\.env': there is no file .*custom"):
        load(ini={"fftelemetry.env_file": "custom.env"}, tmp_path=tmp_path)
    assert load(tmp_path=tmp_path).send_telemetry is False  # the usual .env beside it: optional


def test_secret_is_required_and_long_enough():
    with pytest.raises(SettingsError, match="no session secret"):
        settings.load({}, {}, environ={})
    with pytest.raises(SettingsError, match="at least 16"):
        settings.load({}, {}, environ={"FFTELEMETRY_SECRET": "short"})
    with pytest.raises(SettingsError, match="at least 16"):
        settings.load({}, {}, environ={"FFTELEMETRY_SECRET": "x" * 15})
    assert settings.load({}, {}, environ={"FFTELEMETRY_SECRET": "x" * 16}).session_secret
    assert settings.load({}, {}, environ={"FFTELEMETRY_SECRET": SECRET}).session_secret == SECRET


def test_a_secret_that_is_not_utf8_stops_start_up_in_one_line():
    # `export FFTELEMETRY_SECRET=$(head -c 32 /dev/urandom)`: os.environ holds its bytes as
    # lone surrogates; pserve stopped with a traceback when the session factory encoded it
    environ = {"FFTELEMETRY_SECRET": os.fsdecode(b"\xff\x9c" * 16)}
    with pytest.raises(SettingsError, match=r"^FFTELEMETRY_SECRET is not UTF-8 text"):
        settings.load({}, {}, environ=environ)


def test_numbers_and_url():
    result = load(ini={"fftelemetry.batch_size": "50", "fftelemetry.read_timeout": "2.5"})
    assert (result.batch_size, result.read_timeout, result.interval_days) == (50, 2.5, 7)
    with pytest.raises(SettingsError, match="not a number"):
        load(ini={"fftelemetry.batch_size": "many"})
    with pytest.raises(SettingsError, match="at least 1"):
        load(ini={"fftelemetry.batch_size": "0"})
    assert load().session_lifetime_hours == 168  # a week
    with pytest.raises(SettingsError, match="session_lifetime_hours='0' must be at least 1"):
        load(ini={"fftelemetry.session_lifetime_hours": "0"})
    assert (load().login_attempts, load().login_window_seconds) == (5, 60)  # Laravel's
    result = load(ini={"fftelemetry.login_attempts": "3", "fftelemetry.login_window_seconds": "2"})
    assert (result.login_attempts, result.login_window_seconds) == (3, 2)
    with pytest.raises(SettingsError, match="login_attempts='0' must be at least 1"):
        load(ini={"fftelemetry.login_attempts": "0"})
    with pytest.raises(SettingsError, match="login_window_seconds='soon' is not a number"):
        load(ini={"fftelemetry.login_window_seconds": "soon"})
    result = load(ini={"fftelemetry.connect_timeout": ".5", "fftelemetry.read_timeout": "0.001"})
    assert (result.connect_timeout, result.read_timeout) == (0.5, 0.001)
    with pytest.raises(SettingsError, match=r"read_timeout='0\.0009' must be at least 0\.001$"):
        load(ini={"fftelemetry.read_timeout": "0.0009"})
    with pytest.raises(SettingsError, match="must start with http"):
        load(environ={"TELEMETRY_URL": "ftp://example.org"})
    assert load(environ={"TELEMETRY_URL": "http://h:1/"}).telemetry_url == "http://h:1"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://telemetry.example..org", "is not a valid URL"),  # a typo: empty label
        ("http://" + "a" * 64 + ".example.org", "is not a valid URL"),  # label too long
        ("http://127.0.0.1:99999", "is not a valid URL"),
        ("http://:6544", "names no host"),
        ("http://127.0.0.1:6544?token=1", "must not have a query or fragment"),
        ("http://127.0.0.1:6544#top", "must not have a query or fragment"),
        ("http://127.0.0.1:0", "is not a valid URL"),
        # a byte that is not UTF-8 in the environment: the status page and "submit now" were 500s
        ("http://127.0.0.1:6544/in\udcff", "is not a valid URL"),
        # what a terminal would act on, named in the sender's log lines and on the console
        ("http://127.0.0.1:6544/a\nFAKE LOG LINE", "is not a valid URL"),
        # quoted as written: the line that prints it escapes it (test_traversal, test_cli)
        ("http://127.0.0.1:6544/\x1b[2J", r"'http://127.0.0.1:6544/\x1b\[2J' is not a valid"),
        ("http://127.0.0.1:6544/\u202e", "is not a valid URL"),
        ("http://al\x9bice:pw@127.0.0.1:6544", "is not a valid URL"),
        # the sender would POST to /submit/submit, which the receiver answers with a 404
        ("http://127.0.0.1:6544/submit", "must not end in /submit: /submit is added to it"),
        ("https://example.org/telemetry/submit/", "must not end in /submit"),
        # requests sends Basic auth in Latin-1: every run would end in a UnicodeEncodeError
        ("http://alice:pw%E2%82%AC@127.0.0.1:6544", "must be Latin-1 characters"),
        ("http://alice:pw\u20ac@127.0.0.1:6544", "must be Latin-1 characters"),
        # named in every line the sender writes: a megabyte's made each a megabyte
        ("http://h/" + "a" * 1992, "is longer than 2,000 characters"),
    ],
)
def test_a_url_the_sender_could_never_use_stops_start_up(url, reason):
    with pytest.raises(SettingsError, match=reason):
        load(environ={"TELEMETRY_URL": url})


def test_a_url_just_short_enough_is_taken():
    url = "http://h/" + "a" * 1991
    assert load(environ={"TELEMETRY_URL": url}).telemetry_url == url


def test_a_long_token_in_the_url_is_taken():
    # the cap is on the URL every line names, where a token or password is *** (a long token
    # was refused as 'https://***@receiver.example' "longer than 2,000 characters")
    for login in ("t" * 2100, "alice:" + "p" * 2100):
        url = f"https://{login}@receiver.example"
        assert load(environ={"TELEMETRY_URL": url}).telemetry_url == url


def test_a_bad_url_is_named_and_shown_as_the_operator_wrote_it():
    # "'http:' must start with http://" (the slashes taken off first); an ini setting named
    # by the environment variable's name
    with pytest.raises(SettingsError, match=r"^TELEMETRY_URL='http://' names no host$"):
        load(environ={"TELEMETRY_URL": "http://"})
    with pytest.raises(
        SettingsError, match=r"^fftelemetry.telemetry_url='ftp://h/' must start with http://"
    ):
        load(ini={"fftelemetry.telemetry_url": "ftp://h/"})
    with pytest.raises(SettingsError, match=r"^TELEMETRY_URL='http://h:0' is not a valid URL"):
        load(ini={"fftelemetry.telemetry_url": "http://x"}, environ={"TELEMETRY_URL": "http://h:0"})


def test_a_password_in_the_url_is_never_in_the_error():
    with pytest.raises(SettingsError) as info:
        load(environ={"TELEMETRY_URL": "http://alice:s3cret@telemetry..example.org"})
    assert "s3cret" not in str(info.value) and "alice:***@" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:s3/cret@telemetry.example.org",  # a base64 password, not percent-encoded
        "alice:s3cret@telemetry.example.org",  # no scheme
        "https:/alice:s3cret@telemetry.example.org",
    ],
)
def test_a_password_in_a_url_refused_at_start_up_is_not_shown(url):
    with pytest.raises(SettingsError) as info:
        load(environ={"TELEMETRY_URL": url})
    assert "cret" not in str(info.value) and "***@telemetry.example.org" in str(info.value)


def test_a_token_as_the_user_name_is_not_shown():
    assert settings.shown_url("https://s3cret@telemetry.example.org/t/submit") == (
        "https://***@telemetry.example.org/t/submit"
    )


def test_the_scheme_may_be_in_capitals():
    assert load(environ={"TELEMETRY_URL": "HTTPS://h:1/"}).telemetry_url == "https://h:1"


def test_submitted_records_are_kept_90_days_unless_set():
    assert load().keep_submitted_days == 90
    assert load(ini={"fftelemetry.keep_submitted_days": " 30 "}).keep_submitted_days == 30
    assert load(ini={"fftelemetry.keep_submitted_days": "0"}).keep_submitted_days == 0  # for ever
    assert load(ini={"fftelemetry.keep_submitted_days": ""}).keep_submitted_days == 90
    assert load(ini={"fftelemetry.keep_submitted_days": "36500"}).keep_submitted_days == 36500


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("ninety", "is not a number"),
        ("7.5", "is not a number"),
        ("+7", "is not a number"),  # int() would take these three
        ("9_0", "is not a number"),
        ("\u0669\u0660", "is not a number"),  # Arabic-Indic 90
        ("-", "is not a number"),
        ("-1", "must be at least 0"),
        ("36501", "must be at most 36500"),  # a cut-off centuries back is no key the store has
    ],
)
def test_keep_submitted_days_is_a_whole_number_of_ascii_digits(raw, reason):
    with pytest.raises(SettingsError) as info:
        load(ini={"fftelemetry.keep_submitted_days": raw})
    assert str(info.value) == f"fftelemetry.keep_submitted_days={raw!r} {reason}"


WHOLE_NUMBERS = (
    "batch_size", "interval_days", "submission_log_size", "session_lifetime_hours",
    "login_attempts", "login_window_seconds",
)
TIMEOUTS = ("connect_timeout", "read_timeout")


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        # int() and float() take these; keep_submitted_days refused them already (above)
        *[(name, raw) for name in WHOLE_NUMBERS + TIMEOUTS for raw in ("+7", "9_0", "\u0665")],
        # float() takes these too: NaN passes every bound, an infinite timeout is never reached
        *[(name, raw) for name in TIMEOUTS for raw in ("nan", "inf", "-Infinity", "1e400", "7e0")],
    ],
)
def test_every_number_is_written_in_ascii_digits(name, raw):
    with pytest.raises(SettingsError) as info:
        load(ini={f"fftelemetry.{name}": raw})
    assert str(info.value) == f"fftelemetry.{name}={raw!r} is not a number"


@pytest.mark.parametrize(
    ("name", "most", "over"),
    [
        ("batch_size", 10_000, "10001"),
        ("interval_days", 365, "1000000000000"),  # overflowed the next submission's date
        ("connect_timeout", 600, "600.001"),
        ("read_timeout", 600, "86400"),
        ("submission_log_size", 1000, "1001"),  # the log is shown whole on one page
        ("session_lifetime_hours", 8760, "8761"),
        ("login_attempts", 1000, "1001"),
        ("login_window_seconds", 86_400, "1" + "0" * 39),  # 10**400 made /login a 500
    ],
)
def test_every_number_has_a_most(name, most, over):
    assert getattr(load(ini={f"fftelemetry.{name}": str(most)}), name) == most
    with pytest.raises(SettingsError) as info:
        load(ini={f"fftelemetry.{name}": over})
    assert str(info.value) == f"fftelemetry.{name}={over!r} must be at most {most}"


@pytest.mark.parametrize(
    ("name", "default", "least", "under"),
    [
        ("batch_size", 1000, 1, "0"),
        ("interval_days", 7, 1, "0"),  # cron would submit on every run
        ("connect_timeout", 5.0, 0.001, "0"),
        ("read_timeout", 30.0, 0.001, "0.0009"),
        ("submission_log_size", 50, 1, "0"),  # the log would keep no run
        ("session_lifetime_hours", 168, 1, "0"),
        ("login_attempts", 5, 1, "0"),
        ("login_window_seconds", 60, 1, "0"),  # no failed login would count
        ("keep_submitted_days", 90, 0, "-1"),
    ],
)
def test_every_number_has_its_default_and_a_least(name, default, least, under):
    assert getattr(load(), name) == default
    assert getattr(load(ini={f"fftelemetry.{name}": str(least)}), name) == least
    with pytest.raises(SettingsError) as info:
        load(ini={f"fftelemetry.{name}": under})
    assert str(info.value) == f"fftelemetry.{name}={under!r} must be at least {least}"


@pytest.mark.parametrize(
    ("raw", "taken", "refused"),
    [
        (None, 10, None),  # the default main() gives it
        ("1", 1, None),
        ("100", 100, None),
        ("0", None, "must be at least 1"),  # pyramid_retry's assert: a traceback
        ("101", None, "must be at most 100"),
    ],
)
def test_retry_attempts_is_read_as_the_apps_numbers_are(raw, taken, refused):
    # pyramid_retry's setting, not ours: main() reads it with settings.retry_attempts
    ini = {} if raw is None else {"retry.attempts": raw}
    if refused is None:
        assert settings.retry_attempts(ini, default=10) == taken
        return
    with pytest.raises(SettingsError) as info:
        settings.retry_attempts(ini, default=10)
    assert str(info.value) == f"retry.attempts={raw!r} {refused}"


@pytest.mark.parametrize("name", ["keep_submitted_days", "batch_size", "read_timeout"])
def test_a_number_longer_than_int_reads_is_over_its_most(name):
    # int() stops at 4,300 digits with a ValueError: a traceback from pserve, not a line
    # quoted cut, so that the line stays readable
    with pytest.raises(SettingsError) as info:
        load(ini={f"fftelemetry.{name}": "1" * 5000})
    assert str(info.value).startswith(
        f"fftelemetry.{name}='{'1' * 40}…' (5,000 characters) must be at most "
    )


README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_gives_every_setting_once():
    """One row of the README's Configuration table for each setting settings.py reads: a row
    given twice, one of them stale, has the table contradict itself."""
    read = set(re.findall(r'"(fftelemetry\.[a-z_]+)"', inspect.getsource(settings)))
    table = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    assert {name: sum(f"`{name}`" in cell for cell in names) for name in read} == dict.fromkeys(
        read, 1
    )


def test_a_long_line_of_the_env_file_that_cannot_be_parsed_is_quoted_cut(tmp_path):
    # cut after 60 characters with nothing to say so: an unclosed quote read as whole
    line = 'TELEMETRY_URL="https://' + "x" * 100
    with pytest.raises(SettingsError) as refused:
        load(dotenv_text=f"SEND_TELEMETRY=true\n{line}\n", tmp_path=tmp_path)
    assert str(refused.value) == (
        f"{tmp_path / '.env'}: line 2 of the .env file cannot be parsed: "
        f"'{line[:60]}…' (123 characters)"
    )


# -- fftelemetry.telemetry_ca_bundle / TELEMETRY_CA_BUNDLE ----------------------------------------


def test_no_ca_bundle_leaves_the_cas_to_requests():
    result = load()
    assert (result.telemetry_ca_bundle, result.ca_bundle_setting) == (None, None)
    assert load(environ={"TELEMETRY_CA_BUNDLE": " "}).telemetry_ca_bundle is None


def test_a_relative_ca_bundle_is_found_in_the_ini_folder_from_any_folder(tmp_path, monkeypatch):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("PEM\n")
    monkeypatch.chdir("/")
    result = load(ini={"fftelemetry.telemetry_ca_bundle": "certs/ca.pem"}, tmp_path=tmp_path)
    assert result.telemetry_ca_bundle == str(tmp_path / "certs" / "ca.pem")
    assert result.ca_bundle_setting == "fftelemetry.telemetry_ca_bundle"
    # a folder (c_rehash'd) will do too, and from .env it is named as the variable
    folder = load(dotenv_text="TELEMETRY_CA_BUNDLE=certs\n", tmp_path=tmp_path)
    assert (folder.telemetry_ca_bundle, folder.ca_bundle_setting) == (
        str(tmp_path / "certs"), "TELEMETRY_CA_BUNDLE"
    )


def test_the_environment_names_the_ca_bundle_before_env_and_the_ini(tmp_path):
    for name in ("env.pem", "dotenv.pem", "ini.pem"):
        (tmp_path / name).write_text("PEM\n")
    given = {
        "environ": {"TELEMETRY_CA_BUNDLE": str(tmp_path / "env.pem")},
        "dotenv_text": "TELEMETRY_CA_BUNDLE=dotenv.pem\n",
        "ini": {"fftelemetry.telemetry_ca_bundle": "ini.pem"},
    }
    assert load(tmp_path=tmp_path, **given).telemetry_ca_bundle == str(tmp_path / "env.pem")
    del given["environ"]
    assert load(tmp_path=tmp_path, **given).telemetry_ca_bundle == str(tmp_path / "dotenv.pem")


@pytest.mark.parametrize(
    ("source", "value", "reason"),
    [
        ("ini", "gone.pem", "there is no file or folder {tmp_path}/gone.pem"),
        (".env", "gone.pem", "there is no file or folder {tmp_path}/gone.pem"),
        ("environment", "{tmp_path}/gone.pem", "there is no file or folder {tmp_path}/gone.pem"),
        ("ini", os.devnull, f"{os.devnull} is a device, not a file or folder of CA certificates"),
        ("ini", "fifo", "{tmp_path}/fifo is a named pipe (FIFO), not a file or folder of CA "
         "certificates"),
        ("ini", "ca.pem/x", "cannot read {tmp_path}/ca.pem/x (Not a directory)"),
        ("ini", "ca\0.pem", "is not a path: it holds a NUL character"),  # an ini's byte
    ],
)
def test_a_ca_bundle_that_is_no_file_or_folder_stops_start_up_naming_where_it_is_set(
    tmp_path, source, value, reason
):
    os.mkfifo(tmp_path / "fifo")  # opened, it would wait for a writer for ever
    (tmp_path / "ca.pem").write_text("PEM\n")
    value = value.format(tmp_path=tmp_path)
    given = {
        "ini": {"ini": {"fftelemetry.telemetry_ca_bundle": value}},
        ".env": {"dotenv_text": f'TELEMETRY_CA_BUNDLE="{value}"\n'},
        "environment": {"environ": {"TELEMETRY_CA_BUNDLE": value}},
    }[source]
    with pytest.raises(SettingsError) as refused:
        load(tmp_path=tmp_path, **given)
    name, where = {
        "ini": ("fftelemetry.telemetry_ca_bundle", "the ini"),
        ".env": ("TELEMETRY_CA_BUNDLE", tmp_path / ".env"),
        "environment": ("TELEMETRY_CA_BUNDLE", "the environment"),
    }[source]
    assert str(refused.value).startswith(f"{name}='{value}' (in {where})")
    assert str(refused.value).endswith(reason.format(tmp_path=tmp_path))


def test_a_certificate_pasted_for_the_ca_bundle_is_quoted_cut(tmp_path):
    pem = "-----BEGIN CERTIFICATE-----\n" + "MIIB" * 100 + "\n-----END CERTIFICATE-----"
    with pytest.raises(SettingsError) as refused:
        load(environ={"TELEMETRY_CA_BUNDLE": pem}, tmp_path=tmp_path)
    path = f"{tmp_path}/{pem}"
    assert str(refused.value) == (
        f"TELEMETRY_CA_BUNDLE='{pem[:200]}…' ({len(pem)} characters) (in the environment): "
        f"cannot read {path[:200]}… ({len(path)} characters) (File name too long)"
    )
