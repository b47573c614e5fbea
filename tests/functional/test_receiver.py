"""The receiver through WebTest on a real FileStorage: what it accepts, what it refuses, and that a
refused batch stores nothing."""

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import webob
import webtest
from pyramid.events import ContextFound
from ZODB.POSException import ConflictError

from fftelemetry.receiver import main
from fftelemetry.receiver.resources import ROOT_KEY, Receiver
from fftelemetry.receiver.validation import parse_batch
from fftelemetry.scripting import close_databases, database
from tests.conftest import file_size_limit, free_port, serving

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(tmp_path):
    wsgi = main(
        {},
        **{
            "zodbconn.uri": f"file://{tmp_path}/receiver.fs",
            "receiver.max_records": "5",
            "receiver.max_body_bytes": "4000",
        },
    )
    yield webtest.TestApp(wsgi)
    close_databases(wsgi.registry)


def record(**fields):
    base = {
        "id": uuid.uuid4().hex,
        "installation_id": str(uuid.uuid4()),
        "collected_at": "2026-11-26T05:40:43.831638+00:00",
        "type": "feature",
        "key": "system.python.version",
        "value": "3.11.7",
    }
    base.update(fields)
    return base


def post(app, body, status):
    return post_to(app, "/submit", body, status)


def post_to(app, path, body, status):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return app.post(path, data, content_type="application/json", status=status)


def test_a_valid_batch_is_stored_and_answered_with_a_uuid(app):
    answer = post(app, [record(), record(key="system.users.count", value=3)], 200)
    assert answer.text == f'{{"uuid":"{answer.json["uuid"]}"}}'  # compact, as the log shows it
    assert uuid.UUID(answer.json["uuid"]).version == 4
    assert app.get("/stats").json == {"records": 2, "batches": 1}
    assert app.get("/").json == {"records": 2, "batches": 1}


def test_a_batch_is_kept_as_sent_without_who_sent_it(tmp_path, app, caplog):
    """What the receiver keeps of a sender (docs/telemetry.md, "What the receiver keeps"): each
    record's six fields and its batch's uuid, and of each batch when it came, its ids and how
    many were new. Not the sender's address, a forwarded one, its User-Agent nor other headers:
    not in receiver.fs, not in the log."""
    caplog.set_level("INFO")
    sent = record()
    headers = {"User-Agent": "fftelemetry/9.8.7-probe", "X-Forwarded-For": "198.51.100.23",
               "X-Probe": "probe-header-value"}
    answer = app.post("/submit", json.dumps([sent]).encode(), content_type="application/json",
                      headers=headers, extra_environ={"REMOTE_ADDR": "203.0.113.45"})
    with database(app.app.registry).transaction() as conn:
        receiver = conn.root()[ROOT_KEY]
        [kept] = receiver.records.values()
        batch = receiver.batches[answer.json["uuid"]]
        installation = uuid.UUID(sent["installation_id"]).hex  # kept in one spelling
        assert kept._asdict() == dict(sent, installation_id=installation,
                                      batch_uuid=answer.json["uuid"])
        assert (sorted(vars(batch)), batch.record_ids, batch.new_records) == (
            ["new_records", "received_at", "record_ids"], (sent["id"],), 1
        )
    close_databases(app.app.registry)
    kept_bytes = (tmp_path / "receiver.fs").read_bytes()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for told in ("203.0.113.45", "198.51.100.23", "9.8.7-probe", "probe-header-value"):
        assert told.encode() not in kept_bytes
        assert told not in logged
    assert installation.encode() in kept_bytes  # the scan does find what is kept


def test_the_records_are_under_the_root_key_the_operator_page_names(app):
    """docs/telemetry.md sends the receiver's operator to its ZODB root's `fftelemetry-receiver`
    to remove an installation's records, and a receiver.fs of an earlier release has them there:
    under another key, a receiver would start empty beside them."""
    sent = record()
    post(app, [sent], 200)
    page = " ".join((ROOT / "docs" / "telemetry.md").read_text().split())
    assert "its ZODB root's `fftelemetry-receiver`" in page
    with database(app.app.registry).transaction() as conn:
        [kept] = conn.root()["fftelemetry-receiver"].records.values()
    assert kept.id == sent["id"]


def test_a_resent_record_is_counted_once(app):
    batch = [record(), record(value="3.12.1")]
    first, second = post(app, batch, 200).json, post(app, batch, 200).json
    assert first["uuid"] != second["uuid"]
    assert app.get("/stats").json == {"records": 2, "batches": 2}


def test_the_same_id_in_another_spelling_is_the_same_record(app):
    same, installation = uuid.uuid4(), uuid.uuid4()
    post(app, [record(id=same.hex, installation_id=str(installation))], 200)
    post(app, [record(id=str(same), installation_id=installation.hex)], 200)
    assert app.get("/stats").json["records"] == 1


