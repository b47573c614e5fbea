"""What a client sends reaches the log on one line, with every character a terminal would act on
escaped and cut to 300 characters, in the lines of the app's and the receiver's error views and
of a retried conflict.

The method is any text a WSGI server hands on (waitress takes only a token; others may not). The
address is WebOb's request.path, percent-encoded again (PATH_INFO is decoded: /%0a would be a line
break), and is shown so. A backslash is written \\\\, so that no escape in a line is forged."""

import errno
import logging
import re
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
import webob
import webtest
from pyramid.response import Response
from ZODB.POSException import ConflictError, StorageError

from fftelemetry.logs import Formatter
from fftelemetry.receiver import main as receiver_main
from fftelemetry.receiver.resources import ROOT_KEY as RECEIVER_KEY
from fftelemetry.resources import ROOT_KEY
from fftelemetry.scripting import close_databases
from tests.conftest import file_size_limit
from tests.functional.test_faults import data_fs
from tests.functional.test_generations import evolve_behind_its_back

# a line break and a forged line, an escape sequence (clear the screen), a right-to-left
# override and a line separator
METHOD = "GET\nFAKE LOG LINE\x1b[2J\u202e\u2028"
ADDRESS = "/x%0aFAKE%20LOG%20LINE%1b[2J%e2%80%ae%e2%80%a8"
SHOWN = "GET\\nFAKE LOG LINE\\x1b[2J\\u202e\\u2028 /x%0AFAKE%20LOG%20LINE%1B%5B2J%E2%80%AE%E2%80%A8"


def any_address(config):
    """`pyramid.includes` hook: views that take every address under their own and any method
    (no view of traversal takes a subpath; a route's . takes no line break): /bug/... fails as a
    bug would, /conflict/... conflicts on every attempt, /write/... changes the root, written at
    the commit, /store/... fails as a storage whose error quotes what it was given (the address,
    decoded), /file/... as an OSError naming a file after it (its text repr()s the name),
    /quote/... as a bug whose exception quotes it. No storage the app runs on is known to quote
    a request's text, but cannot_save takes any OSError or StorageError, whatever its text."""

    def bug(request):
        raise RuntimeError("a bug")

    def conflict(request):
        raise ConflictError

    def write(request):
        request.root._p_changed = True
        return Response("written")

    def store(request):
        raise StorageError(f"cannot store {request.matchdict['rest']}")

    def file(request):
        name = f"C:\\dir\\{request.matchdict['rest']}"
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)

    def quote(request):
        raise ValueError(f"cannot use {request.matchdict['rest']}")

    views = {
        "bug": bug, "conflict": conflict, "write": write, "store": store, "file": file,
        "quote": quote,
    }
    for name, view in views.items():
        config.add_route(name, f"/{name}/{{rest:[\\s\\S]*}}")
        config.add_view(view, route_name=name, require_csrf=False)


HOOK = {"pyramid.includes": "tests.functional.test_log_lines.any_address", "retry.attempts": "3"}


def send(app, path, status):
    answer = webob.Request.blank(path, method=METHOD).get_response(app)
    assert answer.status_int == status
    return answer


def logged_lines(caplog):
    """The log lines that name the request; each is one line, with nothing a terminal acts on."""
    lines = [record.getMessage() for record in caplog.records]
    lines = [line for line in lines if "FAKE" in line]
    assert lines
    for line in lines:
        assert line.isprintable(), line
    return lines


@pytest.fixture
def receiver_app(tmp_path):
    def make(**settings):
        app = receiver_main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs", **settings})
        made.append(app)
        return app

    made = []
    yield make
    for app in made:
        close_databases(app.registry)


def test_the_app_logs_a_refused_request_escaped(site, caplog):
    """Any address and method: the root of a database that another version has evolved is
    refused before any view."""
    site.browser().get("/", status=200)  # the root is made
    evolve_behind_its_back(site.app, ROOT_KEY, 2)
    send(site.app, ADDRESS, 503)
    [line] = logged_lines(caplog)
    assert line.startswith(f"{SHOWN} refused: the database is of generation 2")


