"""Checking a submitted batch, field by field, against the catalog of the sending side.

Every problem is reported with the index of the record and the field, so a sender's bug can be
found from the 400 answer alone.
"""

import codecs
import json
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from .. import catalog
from ..shown import quoted
from ..uuids import HEX, parse_uuid

FIELDS = frozenset({"id", "installation_id", "collected_at", "type", "key", "value"})


@dataclass
class Invalid(Exception):
    """The batch is refused; `status` is the HTTP status to answer with."""

    message: str
    status: int = 400
    record: int | None = None
    field: str | None = None

    def __str__(self):
        return self.message

    def as_json(self):
        answer = {"error": self.message}
        if self.record is not None:
            answer["record"] = self.record
        if self.field is not None:
            answer["field"] = self.field
        return answer


def check_content_type(header):
    """A body is read only if it is sent as JSON: a form or text posted here by mistake is
    refused for what it is, not for the JSON it fails to be."""
    media_type, *params = [part.strip().lower() for part in (header or "").split(";")]
    # The type defines no parameters; a charset is allowed and changes nothing (RFC 8259, 11).
    if media_type == "application/json" and all(
        param.startswith("charset=") for param in params if param
    ):
        return
    # quoted as sent, not repr()'d: the sender escapes the answer's error for its log
    given = quoted(header, 60) if header else "none"
    raise Invalid(f"expected Content-Type application/json, got {given}", status=415)