HEX = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "spelling",
    # what uuid.UUID took, as it reads the digits with int()
    [" " + HEX[1:], "+" + HEX[1:], "0x" + HEX[2:], HEX[:16] + "_" + HEX[17:], "\u0660" * 32,
     "{" + HEX, "urn:" + HEX],
)
@pytest.mark.parametrize("field", ["id", "installation_id"])
def test_an_id_that_is_no_uuid_spelling_is_refused(app, spelling, field):
    answer = post(app, [record(**{field: spelling})], 400).json
    assert answer == {"error": f"record 0, field {field!r}: expected a uuid string",
                      "record": 0, "field": field}
    assert app.get("/stats").json == {"records": 0, "batches": 0}


@pytest.mark.parametrize(
    "stamp",
    ["2026-11-26T05:40:43Z", "2026-11-26 05:40:43+00:00", "2026-11-26t05:40:43,5+00:00",
     "2026-W48-4T06:40:43+01:00", "20261126T054043Z",
     "2026-11-26T05:40:43.83163800000000+00:00"],  # 40 characters, the most taken
)
def test_a_timestamp_in_any_iso_8601_or_rfc_3339_spelling_is_taken(app, stamp):
    post(app, [record(collected_at=stamp)], 200)
    assert app.get("/stats").json["records"] == 1


def test_an_id_in_upper_case_or_braces_is_taken(app):
    installation = uuid.uuid4()
    post(app, [record(id=HEX.upper(), installation_id="{" + installation.hex.upper() + "}")], 200)
    post(app, [record(id=HEX, installation_id=str(installation))], 200)  # the same record
    assert app.get("/stats").json["records"] == 1


def twice(**changes):
    """A batch whose record 2 has the id of record 0, and `changes` to its other fields."""
    first = record()
    return [first, record(), dict(first, **changes)]


def field_twice(name, value):
    """A batch whose record 1 has the field `name` a second time, with `value` (both valid)."""
    body = json.dumps([record(), record()])
    return (body[:-2] + f', "{name}": {json.dumps(value)}}}]').encode()


REFUSED = {
    "not json": (b"{nope", 400, None, None, "not JSON"),
    "not an array": ({"id": 1}, 400, None, None, "expected a JSON array"),
    "null": (None, 400, None, None, "expected a JSON array of records, got null"),
    "a number": (5, 400, None, None, "expected a JSON array of records, got a number"),
    "an object with a name twice": (b'{"id": 1, "id": 1}', 400, None, None, "got an object"),
    # json.loads kept the last and dropped the other: {"value": 3, "value": 5} was stored as 5
    "a field twice": (field_twice("value", "3.12.1"), 400, 1, "value", "this field twice"),
    "the key twice": (field_twice("key", "system.python.version"), 400, 1, "key", "twice"),
    "empty": ([], 400, None, None, "no records"),
    "not an object": ([record(), "x"], 400, 1, None, "record 1: expected an object"),
    "missing field": (
        [{k: v for k, v in record().items() if k != "value"}], 400, 0, "value", "missing field"
    ),
    "unknown field": ([record(amount=12)], 400, 0, "amount", "unknown field(s) 'amount'"),
    "bad id": ([record(id="123")], 400, 0, "id", "uuid"),
    "id not a string": ([record(id=5)], 400, 0, "id", "uuid"),
    "bad installation id": ([record(installation_id=None)], 400, 0, "installation_id", "uuid"),
    "nested too deeply": (b"[" * 1900 + b"]" * 1900, 400, None, None, "nested too deeply"),
    "timestamp past year 9999 in UTC": (
        [record(collected_at="9999-12-31T23:59:59-12:00")], 400, 0, "collected_at", "out of range"
    ),
    "timestamp before year 1 in UTC": (
        [record(collected_at="0001-01-01T00:00:00+12:00")], 400, 0, "collected_at", "out of range"
    ),
    "bad timestamp": ([record(collected_at="yesterday")], 400, 0, "collected_at", "ISO 8601"),
    "timestamp not a string": (
        [record(collected_at=1764135643)], 400, 0, "collected_at", "ISO 8601 timestamp string"
    ),
    # fromisoformat takes any number of a fraction's digits; a timestamp is 40 characters at most
    "timestamp of 41 characters": (
        [record(collected_at="2026-11-26T05:40:43.831638000000000+00:00")], 400, 0,
        "collected_at", "ISO 8601 timestamp string",
    ),
    # Python 3.11's fromisoformat took any character between date and time, and a NUL after them
    **{
        f"a timestamp with {name}": (
            [record(collected_at=stamp)], 400, 0, "collected_at", "expected an ISO 8601 timestamp"
        )
        for name, stamp in {
            "a NUL for its T": "2026-11-26\x0005:40:43+00:00",
            "a right-to-left override for its T": "2026-11-26\u202e05:40:43+00:00",
            "a letter for its T": "2026-11-26X05:40:43+00:00",
            "a NUL in it": "2026-11-26T05:40:43\x00+00:00",
            "a NUL after it": "2026-11-26T05:40:43+00:00\x00",
        }.items()
    },
    "naive timestamp": (
        [record(collected_at="2026-11-26T05:40:43")], 400, 0, "collected_at", "no timezone"
    ),
    "unknown key": ([record(key="finance.balance")], 400, 0, "key", "not a telemetry key"),
    "key not a string": ([record(key=["system.users.count"])], 400, 0, "key", "not a telemetry"),
    "wrong type": ([record(type="recurring")], 400, 0, "type", "of type 'feature'"),
    "bad value": ([record(), record(value="12.50 EUR")], 400, 1, "value", "Python version"),
    "bad value type": ([record(key="system.users.count", value="3")], 400, 0, "value", "number"),
    # named by its type: a list's repr() would escape the text in it
    "a list for a value": (
        [record(value=["3.11.7"])], 400, 0, "value", "'value': a list is not a valid Python"
    ),
    "null for a value": ([record(value=None)], 400, 0, "value", "'value': None is not a valid"),
    # \d matched any script's digits
    "a version in other digits": ([record(value="\u0663.\u0661\u0661.\u0667")], 400, 0, "value",
                                  "not a valid Python version"),
    "an OS release in other digits": (
        [record(key="system.os.version", value="Linux \uff16.\uff11")], 400, 0, "value",
        "not a valid OS version",
    ),
    "the same id twice": (twice(value="3.12.1"), 400, 2, "id", "the same id as record 0"),
    "the same record twice": (twice(), 400, 2, "id", "a batch carries each record once"),
    "the same id twice, spelt two ways": (
        [record(id=(same := uuid.uuid4()).hex), record(id=str(same))],
        400, 1, "id", "the same id as record 0",
    ),
    # RFC 8259, 8.1: UTF-8 only; json.loads(bytes) took these, guessing the encoding
    **{
        f"in {encoding}": (
            json.dumps([record()]).encode(encoding), 400, None, None,
            f"the body is {encoding[:6].upper()}, not UTF-8 (RFC 8259, section 8.1)",
        )
        for encoding in ("utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be")
    },
    "a UTF-8 byte order mark": (
        json.dumps([record()]).encode("utf-8-sig"), 400, None, None, "starts with a byte order mark"
    ),
    "not UTF-8": (
        b'[{"value": "3.11.7\xff"}]', 400, None, None,
        "the body is not valid UTF-8 (byte 0xff at offset 18)",
    ),
    "an encoded surrogate": (  # invalid UTF-8 that json.loads(bytes) read as U+D800
        json.dumps([record(value="3.11.7")]).encode().replace(b"3.11.7", b"\xed\xa0\x80"),
        400, None, None, "the body is not valid UTF-8 (byte 0xed at offset",
    ),
    "too many records": ([record() for _ in range(6)], 413, None, None, "at most 5 records"),
    "too large": ([record(value="3.11.7", pad="x" * 5000)], 413, None, None, "larger than"),
}