@pytest.mark.parametrize(
    "view, status, said",
    [
        ("bug", 500, ["failed"]),
        ("conflict", 503, ["after ConflictError"] * 2 + ["gave up: conflicting writes"]),
        ("write", 503, ["not saved: OSError: [Errno 27] File too large"]),
        ("store", 503, ["not saved: StorageError: cannot store x\\nFAKE LOG LINE\\x1b[2J"
                        "\\u202e\\u2028"]),
        # escaped once: repr() in the OSError's text and then shown() doubled each backslash
        ("file", 503, ["not saved: FileNotFoundError: [Errno 2] No such file or directory: "
                       "'C:\\\\dir\\\\x\\nFAKE LOG LINE\\x1b[2J\\u202e\\u2028'"]),
    ],
)
def test_the_app_logs_a_failed_request_escaped(make_site, caplog, view, status, said):
    site = make_site(**HOOK)
    caplog.set_level(logging.INFO)
    full_disk = file_size_limit(data_fs(site).stat().st_size) if view == "write" else nullcontext()
    with full_disk:
        send(site.app, f"/{view}{ADDRESS}", status)
    lines = logged_lines(caplog)
    assert len(lines) == len(said)
    for line, words in zip(lines, said, strict=True):
        assert SHOWN.replace(" /", f" /{view}/") in line and words in line, line


def test_the_receiver_logs_a_refused_request_escaped(receiver_app, caplog):
    app = receiver_app()
    webtest.TestApp(app).get("/stats", status=200)  # the root is made
    evolve_behind_its_back(app, RECEIVER_KEY, 2)
    answer = send(app, ADDRESS, 503)
    assert answer.json["error"].startswith("nothing was stored: the database is of generation 2")
    [line] = logged_lines(caplog)
    assert line.startswith(f"{SHOWN} refused: the database is of generation 2")


@pytest.mark.parametrize(
    "view, status, said",
    [("bug", 500, "failed"), ("conflict", 503, "gave up"), ("write", 507, "not stored, no room")],
)
def test_the_receiver_logs_a_failed_request_escaped(tmp_path, receiver_app, caplog, view, status,
                                                    said):
    app = receiver_app(**HOOK)
    full_disk = file_size_limit((tmp_path / "receiver.fs").stat().st_size)
    with full_disk if view == "write" else nullcontext():
        send(app, f"/{view}{ADDRESS}", status)
    [line] = logged_lines(caplog)
    assert line.startswith(f"{SHOWN.replace(' /', f' /{view}/')} {said}")


def test_a_backslash_is_escaped_so_no_escape_is_forged(make_site, receiver_app, caplog):
    """The two characters \\n, with nothing else to escape: written as they are, they read as an
    escaped line break. In the method, and in a storage error quoting the address (a backslash
    is %5C in WebOb's path, decoded in the error)."""
    site = make_site(**HOOK)
    webob.Request.blank("/store/x%5CnFAKE", method="GET\\nFAKE").get_response(site.app)
    webob.Request.blank("/bug/x", method="GET\\nFAKE").get_response(receiver_app(**HOOK))
    assert logged_lines(caplog) == [
        "GET\\\\nFAKE /store/x%5CnFAKE not saved: StorageError: cannot store x\\\\nFAKE",
        "GET\\\\nFAKE /bug/x failed",
    ]


# waitress takes a request line up to its 256 KB header limit
LONG = "/FAKE" + "a" * 60_000


@pytest.mark.parametrize(
    "receiver, view, count",
    [
        (False, "bug", 1),
        (False, "conflict", 3),  # two retries, then gave up
        (False, "store", 1),  # the error quotes the address too
        (True, "bug", 1),
        (True, "conflict", 1),  # the receiver logs no retries
    ],
)
def test_a_long_request_line_is_cut(make_site, receiver_app, caplog, receiver, view, count):
    app = receiver_app(**HOOK) if receiver else make_site(**HOOK).app
    caplog.set_level(logging.INFO)
    answer = webob.Request.blank(f"/{view}{LONG}").get_response(app)
    assert answer.status_int in (500, 503)
    lines = logged_lines(caplog)
    assert len(lines) == count
    said = f"GET /{view}{LONG}"
    for line in lines:
        assert f"{said[:300]}… ({len(said):,} characters) " in line, line[:400]
        assert len(line) < 800


