"""The one place that reads configuration: ini settings, a `.env` file beside the ini, and the
process environment (which wins). Every other part asks `request.app_settings` (or
`registry.app_settings`); nothing else parses SEND_TELEMETRY or friends.

Firefly III tested its switch three different ways in three places, so `SEND_TELEMETRY=0` turned
collection on while the admin page said off. Here a value is parsed once, strictly, and a value we
do not understand stops start-up with one line naming it.
"""

import os
import re
import stat
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

from dotenv.parser import parse_stream
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .shown import quoted

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})

DEFAULT_TELEMETRY_URL = "http://127.0.0.1:6544"
# Long enough for the administrator to look at what was sent, short enough that nothing sent is
# kept for ever. At most a hundred years (as `fftelemetry pack --days`): a cut-off centuries back
# is no key the store's trees can hold.
DEFAULT_KEEP_SUBMITTED_DAYS = 90
MAX_KEEP_SUBMITTED_DAYS = 36500
HASHING_PROFILES = ("default", "cheapest")
CA_BUNDLE_VARIABLE, CA_BUNDLE_SETTING = "TELEMETRY_CA_BUNDLE", "fftelemetry.telemetry_ca_bundle"
# The app's database, in place of the ini's zodbconn.uri (which pyramid_zodbconn reads): a
# PostgreSQL URI holds its password, which the environment or a .env of mode 600 keeps better
# than an ini. The receiver, its own app with its own database, reads its ini's alone.
DATABASE_VARIABLE = "ZODBCONN_URI"
# Every variable of the environment (or .env) that load() reads. The benchmarks run without them
# (scripts/bench.py), as every test does: an operator's exported ZODBCONN_URI would have pointed
# a benchmark's million records at the operator's own database.
VARIABLES = (
    "SEND_TELEMETRY",
    "DO_NOT_TRACK",
    "TELEMETRY_URL",
    "FFTELEMETRY_SECRET",
    CA_BUNDLE_VARIABLE,
    DATABASE_VARIABLE,
)
# A path a refusal quotes is cut to this: no real path is as long, a certificate pasted in whole
# (its PEM text for its file's name) is.
QUOTED_PATH_CHARS = 200
# A receiver URL is at most this long as shown: the sender names it in every line it writes
# (cron's, the log's, "submit now"'s), and the submission log keeps those lines. A megabyte's in a
# .env made every one a megabyte; a real one is a fraction of this. A password or token in it is
# shown as ***, in no line: however long, it is not counted.
MAX_URL_CHARS = 2000

# The numeric settings: (default, least, most). A float default takes a decimal point too. The
# most is as much as an operator could sensibly want; more only failed later, on a page or in
# cron, so start-up refuses it.
NUMBERS = {
    # records a POST, read and sent whole; the reference receiver takes 2,000 by default
    "fftelemetry.batch_size": (1000, 1, 10_000),
    # at least once a year; with millions of days the next submission's date ran past the year
    # 9999, and the status page, `fftelemetry status` and cron failed
    "fftelemetry.interval_days": (7, 1, 365),
    # seconds: an exchange is cut after three connect timeouts, a read timeout and a second, so
    # after 40 minutes at most, not never
    "fftelemetry.connect_timeout": (5.0, 0.001, 600),
    "fftelemetry.read_timeout": (30.0, 0.001, 600),
    # /admin/telemetry/submissions shows the whole log on one page, not a page at a time
    "fftelemetry.submission_log_size": (50, 1, 1000),
    # a year (a session unused for 8 hours ends sooner anyway)
    "fftelemetry.session_lifetime_hours": (168, 1, 8760),
    # more would be no throttle
    "fftelemetry.login_attempts": (5, 1, 1000),
    # a day of 429s for an email from an address; 10**400 made /login a 500 once they began
    "fftelemetry.login_window_seconds": (60, 1, 86_400),
    "fftelemetry.keep_submitted_days": (DEFAULT_KEEP_SUBMITTED_DAYS, 0, MAX_KEEP_SUBMITTED_DAYS),
}
# pyramid_retry's: how many times a request, or a console command's transaction, runs in all
# when it conflicts. It takes whatever int() takes and asserts it is at least 1: `0` stopped
# pserve with a traceback, and every command with "<class 'AssertionError'>: in: Line 0".
RETRY_ATTEMPTS = "retry.attempts"
MAX_RETRY_ATTEMPTS = 100
WHOLE_NUMBER = re.compile(r"-?[0-9]+")
DECIMAL_NUMBER = re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)")