# Not a speed target: a body that took the receiver minutes to refuse held up every sender
# (batches are stored one at a time). Finding the name that comes twice once took a pass over
# the names for each name: 90,000 names, 830 KB, took 87 s; one pass takes a tenth of a second.
@pytest.mark.timeout(30)
def test_an_object_of_many_names_one_twice_is_refused_in_one_pass(tmp_path):
    wsgi = main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs"})  # the default limits
    names = ", ".join(f'"{n:x}": 0' for n in range(90_000))
    body = f'[{{{names}, "{89_999:x}": 0}}]'.encode()  # the last name again
    try:
        answer = post(webtest.TestApp(wsgi), body, 400)
    finally:
        close_databases(wsgi.registry)
    assert answer.json["error"] == "record 0, field '15f8f': the record has this field twice"


def test_a_number_of_more_digits_than_python_reads_is_refused_for_what_it_is(tmp_path):
    # json.loads raised int()'s ValueError, as "the body is not JSON", with Python's advice to
    # call sys.set_int_max_str_digits()
    wsgi = main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs"})  # the default limits
    app = webtest.TestApp(wsgi)
    try:
        batch = json.dumps([record(key="system.users.count", value=0)])
        answer = post(app, batch.replace('"value": 0', f'"value": 1{"0" * 4300}').encode(), 400)
        assert answer.json == {"error": "the body holds a number of more than 4,300 digits"}
        assert app.get("/stats").json == {"records": 0, "batches": 0}
    finally:
        close_databases(wsgi.registry)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_batch_is_refused_naming_the_problem_and_nothing_is_stored(app, case):
    body, status, index, field, words = REFUSED[case]
    answer = post(app, body, status).json
    assert words in answer["error"]
    assert answer.get("record") == index
    assert answer.get("field") == field
    assert app.get("/stats").json == {"records": 0, "batches": 0}


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("3." + "1" * 38, f"'3.{'1' * 38}'"),  # 40 characters: whole
        ("3." + "1" * 998, f"'3.{'1' * 38}…' (1,000 characters)"),
        ("3.11" + "." * 40, f"'3.11{'.' * 36}…' (44 characters)"),  # dots of its own
        (10**50, f"1{'0' * 39}… (51 characters)"),  # a number, not quoted
    ],
    ids=["40 characters", "1,000 characters", "dots of its own", "a number"],
)
def test_a_long_refused_value_is_quoted_cut_with_its_length(app, value, quoted):
    # quoted as a refused setting is: a cut ended in "...", which a value can end in too
    answer = post(app, [record(value=value)], 400)
    assert answer.json["error"] == (
        f"record 0, field 'value': {quoted} is not a valid Python version"
    )