def parse_batch(body, max_records):
    """The records of a raw JSON body, each a dict of checked and normalised fields."""
    try:
        data = json.loads(_utf8_text(body), object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise Invalid(f"the body is not JSON ({exc})") from None
    except ValueError:
        # Python's bound on int() (CVE-2020-10735), whose own text tells the sender to call
        # sys.set_int_max_str_digits(): the body is JSON, with a number no record has
        digits = sys.get_int_max_str_digits()
        raise Invalid(f"the body holds a number of more than {digits:,} digits") from None
    except RecursionError:
        raise Invalid("the body is nested too deeply to be a batch") from None
    if not isinstance(data, list):
        raise Invalid(f"expected a JSON array of records, got {_json_type(data)}")
    if not data:
        raise Invalid("the batch holds no records")
    if len(data) > max_records:
        raise Invalid(f"at most {max_records} records per batch, got {len(data)}", status=413)
    records, first_index = [], {}
    for index, item in enumerate(data):
        fields = check_record(index, item)
        # A re-send repeats a whole batch; a record twice in one is a sender's bug, even an
        # identical one, and a different one would be lost: the store keeps one per id.
        first = first_index.setdefault(fields["id"], index)
        if first != index:
            raise Invalid(
                f"record {index}, field 'id': the same id as record {first}; "
                "a batch carries each record once",
                record=index,
                field="id",
            )
        records.append(fields)
    return records


def _utf8_text(body):
    """The body as text, if it is UTF-8. RFC 8259, section 8.1: JSON exchanged between systems
    MUST be UTF-8. json.loads(bytes) guesses UTF-16 or UTF-32 from where the first bytes are zero
    and skips a UTF-8 byte order mark, so a sender that breaks the rule went unnoticed here and
    is refused by receivers that keep to it.

    A UTF-8 byte order mark is refused too. The RFC lets a parser ignore one, but a sender MUST
    NOT add it, and this receiver is the one senders are tried against: one that decodes the
    body, then parses the text (Python's json.loads of a str, Node's JSON.parse of
    buffer.toString()), refuses it. A refused batch loses nothing: the sender keeps it pending."""
    if isinstance(body, str):
        return body
    encoding = json.detect_encoding(body)  # the guess json.loads would make
    if encoding.startswith(("utf-16", "utf-32")):
        raise Invalid(f"the body is {encoding[:6].upper()}, not UTF-8 (RFC 8259, section 8.1)")
    if body.startswith(codecs.BOM_UTF8):
        raise Invalid(
            "the body starts with a byte order mark, which RFC 8259 (section 8.1) forbids; "
            "send UTF-8 without it"
        )
    try:
        return body.decode("utf-8")  # strict: json.loads let encoded surrogates pass
    except UnicodeDecodeError as exc:
        raise Invalid(
            f"the body is not valid UTF-8 (byte {body[exc.start]:#04x} at offset {exc.start})"
        ) from None


class Repeated(dict):
    """A JSON object that has a name twice; `name` is the first such. json.loads keeps the last
    value and drops the other without a word, and which one a reader keeps is up to the reader:
    `{"value": 3, "value": 5}` was stored as 5."""

    def __init__(self, pairs, name):
        super().__init__(pairs)
        self.name = name


def _object(pairs):
    item = dict(pairs)
    if len(item) == len(pairs):
        return item
    seen = set()  # one pass: a body of many names must not cost a pass over them for each
    for name, _ in pairs:
        if name in seen:
            return Repeated(pairs, name)
        seen.add(name)
    raise AssertionError("unreachable")  # pragma: no cover - fewer keys than pairs: a repeat


def check_record(index, item):
    def fail(field, problem):
        if field is None:
            return Invalid(f"record {index}: {problem}", record=index)
        # a name the sender made up may be long: the answer's `field` keeps its first 40
        where = f"record {index}, field {quoted(field)}"
        return Invalid(f"{where}: {problem}", record=index, field=field[:40])

    if not isinstance(item, dict):
        raise fail(None, f"expected an object, got {_json_type(item)}")
    if isinstance(item, Repeated):
        raise fail(item.name, "the record has this field twice")
    missing, unknown = FIELDS - item.keys(), item.keys() - FIELDS
    if missing:
        raise fail(sorted(missing)[0], f"missing field(s) {', '.join(sorted(missing))}")
    if unknown:
        names = ", ".join(quoted(name) for name in sorted(unknown)[:5])
        raise fail(sorted(unknown)[0], f"unknown field(s) {names}")
    checked = {}
    for field in ("id", "installation_id"):
        try:
            checked[field] = _uuid(item[field])
        except ValueError as exc:
            raise fail(field, str(exc)) from None
    try:
        checked["collected_at"] = _timestamp(item["collected_at"])
    except ValueError as exc:
        raise fail("collected_at", str(exc)) from None
    try:
        entry = catalog.lookup(item["key"])
    except catalog.CatalogError as exc:
        raise fail("key", str(exc)) from None
    if item["type"] != entry.type:
        raise fail("type", f"{item['key']} records are of type '{entry.type}'")
    try:
        checked["value"] = entry.validate(item["value"])
    except catalog.CatalogError as exc:
        raise fail("value", str(exc)) from None
    checked["type"], checked["key"] = entry.type, entry.key
    return checked


# The spellings our sender uses (hex, or the dashed form), lower case: no need to parse those.
PLAIN_UUID = re.compile(HEX)


def _uuid(value):
    if isinstance(value, str) and PLAIN_UUID.fullmatch(value):
        return value.replace("-", "")
    return parse_uuid(value).hex  # one spelling, so the same id is always found again


# What a timestamp is written with: ISO 8601's characters, with RFC 3339's space or lower-case t
# between date and time. Python 3.11's fromisoformat takes any character there, and ignores a
# NUL after the seconds or the offset: '2026-11-26\u202e05:40:43\x00+00:00' was stored as a time.
TIMESTAMP_CHARACTERS = re.compile(r"[0-9T:.,+\-WZ t]+")


def _timestamp(value):
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("expected an ISO 8601 timestamp string")
    try:
        if not TIMESTAMP_CHARACTERS.fullmatch(value):
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise ValueError("the timestamp has no timezone")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-12:00 is past the last day Python knows
        raise ValueError("the timestamp is out of range") from None


def _json_type(value):
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, dict):  # a Repeated too
        return names[dict]
    return names.get(type(value), "a number")