class SettingsError(ValueError):
    """A configuration value we refuse; its message is one line meant for the operator. It
    quotes a value as written, '...', not escaped: the line that prints it escapes it, once
    (fftelemetry.shown); a repr() here would be escaped twice, each backslash doubled. A refused
    number or switch is quoted cut (shown.quoted); a URL or a path whole, it is read (a CA bundle's
    path past QUOTED_PATH_CHARS, which only a certificate pasted in its place is)."""


@dataclass(frozen=True)
class Sourced:
    """A raw configuration value and where it came from."""

    value: str | None
    source: str  # "environment", ".env", "ini" or "default"


@dataclass(frozen=True)
class AppSettings:
    send_telemetry: bool
    # Where the switch's value came from: environment, .env, ini, default or DO_NOT_TRACK.
    send_telemetry_source: str
    # Whether that value came from this process's environment (SEND_TELEMETRY or DO_NOT_TRACK),
    # which other processes (cron's) do not share.
    switch_in_environment: bool
    # left out of the repr as the secrets below: a receiver's password may be in it (shown_url)
    telemetry_url: str = field(repr=False)
    batch_size: int
    interval_days: int
    connect_timeout: float
    read_timeout: float
    submission_log_size: int
    # Secrets are left out of the repr, which a debugger, a traceback's locals or a log may show
    session_secret: str = field(repr=False)
    allow_registration: bool
    strict_catalog: bool
    secure_cookies: bool
    # A sign-in lasts at most this long, however active the session (the idle limit is 8 hours).
    session_lifetime_hours: int
    env_file: str | None
    # The ini's folder, which the printed crontab lines cd to (a link to the ini followed);
    # None for an app made without one.
    ini_folder: str | None = None
    # argon2 cost: "default" (RFC 9106 low-memory) or "cheapest" (tests only: ~1 ms a hash).
    hashing_profile: str = "default"
    # Failed logins for one email from one address before /login answers 429, and the window,
    # from the first of them, that they count in (fftelemetry.throttle, which gives an address
    # across emails, and an email across addresses, 4 times as many).
    login_attempts: int = 5
    login_window_seconds: int = 60
    # Submitted records older than this are deleted by `fftelemetry cron`; 0 keeps them for ever.
    keep_submitted_days: int = DEFAULT_KEEP_SUBMITTED_DAYS
    # The file (or folder) of CA certificates the receiver's certificate is checked against, by
    # its full path, and the setting that named it (TELEMETRY_CA_BUNDLE or
    # fftelemetry.telemetry_ca_bundle); None: requests' own (certifi's, or REQUESTS_CA_BUNDLE).
    telemetry_ca_bundle: str | None = None
    ca_bundle_setting: str | None = None
    # ZODBCONN_URI's URI, which replaces the ini's zodbconn.uri, and where it was set, as lines
    # name it ("ZODBCONN_URI (in the environment)"); None, None: the ini's names the database.
    database_uri: str | None = field(default=None, repr=False)  # a PostgreSQL one's password
    database_set_in: str | None = None
    # Whether only this process's environment names it so, which cron's lines do not share: the
    # .env names another database, or none (honcho hands the .env's values on as the environment).
    database_in_environment_only: bool = False


def _given(raw):
    """Whether a setting has a value: a blank one (only spaces) counts as none."""
    return raw is not None and str(raw).strip() != ""