def test_an_answer_is_utf8_with_only_what_a_terminal_acts_on_escaped(app):
    # json's ensure_ascii wrote the "…" of a cut as \u2026, which the sender's log showed so
    cut = post(app, [record(value="é" * 50)], 400)
    assert f"'{'é' * 40}…' (50 characters)".encode() in cut.body
    # a C1 control, a right-to-left override, a lone surrogate (UTF-8 has no bytes for it)
    hostile = "\x9b2J\u202eok\ud800"
    refused = post(app, [record(value=hostile)], 400)
    assert b"'\\u009b2J\\u202eok\\ud800'" in refused.body and refused.body.isascii()
    said = refused.json["error"]
    assert said == f"record 0, field 'value': '{hostile}' is not a valid Python version"


def test_a_long_field_name_is_quoted_cut_with_its_length(app):
    # cut after 38 or 40 characters with nothing to say so, the name read as whole
    name = "a" * 100
    answer = post(app, [record(**{name: 1})], 400)
    cut = f"'{'a' * 40}…' (100 characters)"
    assert answer.json == {
        "error": f"record 0, field {cut}: unknown field(s) {cut}", "record": 0, "field": name[:40]
    }
    body = json.dumps([record(**{name: 1})])
    twice = post(app, (body[:-2] + f', "{name}": 1}}]').encode(), 400)
    assert twice.json["error"] == f"record 0, field {cut}: the record has this field twice"


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/plain", "'text/plain'"),
        ("application/x-www-form-urlencoded", "'application/x-www-form-urlencoded'"),
        ("application/jsonl", "'application/jsonl'"),
        ("application/json; boundary=x", "'application/json; boundary=x'"),
        ("application/" + "x" * 100, f"'application/{'x' * 48}…' (112 characters)"),  # was cut
        (None, "none"),
    ],
)
def test_a_body_not_sent_as_json_is_a_json_415_and_nothing_is_stored(app, content_type, shown):
    request = webob.Request.blank("/submit", method="POST", body=json.dumps([record()]).encode())
    if content_type is not None:
        request.content_type = content_type
    answer = request.get_response(app.app)
    assert answer.status_int == 415
    assert answer.json == {"error": f"expected Content-Type application/json, got {shown}"}
    assert app.get("/stats").json == {"records": 0, "batches": 0}


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", 'Application/JSON;charset="UTF-8"']
)
def test_json_with_a_charset_is_taken(app, content_type):
    app.post("/submit", json.dumps([record()]), content_type=content_type, status=200)
    assert app.get("/stats").json == {"records": 1, "batches": 1}


def test_a_charset_parameter_does_not_make_utf16_json(app):
    # RFC 8259, 11: the parameter "really has no effect on compliant recipients"
    body = json.dumps([record()]).encode("utf-16")
    answer = app.post("/submit", body, content_type="application/json; charset=utf-16", status=400)
    assert answer.json == {"error": "the body is UTF-16, not UTF-8 (RFC 8259, section 8.1)"}
    assert app.get("/stats").json == {"records": 0, "batches": 0}


def test_a_batch_at_the_limits_is_taken(app):
    # max_records=5, max_body_bytes=4000: a sender may use all of it
    post(app, [record() for _ in range(5)], 200)
    body = json.dumps([record()]).encode()
    padded = body[:-1] + b" " * (4000 - len(body)) + b"]"
    assert len(padded) == 4000
    post(app, padded, 200)
    assert app.get("/stats").json == {"records": 6, "batches": 2}


# Every bound of the catalog's validators, from both sides: moved by one either way, a bound
# took a value the catalog does not allow or refused one it does, and no test noticed.
AT_THE_EDGE = {
    "system.users.count": [0, 10_000_000],
    "system.python.version": ["3.1.0", "99.999.999rc99+", "3.13.0a1"],
    "system.os.version": ["L", "A" + "b" * 19, "Linux 6", "Linux 1234.1234.1234"],
}
PAST_THE_EDGE = {
    "system.users.count": [-1, 10_000_001],
    "system.python.version": [".11.7", "100.1.1", "3..7", "3.1000.1", "3.11.", "3.1.1000",
                              "3.13.0rc", "3.13.0rc100"],
    "system.os.version": ["A" + "b" * 20, "Linux .1", "Linux 12345", "Linux 1.", "Linux 1.12345",
                          "Linux 1.2.3.4"],
}


def test_values_at_the_catalogs_edges_are_taken_and_past_them_refused(app):
    for key, values in AT_THE_EDGE.items():
        post(app, [record(key=key, value=value) for value in values], 200)
    for key, values in PAST_THE_EDGE.items():
        for value in values:
            answer = post(app, [record(key=key, value=value)], 400).json
            assert answer["field"] == "value", (key, value)
    taken = sum(len(values) for values in AT_THE_EDGE.values())
    assert app.get("/stats").json == {"records": taken, "batches": len(AT_THE_EDGE)}


def test_a_body_without_content_length_is_measured_too(app):
    big = json.dumps([record(pad="x" * 5000)]).encode()
    request = webob.Request.blank(
        "/submit", method="POST", body=big, content_type="application/json"
    )
    # A chunked body as a WSGI server may hand it on: no length, the input marked terminated.
    del request.environ["CONTENT_LENGTH"]
    request.environ["wsgi.input_terminated"] = True
    answer = request.get_response(app.app)
    assert answer.status_int == 413 and "larger than" in answer.json["error"]


