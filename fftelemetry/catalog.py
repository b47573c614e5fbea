"""Everything this version may ever collect. A key that is not here is never stored or sent.

Each entry says what type of record it makes, when it is collected, what it means (shown on the
admin page), and how its value is validated. Validators accept only closed sets or tight patterns:
no amount, sum, balance, or free text a user typed can pass one.
"""

import re
from dataclasses import dataclass
from typing import Any

from . import i18n
from .cli import COMMAND_NAMES
from .shown import quoted

FEATURE = "feature"
RECURRING = "recurring"
RECORD_TYPES = (FEATURE, RECURRING)

# The ZODB storage kinds we can name (the class of the storage, or ZEO's client).
DATABASE_DRIVERS = (
    "FileStorage",
    "ZEO",
    "RelStorage",
    "MappingStorage",
    "DemoStorage",
    "BlobStorage",
    "other",
)
MAX_USERS = 10_000_000


class CatalogError(ValueError):
    """A key outside the catalog, or a value its validator refuses."""


def _count(value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogError(f"expected a whole number, got {type(value).__name__}")
    if not 0 <= value <= MAX_USERS:
        raise CatalogError(f"count {_shown(value)} out of range 0..{MAX_USERS}")
    return value


def _one_of(choices, what):
    def validate(value):
        if not isinstance(value, str) or value not in choices:
            raise CatalogError(f"{_shown(value)} is not a supported {what}")
        return value

    return validate


def _pattern(regex, what):
    compiled = re.compile(regex, re.ASCII)  # else \d matches any script's digits (Arabic-Indic...)

    def validate(value):
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise CatalogError(f"{_shown(value)} is not a valid {what}")
        return value

    return validate


def _language(value):
    if not i18n.is_supported_language(value):
        raise CatalogError(f"{_shown(value)} is not a supported language")
    return value


def _locale(value):
    if not i18n.is_supported_locale(value):
        raise CatalogError(f"{_shown(value)} is not a supported locale")
    return value


def _shown(value):
    """A refused value, cut short (shown.quoted) so an error message can't carry a payload. Text
    is quoted as it is, not repr()'d: the log line or the receiver's answer that shows the
    message escapes it (fftelemetry.shown), and escaped here too each backslash would double. A
    value that is not text or a number is named by its type: its repr() would escape the text
    in it."""
    if isinstance(value, str):
        return quoted(value)
    if value is None or isinstance(value, int | float):  # a bool too
        return quoted(repr(value), mark="")
    return f"a {type(value).__name__}"


@dataclass(frozen=True)
class Entry:
    key: str
    type: str
    collected_when: str
    description: str
    validator: Any
    # Only for RECURRING: the least number of days between two stored values.
    every_days: int | None = None

    def validate(self, value):
        return self.validator(value)


_WIZARD = "the new-user wizard is finished; preferences are saved"
_INSTRUCTIONS = "install or upgrade instructions are shown on the console"

ENTRIES = (
    Entry(
        "system.users.count",
        FEATURE,
        "a new user registers, or create-user makes an account",
        "How many users this installation has.",
        _count,
    ),
    Entry(
        "config.default_language",
        FEATURE,
        _WIZARD,
        "The installation's default language.",
        _language,
    ),
    Entry(
        "user.preferences.language",
        FEATURE,
        _WIZARD,
        "A language a user chose (which translations matter).",
        _language,
    ),
    Entry(
        "user.preferences.locale",
        FEATURE,
        _WIZARD,
        "A locale a user chose (number and date formats that matter).",
        _locale,
    ),
    Entry(
        "system.python.version",
        FEATURE,
        _INSTRUCTIONS,
        "The Python version the application runs on.",
        _pattern(r"\d{1,2}\.\d{1,3}\.\d{1,3}(?:(?:a|b|rc)\d{1,2})?\+?", "Python version"),
    ),
    Entry(
        "system.os.version",
        FEATURE,
        _INSTRUCTIONS,
        "The operating system's name and release, e.g. Linux 6.1.",
        _pattern(r"[A-Za-z][A-Za-z0-9]{0,19}(?: \d{1,4}(?:\.\d{1,4}){0,2})?", "OS version"),
    ),
    Entry(
        "system.database.driver",
        FEATURE,
        _INSTRUCTIONS,
        "The kind of ZODB storage (FileStorage, ZEO, RelStorage, ...).",
        _one_of(DATABASE_DRIVERS, "database driver"),
    ),
    Entry(
        "system.os.is_docker",
        FEATURE,
        _INSTRUCTIONS,
        "Whether the application runs inside a Docker container.",
        _one_of(("true", "false"), "true/false value"),
    ),
    Entry(
        "system.command.executed",
        FEATURE,
        "a console command is used for the first time",
        "Which console commands are used at all.",
        _one_of(COMMAND_NAMES, "console command"),
    ),
    Entry(
        "system.command.errored",
        FEATURE,
        "a console command fails",
        "Which console commands fail.",
        _one_of(COMMAND_NAMES, "console command"),
    ),
)

CATALOG = {entry.key: entry for entry in ENTRIES}


def lookup(key):
    try:
        return CATALOG[key]
    except (KeyError, TypeError):
        raise CatalogError(f"{_shown(key)} is not a telemetry key of this version") from None


def validate(key, value):
    """The catalog entry for `key` and the validated value; raises CatalogError."""
    entry = lookup(key)
    try:
        return entry, entry.validate(value)
    except CatalogError as exc:
        raise CatalogError(f"{key}: {exc}") from None