def parse_bool(name, raw, where=None):
    """true/false/1/0/yes/no/on/off in any case; None for empty or absent. A refusal says
    `where` the value was set, as TELEMETRY_CA_BUNDLE's and ZODBCONN_URI's do."""
    if not _given(raw):
        return None
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    set_in = f" (in {where})" if where else ""
    raise SettingsError(
        f"{name}={quoted(raw)}{set_in} is not understood: "
        "use true or false (also 1/0, yes/no, on/off)"
    )


def switch_meaning(raw):
    """What a switch's value says (True, False, None), or the value itself if it says nothing
    we understand (which start-up refuses where it decides)."""
    try:
        return parse_bool("", raw)
    except SettingsError:
        return raw.strip()


def do_not_track(raw):
    """DO_NOT_TRACK (consoledonottrack.com) is usually set machine-wide, for every tool: any
    value but an empty one or a false word means "don't", and none stops the application."""
    return raw is not None and raw.strip().lower() not in FALSE_WORDS | {""}


def read_env_file(path):
    """The key/value pairs of a `.env` file; a line python-dotenv cannot parse is an error,
    not a silent skip, so a truncated file cannot quietly switch telemetry off or on."""
    try:
        # looked at before it is opened: opening a FIFO waits for a writer, for ever, and a
        # device such as /dev/zero is read for ever (a folder said "Is a directory"). /dev/null
        # is the one device read, as the empty file it is: "no .env" (fftelemetry.env_file).
        kind = kind_of_file(os.stat(path).st_mode)
        if kind is not None and not os.path.samefile(path, os.devnull):
            linked = f"is a link to {os.readlink(path)}, which " if os.path.islink(path) else ""
            raise SettingsError(f"{path}: the .env file {linked}is {kind}, not a regular file")
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        if os.path.islink(path):  # a deploy's link to a shared .env that is not there (yet)
            raise SettingsError(
                f"{path}: the .env file is a link to {os.readlink(path)}, which does not exist"
            ) from None
        return {}
    except (OSError, UnicodeDecodeError) as exc:  # an OSError's text repeats the name, repr()'d
        reason = getattr(exc, "strerror", None) or exc
        raise SettingsError(f"{path}: cannot read .env file ({reason})") from exc
    values = {}
    for binding in parse_stream(_StringStream(text)):
        if binding.error:
            raise SettingsError(
                f"{path}: line {binding.original.line} of the .env file cannot be parsed: "
                f"{quoted(binding.original.string.strip(), 60)}"
            )
        if binding.key is not None:
            values[binding.key] = binding.value or ""
    return values