def test_batches_never_overwrite_or_overtake_each_other(zodb):
    """Many batches within one millisecond, then one after the clock was set back (NTP): every
    record is kept, in the order it arrived."""
    now = datetime.now(UTC)
    batches = [parse_batch(json.dumps([record()]), 5) for _ in range(200)]
    batches.append(parse_batch(json.dumps([record(), record()]), 5))
    with zodb.transaction() as conn:
        receiver = conn.root()["receiver"] = Receiver()
        for batch in batches[:-1]:
            receiver.accept(batch, now)
        receiver.accept(batches[-1], now - timedelta(seconds=1))
    with zodb.transaction() as conn:
        receiver = conn.root()["receiver"]
        arrived = [fields["id"] for batch in batches for fields in batch]
        assert [stored.id for stored in receiver.records.values()] == arrived
        assert receiver.stats() == {"records": 202, "batches": 201}


SENDERS, BATCHES_EACH = 4, 10


def test_batches_posted_at_once_are_all_taken(tmp_path):
    """Senders posting at the same time, through waitress's threads. Any two batches committed
    together conflict (both add records past the last key, in the tree's last bucket); none may
    end refused as busy (503), which left the sender's records for its next run, a day later.
    Before batches were stored one at a time, 3 or more of these 40 were, run after run."""
    wsgi = main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs"})
    statuses = []

    def sender():
        installation = str(uuid.uuid4())
        with requests.Session() as session:
            for _ in range(BATCHES_EACH):
                batch = [record(installation_id=installation) for _ in range(1000)]
                statuses.append(session.post(f"{url}/submit", json=batch, timeout=60).status_code)

    try:
        with serving(wsgi) as url:
            senders = [threading.Thread(target=sender) for _ in range(SENDERS)]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join()
            stats = requests.get(f"{url}/stats", timeout=10).json()
    finally:
        close_databases(wsgi.registry)
    assert statuses == [200] * (SENDERS * BATCHES_EACH)
    assert stats == {"records": SENDERS * BATCHES_EACH * 1000, "batches": SENDERS * BATCHES_EACH}


HELD = {}  # test_a_batch_is_stored_only_once_the_one_before_is's events and finding


def held_batches(config):
    """`pyramid.includes` hook: a POST sent with X-Hold holds its commit until another POST is
    in a transaction too, or a bound passes (HELD["met"]: whether one was)."""

    def subscriber(event):  # ContextFound: inside pyramid_tm's transaction
        request = event.request
        if request.method != "POST":
            return
        if "X-Hold" in request.headers:
            request.tm.get().addBeforeCommitHook(hold)
        else:
            HELD["entered"].set()

    def hold():
        HELD["holding"].set()
        HELD["met"] = HELD["entered"].wait(2)  # a bound: one at a time, no other comes in

    config.add_subscriber(subscriber, ContextFound)


def test_a_batch_is_stored_only_once_the_one_before_is(tmp_path):
    """Deterministic where the test above is not: two batches in transactions at once conflict,
    and a busy sender's were retried until refused as busy (503)."""
    HELD.update(entered=threading.Event(), holding=threading.Event(), met=None)
    wsgi = main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs",
                       "pyramid.includes": "tests.functional.test_receiver.held_batches"})
    statuses = []

    def post_held(url):
        answer = requests.post(f"{url}/submit", json=[record()], headers={"X-Hold": "1"},
                               timeout=60)
        statuses.append(answer.status_code)

    try:
        with serving(wsgi) as url:
            # the receiver's root made first: made by two requests at once, they conflict
            assert requests.get(f"{url}/stats", timeout=10).json()["batches"] == 0
            first = threading.Thread(target=post_held, args=(url,))
            first.start()
            assert HELD["holding"].wait(30), "the first batch never reached its commit"
            assert requests.get(f"{url}/stats", timeout=10).json()["batches"] == 0  # not held
            second = requests.post(f"{url}/submit", json=[record()], timeout=60)
            first.join(60)
            stats = requests.get(f"{url}/stats", timeout=10).json()
    finally:
        close_databases(wsgi.registry)
    assert HELD["met"] is False  # the second batch began only once the first was stored
    assert [*statuses, second.status_code] == [200, 200]
    assert stats == {"records": 2, "batches": 2}


def test_submit_takes_only_post(app):
    answer = app.get("/submit", status=405)
    assert answer.json == {"error": "POST a JSON array of records to /submit"}
    assert answer.headers["Allow"] == "POST"


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ADDRESSES = {  # address: (the methods it takes, what a 405 there says)
    "/": ("GET, HEAD", "GET / for the counts; POST batches to /submit"),
    "/stats": ("GET, HEAD", "GET /stats for the counts; POST batches to /submit"),
    "/submit": ("POST", "POST a JSON array of records to /submit"),
}


def send(app, method, path):
    request = webob.Request.blank(path, method=method, body=json.dumps([record()]).encode())
    request.content_type = "application/json"
    return request.get_response(app.app)