# -- a record of several lines: the shipped inis' formatter (fftelemetry/logs.py) ----------------

SHIPPED = Path(__file__).resolve().parents[2]
# what a request could hand an exception's text: a line break, and a record after it
FORGED = "x\n2026-11-27 00:00:00,000 ERROR   [fftelemetry.x] forged\x1b[2J"
FORGED_SHOWN = "x\\n2026-11-27 00:00:00,000 ERROR   [fftelemetry.x] forged\\x1b[2J"
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO   |WARNING|ERROR  ) \[")

# pserve's and every console command's set-up, then a bug's traceback (a chain, the cause a
# KeyError that repr()s the text), a library's message of two lines and a stack
LOG_A_BUG = """
import logging, sys
from pyramid.paster import setup_logging

setup_logging(sys.argv[1])
log = logging.getLogger("fftelemetry.views.errors")
log.info("GET / answered")
try:
    try:
        {}[sys.argv[2]]
    except KeyError as exc:
        raise ValueError(f"bad header {sys.argv[2]}") from exc
except ValueError:
    log.exception("GET /bug failed")
logging.getLogger("waitress").warning("Exception while serving /%s", sys.argv[2], stack_info=True)
"""


def log_a_bug(ini):
    """What LOG_A_BUG writes to stderr with the logging of `ini`."""
    return subprocess.run(
        [sys.executable, "-c", LOG_A_BUG, str(ini), FORGED],
        capture_output=True, text=True, timeout=60, check=True,
    ).stderr


@pytest.mark.parametrize("ini", ["development.ini", "production.ini", "receiver.ini"])
def test_only_a_record_starts_a_line_of_the_shipped_inis_log(ini):
    lines = log_a_bug(SHIPPED / ini).splitlines()
    starts = [line for line in lines if not line.startswith("  ")]
    assert len(starts) == 3 and all(RECORD.match(line) for line in starts), lines
    # a record of one line is as the format makes it, byte for byte
    assert starts[0].endswith(" INFO    [fftelemetry.views.errors] GET / answered")
    assert starts[1].endswith(" ERROR   [fftelemetry.views.errors] GET /bug failed")
    # the exception's own text is one line, escaped as a one-line message's outside text is
    assert f"  ValueError: bad header {FORGED_SHOWN}" in lines
    assert "  KeyError: '" + FORGED_SHOWN.replace("\\", "\\\\") + "'" in lines
    assert "  The above exception was the direct cause of the following exception:" in lines
    # a library's message: its second line is the record's, escaped where it quotes
    assert "  2026-11-27 00:00:00,000 ERROR   [fftelemetry.x] forged\\x1b[2J" in lines
    assert "  Stack (most recent call last):" in lines
    assert all(line.isprintable() for line in lines)


def test_a_handler_before_ours_leaves_its_traceback_text_to_itself(tmp_path):
    """logging keeps the first formatter's traceback text in the record, for the next handler: a
    handler of Python's own formatter (an operator's, say) listed first left ours its text."""
    shipped = (SHIPPED / "production.ini").read_text()
    ini = tmp_path / "two.ini"
    ini.write_text(
        shipped.replace("keys = console", "keys = plain, console")
        .replace("keys = generic", "keys = plain, generic")
        .replace("handlers = console", "handlers = plain, console")
        + "\n[handler_plain]\nclass = StreamHandler\nargs = (sys.stdout,)\nformatter = plain\n"
        + "\n[formatter_plain]\nformat = %(message)s\n"
    )
    lines = log_a_bug(ini).splitlines()
    assert f"  ValueError: bad header {FORGED_SHOWN}" in lines


def test_a_record_with_a_traceback_text_and_no_exception_keeps_it():
    """A SocketHandler sends a record's traceback as its text alone (exc_info None), as does any
    record pickled to a log server: the text was dropped, where Python's formatter writes it."""
    text = "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad\x1b[2J"
    record = logging.makeLogRecord({"msg": "GET /bug failed", "exc_info": None, "exc_text": text})
    written = Formatter("%(message)s").format(record)
    assert written.split("\n") == [
        "GET /bug failed",
        "  Traceback (most recent call last):",
        '    File "x.py", line 1',
        "  ValueError: bad\\x1b[2J",
    ]


def logged_traceback(exc):
    """The lines the shipped inis' formatter writes for a record of `exc`."""
    record = logging.makeLogRecord(
        {"msg": "GET /bug failed", "exc_info": (type(exc), exc, exc.__traceback__)}
    )
    return Formatter("%(message)s").format(record).split("\n")


def test_a_note_is_one_line_escaped_as_the_exception_text_is():
    """Python splits a note (add_note, 3.11) at its line breaks: a record forged after one was a
    line of its own, indented, where the exception's text keeps its line breaks as \\n."""
    try:
        try:
            raise KeyError("x")
        except KeyError as exc:
            exc.add_note(f"reading {FORGED}")
            raise ValueError("bad header") from exc
    except ValueError as exc:
        exc.add_note("")
        exc.add_note(f"then {FORGED}\n")
        lines = logged_traceback(exc)
    assert f"  reading {FORGED_SHOWN}" in lines  # the cause's note
    assert lines[-3:] == ["  ValueError: bad header", "  ", f"  then {FORGED_SHOWN}\\n"]
    assert all(line.startswith("  ") for line in lines[1:])


def test_a_long_exception_text_or_note_is_cut_with_its_length():
    """An exception quoting a request's body (its repr(), say) wrote all of it, on one line."""
    body = "x\n" * 500_000  # a megabyte; a line break is written \n, two characters
    exc = ValueError(f"bad body {body}")
    exc.add_note(f"while reading {body}")
    lines = logged_traceback(exc)
    escaped = "x\\n"
    assert lines[-2:] == [
        # 1,000 characters, then the text's length
        "  ValueError: bad body " + escaped * 326 + "x… (1,000,021 characters)",
        # 999: the next escape, \n, would end past 1,000, and is not cut in two
        "  while reading " + escaped * 328 + "x… (1,000,014 characters)",
    ]
    # a text of 1,000 characters is written whole
    assert logged_traceback(ValueError("y" * 988))[-1] == f"  ValueError: {'y' * 988}"


def test_notes_set_to_a_str_are_one_line_not_one_a_character():
    """`__notes__ = "..."` (not add_note) is a str, a sequence to Python 3.11's traceback: a line
    of its own for each character, a megabyte of them a million lines. 3.12 writes its repr()."""
    exc = ValueError("bad header")
    exc.__notes__ = f"then {FORGED}"
    lines = logged_traceback(exc)
    # the repr()'s escapes, their backslashes written \\ as every backslash is
    doubled = FORGED_SHOWN.replace("\\", "\\\\")
    assert lines[-2:] == ["  ValueError: bad header", f"  'then {doubled}'"]


class Unconvertible:
    """A note, or __notes__, whose text cannot be had: its str() and repr() raise."""

    def __str__(self):
        raise RuntimeError("no text")

    __repr__ = __str__


def test_a_note_that_cannot_be_converted_is_said_to_as_python_says_it():
    """Python's traceback writes <note str() failed> (<__notes__ repr() failed>): the record is
    written whole, with that line, not lost to a "--- Logging error ---" of its own."""
    exc = ValueError("bad header")
    exc.__notes__ = [Unconvertible()]  # add_note takes a str; code may set the list itself
    assert logged_traceback(exc)[-2:] == ["  ValueError: bad header", "  <note str() failed>"]
    exc = ValueError("bad header")
    exc.__notes__ = Unconvertible()  # not a sequence: its repr() is written
    assert logged_traceback(exc)[-2:] == ["  ValueError: bad header",
                                          "  <__notes__ repr() failed>"]