def kind_of_file(mode):
    """What a file of this `st_mode` is when it is no regular file ("a folder", "a named pipe
    (FIFO)"...); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


class _StringStream:
    """parse_stream wants a stream with read(); a str is all we have."""

    def __init__(self, text):
        self._text = text

    def read(self):
        return self._text


class Sources:
    """Looks a name up in the environment, then `.env` (`env_file`'s values), then the ini
    settings."""

    def __init__(self, ini, environ, dotenv, env_file=None):
        self.ini = ini
        self.environ = environ
        self.dotenv = dotenv
        self.env_file = env_file

    def where(self, found):
        """Where a refused value was set, as its line says it: "the environment", the .env's
        path or "the ini"; the operator edits that one, not whichever source comes to mind."""
        return {"environment": "the environment", ".env": self.env_file, "ini": "the ini"}[
            found.source
        ]

    def lookup(self, env_name, ini_name=None, meaning=str.strip):
        # A blank value (`SEND_TELEMETRY=` or only spaces) is no value: the next source decides.
        if env_name and _given(self.environ.get(env_name)):
            value, in_dotenv = self.environ[env_name], self.dotenv.get(env_name)
            # honcho (`make run`) hands the .env's lines on as the environment: a value the .env
            # holds as well is the .env's, which cron's lines read too. Compared by `meaning`: a
            # switch's `TRUE` is the .env's `true`, and `docker run --env-file` keeps quotes
            same = in_dotenv is not None and meaning(value) == meaning(in_dotenv)
            return Sourced(value, ".env" if same else "environment")
        if env_name and _given(self.dotenv.get(env_name)):
            return Sourced(self.dotenv[env_name], ".env")
        if ini_name and _given(self.ini.get(ini_name)):
            return Sourced(str(self.ini[ini_name]), "ini")
        return Sourced(None, "default")

    def boolean(self, env_name, ini_name, default):
        found = self.lookup(env_name, ini_name, meaning=switch_meaning)
        if found.value is None:
            return default, "default"
        name = env_name if found.source != "ini" else ini_name
        value = parse_bool(name, found.value, where=self.where(found))
        return value, found.source

    def number(self, ini_name, default, minimum, maximum):
        return parse_number(ini_name, self.ini.get(ini_name), default, minimum, maximum)


def parse_number(name, raw, default, minimum, maximum):
    """`minimum` to `maximum`, in ASCII digits (and a decimal point if `default` is a float):
    int() and float() would take "+7", "9_0" and other scripts' digits too, and float() "nan",
    which passes every bound, and "inf" or "1e400", which cron's POST raised on. The receiver
    reads its limits with it too."""
    if not _given(raw):
        return default
    text, kind = str(raw).strip(), type(default)
    if not (DECIMAL_NUMBER if kind is float else WHOLE_NUMBER).fullmatch(text):
        raise SettingsError(f"{name}={quoted(raw)} is not a number")
    value = kind(Decimal(text))  # not int(text): a number of 4,301 digits raises there
    if value < minimum:
        raise SettingsError(f"{name}={quoted(raw)} must be at least {minimum}")
    if value > maximum:
        raise SettingsError(f"{name}={quoted(raw)} must be at most {maximum}")
    return value


def retry_attempts(ini, default):
    """`retry.attempts` of the ini, read as the app's own numbers are."""
    return parse_number(RETRY_ATTEMPTS, ini.get(RETRY_ATTEMPTS), default, 1, MAX_RETRY_ATTEMPTS)


def check_url(url, setting):
    """Refuse at start-up a receiver URL the sender could never POST to: it would fail (or
    POST elsewhere) at every run instead. `setting` names it as the operator wrote it."""
    # Not printable: a control character, a line break, a right-to-left override (no URL has
    # one, RFC 3986 and 3987; the sender's log lines and the console name the URL), or an
    # environment variable's byte that is not UTF-8 (a lone surrogate), which no request, page
    # or session cookie can carry.
    if not url.isprintable():
        raise SettingsError(f"{setting} is not a valid URL")
    if len(shown_url(url)) > MAX_URL_CHARS:  # as the lines show it: no password, no token
        raise SettingsError(f"{setting} is longer than {MAX_URL_CHARS:,} characters")
    try:
        parts = parse_url(url)
        if parts.host and not parts.host.startswith("["):
            parts.host.encode("idna")  # what connecting does: no empty or over-long label
    except (LocationParseError, UnicodeError):
        raise SettingsError(f"{setting} is not a valid URL") from None
    if not parts.host:
        raise SettingsError(f"{setting} names no host")
    if parts.port == 0:
        raise SettingsError(f"{setting} is not a valid URL")
    try:  # what requests does with them: Basic auth, in Latin-1
        unquote(parts.auth or "").encode("latin-1")
    except UnicodeError:
        raise SettingsError(
            f"{setting}: its user name and password must be Latin-1 characters"
        ) from None
    if parts.query is not None or parts.fragment is not None:
        raise SettingsError(
            f"{setting} must not have a query or fragment: /submit is added to it"
        )
    if (parts.path or "").rstrip("/").endswith("/submit"):  # the endpoint, pasted whole
        raise SettingsError(f"{setting} must not end in /submit: /submit is added to it")


def shown_url(url):
    """`url` fit for logs and pages: a password in it replaced by ***, a user name alone (a
    token) by *** too. Everything up to the last @ counts, so that a password with a / or no
    scheme at all is not shown either (an @ in a path hides a little more than it should)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user + ':' if colon else ''}***@{host}"


def ini_here(global_config, ini):
    """PasteDeploy's `here`: the folder of the ini file as given (a link to it not followed)."""
    return (global_config or {}).get("here") or ini.get("here")


def in_ini_folder(here, name):
    """A path the ini (or .env) names, `~` expanded, a relative one taken from the ini's folder:
    cron, the web server and an operator's shell each run in a folder of their own."""
    return os.path.join(here or "", os.path.expanduser(name))


def env_file_for(here, ini):
    """The `.env` beside the ini file (PasteDeploy's `here`), unless the ini names another: a
    relative name is taken from the ini's folder too, whatever folder a command runs in. A
    file the ini names must exist; a misspelt name would drop its DO_NOT_TRACK without a word."""
    explicit = str(ini.get("fftelemetry.env_file") or "").strip()
    if not explicit:
        return os.path.join(here, ".env") if here else None
    path = in_ini_folder(here, explicit)
    if not os.path.exists(path):
        raise SettingsError(f"fftelemetry.env_file='{explicit}': there is no file {path}")
    return path


def ca_bundle_for(sources, here):
    """(the setting's name as written, the full path) of the CA certificates the receiver's
    certificate is checked against, or (None, None). A relative path is taken from the ini's
    folder, as fftelemetry.env_file's: cron and the web server each run in a folder of their
    own. Checked here, at start-up: a bundle that is not there would fail only the submissions,
    days later, in cron's log."""
    found = sources.lookup(CA_BUNDLE_VARIABLE, CA_BUNDLE_SETTING)
    if found.value is None:
        return None, None
    name = CA_BUNDLE_SETTING if found.source == "ini" else CA_BUNDLE_VARIABLE
    given = found.value.strip()
    path = os.path.abspath(in_ini_folder(here, given))
    setting = f"{name}={quoted(given, QUOTED_PATH_CHARS)} (in {sources.where(found)})"
    shown_path = quoted(path, QUOTED_PATH_CHARS, mark="")
    try:
        kind = kind_of_file(os.stat(path).st_mode)
        if kind is None:
            with open(path, "rb"):  # a regular file: no FIFO waits for a writer
                pass
    except FileNotFoundError:
        raise SettingsError(f"{setting}: there is no file or folder {shown_path}") from None
    except OSError as exc:  # an OSError's text repeats the name, repr()'d
        raise SettingsError(f"{setting}: cannot read {shown_path} ({exc.strerror})") from None
    except ValueError:  # a NUL byte in the ini file: no path holds one
        raise SettingsError(f"{setting} is not a path: it holds a NUL character") from None
    if kind not in (None, "a folder"):
        raise SettingsError(
            f"{setting}: {shown_path} is {kind}, not a file or folder of CA certificates"
        )
    return name, path


def database_for(sources):
    """(URI, where it was set) of the app's database when ZODBCONN_URI names it, in the
    environment or .env; (None, None) leaves the ini's zodbconn.uri to pyramid_zodbconn. Never
    quoted: a PostgreSQL URI holds its password."""
    found = sources.lookup(DATABASE_VARIABLE)
    if found.value is None:
        return None, None
    set_in = f"{DATABASE_VARIABLE} (in {sources.where(found)})"
    uri = found.value.strip()
    # as the receiver URL's: a line break or a byte of the environment that is not UTF-8 (a lone
    # surrogate) is in no URI; a file:// one made a database whose file's name held it
    if not uri.isprintable():
        raise SettingsError(
            f"{set_in} is not a valid URI: it holds a character that is not printable"
        )
    return uri, set_in


def ini_folder(global_config, here):
    """The folder the printed crontab lines cd to: the ini file's, a link to it followed as
    `instructions install` follows it (`here` is the link's folder), else `here`."""
    config = global_config or {}
    if config.get("__file__"):
        return str(Path(config["__file__"]).resolve().parent)
    return here


def load(ini, global_config=None, environ=None):
    """Resolve every setting of the application; raises SettingsError with a one-line message."""
    environ = os.environ if environ is None else environ
    here = ini_here(global_config, ini)
    env_file = env_file_for(here, ini)
    sources = Sources(ini, environ, read_env_file(env_file) if env_file else {}, env_file)

    send, send_source = sources.boolean("SEND_TELEMETRY", "fftelemetry.send_telemetry", False)
    in_environment = send_source == "environment"
    dnt = sources.lookup("DO_NOT_TRACK", None, meaning=do_not_track)
    if do_not_track(dnt.value):
        send, send_source, in_environment = False, "DO_NOT_TRACK", dnt.source == "environment"

    found = sources.lookup("TELEMETRY_URL", "fftelemetry.telemetry_url")
    given = (found.value or DEFAULT_TELEMETRY_URL).strip()
    # errors name the setting, and show the value, as the operator wrote them
    name = "fftelemetry.telemetry_url" if found.source == "ini" else "TELEMETRY_URL"
    setting = f"{name}={quoted(shown_url(given), QUOTED_PATH_CHARS)}"
    scheme, sep, rest = given.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):  # HTTPS://host will do too
        raise SettingsError(f"{setting} must start with http:// or https://")
    url = f"{scheme.lower()}://{rest.rstrip('/')}"
    check_url(url, setting)

    ca_setting, ca_bundle = ca_bundle_for(sources, here)
    database_uri, database_set_in = database_for(sources)
    in_dotenv = (sources.dotenv.get(DATABASE_VARIABLE) or "").strip()
    database_in_environment_only = database_set_in is not None and in_dotenv != database_uri

    secret = sources.lookup("FFTELEMETRY_SECRET", "fftelemetry.session_secret").value
    if not secret:
        raise SettingsError(
            "no session secret: set FFTELEMETRY_SECRET in the environment or .env, "
            "or fftelemetry.session_secret in the ini"
        )
    try:  # a variable's byte that is not UTF-8 is a lone surrogate, which no cookie signs with
        secret.encode("utf-8")
    except UnicodeEncodeError:
        raise SettingsError(
            "FFTELEMETRY_SECRET is not UTF-8 text (bytes from /dev/urandom, say): "
            "use letters and digits"
        ) from None
    if len(secret) < 16:
        raise SettingsError("the session secret must be at least 16 characters long")

    allow_registration, _ = sources.boolean(None, "fftelemetry.allow_registration", True)
    strict, _ = sources.boolean(None, "fftelemetry.strict_catalog", False)
    secure_cookies, _ = sources.boolean(None, "fftelemetry.secure_cookies", False)
    profile = (sources.lookup(None, "fftelemetry.password_profile").value or "default").strip()
    if profile not in HASHING_PROFILES:
        raise SettingsError(
            f"fftelemetry.password_profile='{profile}': use one of {', '.join(HASHING_PROFILES)}"
        )
    return AppSettings(
        send_telemetry=send,
        send_telemetry_source=send_source,
        switch_in_environment=in_environment,
        telemetry_url=url,
        session_secret=secret,
        allow_registration=allow_registration,
        strict_catalog=strict,
        secure_cookies=secure_cookies,
        env_file=env_file,
        ini_folder=ini_folder(global_config, here),
        hashing_profile=profile,
        telemetry_ca_bundle=ca_bundle,
        ca_bundle_setting=ca_setting,
        database_uri=database_uri,
        database_set_in=database_set_in,
        database_in_environment_only=database_in_environment_only,
        **{
            name.removeprefix("fftelemetry."): sources.number(name, *bounds)
            for name, bounds in NUMBERS.items()
        },
    )