@pytest.mark.parametrize("path", sorted(ADDRESSES))
def test_every_address_answers_a_method_it_does_not_take_with_a_json_405(app, path):
    """PUT /stats, DELETE / and the like were a 404, as if there were nothing at the address.
    Allow is the truth: each method it names is served."""
    allowed, error = ADDRESSES[path]
    for method in METHODS:
        answer = send(app, method, path)
        if method in allowed.split(", "):
            assert answer.status_int == 200, method
            continue
        assert answer.status_int == 405, method
        assert answer.headers["Allow"] == allowed
        if method != "HEAD":  # an answer to HEAD has no body
            assert answer.json == {"error": error}
    stored = 1 if "POST" in allowed else 0  # the one POST that was taken
    assert app.get("/stats").json == {"records": stored, "batches": stored}


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/nope", "/stats/x", "/submit/x"])
def test_an_unknown_address_stays_a_404_whatever_the_method(app, path, method):
    answer = send(app, method, path)
    assert answer.status_int == 404
    assert answer.json == {"error": f"nothing here: {method} {path}; POST batches to /submit"}


def test_an_unknown_address_is_a_json_404(app):
    answer = app.post("/submitt", b"[]", status=404)
    assert answer.json == {"error": "nothing here: POST /submitt; POST batches to /submit"}


def test_an_address_past_submit_or_stats_is_a_404_and_stores_nothing(app):
    # Traversal handed /submit/x to /submit (x as its subpath): such a batch was stored.
    answer = post_to(app, "/submit/x", [record()], 404)
    assert answer.json == {"error": "nothing here: POST /submit/x; POST batches to /submit"}
    assert app.get("/stats/x", status=404).json["error"].startswith("nothing here: GET /stats/x")
    assert app.get("/stats").json == {"records": 0, "batches": 0}
    post_to(app, "/submit/", [record()], 200)  # a trailing slash is no other address
    assert app.get("/stats/").json == {"records": 1, "batches": 1}


def test_a_long_unknown_address_is_not_repeated_whole(app):
    # cut as every value is, with its length: "…" alone could be the address's own end
    answer = app.get("/" + "x" * 60_000, status=404)
    assert answer.json == {
        "error": f"nothing here: GET /{'x' * 99}… (60,001 characters); POST batches to /submit"
    }
    answer = send(app, "X" * 60_000, "/nope")  # a method is any token, as long
    assert answer.status_int == 404
    assert answer.json == {
        "error": f"nothing here: {'X' * 100}… (60,000 characters) /nope; POST batches to /submit"
    }
    answer = app.get("/" + "y" * 99, status=404)  # 100 characters: whole
    assert answer.json == {"error": f"nothing here: GET /{'y' * 99}; POST batches to /submit"}


def test_a_full_disk_is_a_json_507_in_one_warning_line_and_stores_nothing(tmp_path, app, caplog):
    """A write the disk refuses is no bug: one WARNING line with its reason, no traceback, and
    an answer that says so (it was a 500, "the receiver failed", after an ERROR's traceback)."""
    post(app, [record()], 200)
    caplog.set_level("INFO")
    caplog.clear()
    with file_size_limit((tmp_path / "receiver.fs").stat().st_size):  # the commit cannot write
        answer = post(app, [record()], 507)
    assert answer.json == {
        "error": "the receiver has no room to store the batch (File too large); nothing was "
        "stored, send the batch again later"
    }
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("WARNING", "POST /submit not stored, no room: OSError: [Errno 27] File too large", None)
    ]
    assert app.get("/stats").json == {"records": 1, "batches": 1}


@pytest.mark.parametrize("path", ["/bug/x", "/file/x"])  # a bug; an OSError of no full disk
def test_a_failure_is_a_json_500_with_its_traceback_and_stores_nothing(tmp_path, caplog, path):
    hook = "tests.functional.test_log_lines.any_address"  # views that fail, under /bug, /file
    wsgi = main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs", "pyramid.includes": hook})
    try:
        answer = webtest.TestApp(wsgi).post(path, b"[]", status=500)
    finally:
        close_databases(wsgi.registry)
    assert answer.json == {
        "error": "the receiver failed; nothing was stored, send the batch again later"
    }
    [logged] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.getMessage() == f"POST {path} failed" and logged.exc_info is not None


def stored_lines(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == "fftelemetry.receiver.views" and "stored batch" in r.getMessage()]


def test_a_stored_batch_is_one_info_line_once_committed(tmp_path, app, caplog):
    """Whoever runs the receiver sees each batch it stored in its log, and how many of its
    records were new; none for a batch refused or one whose commit failed (the log was silent
    on every batch)."""
    caplog.set_level("INFO", logger="fftelemetry.receiver.views")
    kept = record()
    first = post(app, [kept, record()], 200).json["uuid"]
    again = post(app, [kept], 200).json["uuid"]  # a re-sent record: stored once
    post(app, b"{nope", 400)
    with file_size_limit((tmp_path / "receiver.fs").stat().st_size):  # the commit fails
        post(app, [record()], 507)
    assert stored_lines(caplog) == [
        f"POST /submit: stored batch {first}, 2 records, 2 new",
        f"POST /submit: stored batch {again}, 1 record, 0 new",
    ]
    assert [r.levelname for r in caplog.records if "stored batch" in r.getMessage()] == [
        "INFO", "INFO"
    ]


def test_every_answer_is_json_to_a_browser_never_a_page(tmp_path, app):
    """A browser takes each answer for JSON, the errors' too (nosniff), and one opened as a page
    all the same loads nothing and is framed by no site: nosniff was missing at first, then the
    other two."""
    answers = [
        app.get("/stats"), app.head("/"), post(app, [record()], 200),
        app.get("/nope", status=404), app.delete("/stats", status=405),
        post(app, b"{nope", 400), app.get("/%ff", status=400),
        post(app, [record() for _ in range(6)], 413),
        app.post("/submit", b"[]", content_type="text/plain", status=415),
    ]
    with file_size_limit((tmp_path / "receiver.fs").stat().st_size):  # the commit fails
        answers.append(post(app, [record()], 507))
    for answer in answers:
        assert answer.headers.getall("X-Content-Type-Options") == ["nosniff"], answer.status
        assert answer.headers.getall("Content-Security-Policy") == [
            "default-src 'none'; frame-ancestors 'none'"
        ], answer.status
        assert answer.headers.getall("X-Frame-Options") == ["DENY"], answer.status


def test_bad_limits_stop_start_up_in_one_line():
    with pytest.raises(SystemExit) as info:
        main({}, **{"zodbconn.uri": "memory://", "receiver.max_records": "many"})
    assert str(info.value) == "fftelemetry receiver: receiver.max_records='many' is not a number"
    with pytest.raises(SystemExit) as info:
        main({}, **{"receiver.max_records": "50"})
    assert str(info.value) == (
        "fftelemetry receiver: no database: set zodbconn.uri in the ini (zeo://, file://; see "
        "development.ini)"
    )


@pytest.mark.parametrize(
    "name, raw, says",
    [
        ("receiver.max_records", "+7", "is not a number"),  # int() took these three
        ("receiver.max_records", "2_000", "is not a number"),
        ("receiver.max_body_bytes", "\u0665", "is not a number"),
        ("receiver.max_records", "0", "must be at least 1"),
        ("receiver.max_records", "100001", "must be at most 100000"),  # there was no most
        ("receiver.max_body_bytes", "0", "must be at least 1"),
        ("receiver.max_body_bytes", "268435457", "must be at most 268435456"),
        ("receiver.max_body_bytes", "9" * 5000, "must be at most 268435456"),
        ("retry.attempts", "0", "must be at least 1"),  # pyramid_retry's assert: a traceback
        ("retry.attempts", "101", "must be at most 100"),
    ],
)
def test_a_limit_is_ascii_digits_within_bounds(name, raw, says):
    """The receiver reads its limits as the app reads its numbers (settings.parse_number),
    and quotes them as it does: cut past 40 characters."""
    with pytest.raises(SystemExit) as info:
        main({}, **{"zodbconn.uri": "memory://", name: raw})
    quoted = repr(raw) if len(raw) <= 40 else f"'{raw[:40]}…' ({len(raw):,} characters)"
    assert str(info.value) == f"fftelemetry receiver: {name}={quoted} {says}"


def test_no_zeo_server_stops_start_up_in_one_line(tmp_path):
    # as the app says it: the receiver showed ZEO's traceback
    with pytest.raises(SystemExit) as info:
        main({}, **{"zodbconn.uri": f"zeo://{tmp_path}/no-zeo.sock?wait_timeout=1"})
    assert str(info.value) == (
        "fftelemetry receiver: cannot reach the ZEO server named in zodbconn.uri: "
        "is runzeo running?"
    )


def refused_uri_line(uri, **named):
    """The line that stops the receiver's start on a zodbconn.uri of `uri` (and `named`'s
    zodbconn.uri.NAME)."""
    with pytest.raises(SystemExit) as info:
        main({}, **{"zodbconn.uri": uri}, **named)
    return str(info.value)


# zodburi's own error quoted the whole URI, password and all
@pytest.mark.parametrize("uri", ["/srv/fftelemetry/Data.fs", "fftelemetry:s3cret@db.example/app",
                                 "1pg://fftelemetry:s3cret@127.0.0.1/app"])
def test_a_database_uri_without_a_kind_stops_start_up_naming_the_kinds_known(uri):
    line = refused_uri_line(uri)
    assert line.startswith(
        "fftelemetry receiver: zodbconn.uri: is no database URI: it starts with none of demo://, "
        "file://, "
    ), line
    assert line.endswith(", zeo://") and "s3cret" not in line, line


def test_a_kind_not_known_is_named_and_only_postgresqls_other_spellings_get_a_hint():
    known = "demo://, file://, memory://"
    line = refused_uri_line("redis://fftelemetry:s3cret@127.0.0.1:6379/0")
    assert line.startswith(
        f"fftelemetry receiver: zodbconn.uri: no database of the kind redis:// is known here "
        f"(only {known}, "
    ), line
    assert line.endswith(", zeo://)") and "s3cret" not in line, line
    line = refused_uri_line("pg://fftelemetry:s3cret@127.0.0.1:5432/app")
    assert line.startswith(
        f"fftelemetry receiver: zodbconn.uri: no database of the kind pg:// is known here "
        f"(only {known}, "
    ), line
    assert line.endswith(", zeo://): RelStorage's PostgreSQL is postgres://"), line


def test_a_named_databases_refusal_names_its_setting_and_the_kind_of_its_server(tmp_path):
    line = refused_uri_line("memory://", **{
        "zodbconn.uri.other": "postgresql://fftelemetry:s3cret@127.0.0.1:5432/app"})
    assert line.startswith("fftelemetry receiver: zodbconn.uri.other: no database of the kind "
                           "postgresql:// is known here"), line
    # its server is PostgreSQL, whatever the primary's kind; no server listens on that port
    line = refused_uri_line(f"file://{tmp_path}/Data.fs", **{
        "zodbconn.uri.other": f"postgres://fftelemetry:s3cret@127.0.0.1:{free_port()}/app"})
    assert line.startswith(
        "fftelemetry receiver: cannot open the PostgreSQL database named in zodbconn.uri.other: "
    ), line
    assert "Connection refused" in line and "s3cret" not in line, line


def test_a_relstorage_database_of_no_server_kind_known_is_named_relstorages(tmp_path):
    # RelStorage's sqlite://, whose data_dir is a file: no server, so the line says RelStorage
    (tmp_path / "a-file").write_text("")
    line = refused_uri_line(f"sqlite://?data_dir={tmp_path}/a-file")
    assert line == (
        "fftelemetry receiver: cannot open the RelStorage database named in zodbconn.uri: unable "
        f"to open database file (At: '{tmp_path}/a-file/main.sqlite3')"
    )


def test_a_data_dir_a_writable_relstorage_cannot_make_is_not_said_to_be_read_only():
    # mkdir under /proc/1 fails with ENOENT in a folder that is there: the line said "does not
    # exist, and opened read-only it is not made", of a database opened writable
    line = refused_uri_line("sqlite://?data_dir=/proc/1/nope")
    assert line == (
        "fftelemetry receiver: the database named in zodbconn.uri cannot be opened: /proc/1/nope "
        "could not be made (No such file or directory)"
    )


def conflicting_view(config):
    """`pyramid.includes` hook: /conflict stores nothing and conflicts on the first `n`
    attempts (n in the query)."""

    def conflict(context, request):
        if request.environ["retry.attempt"] < int(request.GET["n"]):
            raise ConflictError
        return {"ok": request.environ["retry.attempt"]}

    config.add_view(conflict, context=Receiver, name="conflict", renderer="json")


def test_conflicts_are_retried_quietly_and_a_last_one_is_a_json_503(tmp_path, caplog):
    wsgi = main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs", "retry.attempts": "3",
                       "pyramid.includes": "tests.functional.test_receiver.conflicting_view"})
    app = webtest.TestApp(wsgi)
    try:
        assert app.get("/conflict?n=1").json == {"ok": 1}
        assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]
        answer = app.get("/conflict?n=3", status=503)
        assert answer.json == {
            "error": "the receiver is busy; nothing was stored, send the batch again later"
        }
        assert [r.levelname for r in caplog.records if r.levelname != "INFO"] == ["WARNING"]
    finally:
        close_databases(wsgi.registry)


def test_an_address_that_is_not_utf8_is_a_json_400(app):
    for url in ("/%ff", "/stats?x=%ff"):
        answer = app.get(url, status=400)
        assert answer.json == {"error": "the address is not valid UTF-8"}


def test_a_receiver_set_no_limits_takes_what_the_readme_says(tmp_path):
    """No receiver.max_records, max_body_bytes nor retry.attempts: the README's 2,000 records,
    1 MiB and three attempts, each used to the full and refused one past it."""
    wsgi = main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs",
                       "pyramid.includes": "tests.functional.test_receiver.conflicting_view"})
    app = webtest.TestApp(wsgi)
    try:
        batch = [record() for _ in range(2001)]  # ~500 KB: within the body's limit
        post(app, batch[:2000], 200)
        answer = post(app, batch, 413)
        assert answer.json["error"] == "at most 2000 records per batch, got 2001"
        body = json.dumps([record()]).encode()
        padded = body[:-1] + b" " * (1024 * 1024 - len(body)) + b"]"
        post(app, padded, 200)
        answer = post(app, padded[:-1] + b" ]", 413)
        assert answer.json["error"] == "the body is larger than 1048576 bytes"
        assert app.get("/stats").json == {"records": 2001, "batches": 2}
        assert app.get("/conflict?n=2").json == {"ok": 2}
        app.get("/conflict?n=3", status=503)
    finally:
        close_databases(wsgi.registry)


@pytest.mark.parametrize(
    "name, least, most",
    [("receiver.max_records", 1, 100_000), ("receiver.max_body_bytes", 1, 256 * 1024 * 1024),
     ("retry.attempts", 1, 100)],
)
def test_each_limit_takes_its_least_and_most(tmp_path, name, least, most):
    # one past them is refused: test_a_limit_is_ascii_digits_within_bounds
    for value in (least, most):
        wsgi = main({}, **{"zodbconn.uri": f"file://{tmp_path}/receiver.fs", name: str(value)})
        assert wsgi.registry.settings[name] == value
        close_databases(wsgi.registry)
