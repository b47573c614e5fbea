"""Every catalog key accepts good values and refuses bad ones."""

import pytest

from fftelemetry import catalog, i18n
from fftelemetry.cli import COMMAND_NAMES

GOOD = {
    "system.users.count": [0, 1, 250],
    "config.default_language": ["en", "nl"],
    "user.preferences.language": ["de", "pt"],
    "user.preferences.locale": ["en_US", "nl_NL", "pt_BR"],
    "system.python.version": ["3.11.7", "3.13.0rc1", "3.12.1+"],
    "system.os.version": ["Linux 6.1", "Linux", "Darwin 23.4.0", "Windows 10"],
    "system.database.driver": ["FileStorage", "ZEO", "RelStorage"],
    "system.os.is_docker": ["true", "false"],
    "system.command.executed": list(COMMAND_NAMES),
    "system.command.errored": ["cron"],
}

# Amounts, sums, HTML, free text, over-long strings, wrong types: never stored.
ALWAYS_BAD = [
    "12.50",
    "€ 1,234.56",
    -5,
    1.5,
    None,
    True,
    ["en"],
    {"amount": 1},
    "<script>alert(1)</script>",
    "x" * 5000,
    "My savings account",
    "",
]

BAD = {
    "system.users.count": ["3", 10_000_001, -1, 2.0],
    "config.default_language": ["xx", "EN", "en_US", "klingon"],
    "user.preferences.language": ["zz"],
    "user.preferences.locale": ["en", "xx_YY", "equal", "en-US"],
    "system.python.version": ["3", "3.11", "python 3.11.7", "3.11.7; rm -rf /"],
    "system.os.version": ["Linux 6.1.0-13-amd64 #1 SMP PREEMPT_DYNAMIC Debian", "1234"],
    "system.database.driver": ["PostgreSQL 15.4", "filestorage"],
    "system.os.is_docker": ["yes", "True", "1"],
    "system.command.executed": ["cron --force", "rm", "fftelemetry cron development.ini"],
    "system.command.errored": ["unknown"],
}


def test_good_and_bad_tables_cover_the_whole_catalog():
    assert set(GOOD) == set(catalog.CATALOG) == set(BAD)


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in GOOD.items() for v in vs])
def test_good_values_pass(key, value):
    entry, validated = catalog.validate(key, value)
    assert entry.key == key
    assert validated == value


@pytest.mark.parametrize(
    "key,value",
    [(k, v) for k, vs in BAD.items() for v in vs]
    + [(k, v) for k in catalog.CATALOG for v in ALWAYS_BAD],
)
def test_bad_values_are_refused(key, value):
    with pytest.raises(catalog.CatalogError) as info:
        catalog.validate(key, value)
    message = str(info.value)
    assert message.startswith(key + ":")
    assert len(message) < 200  # the refused value is cut short in the message


@pytest.mark.parametrize("key", ["system.balance.total", "", None, "system.users"])
def test_unknown_keys_are_refused(key):
    with pytest.raises(catalog.CatalogError, match="not a telemetry key"):
        catalog.validate(key, 1)


def test_every_entry_is_described():
    for entry in catalog.ENTRIES:
        assert entry.type in catalog.RECORD_TYPES
        assert entry.collected_when and entry.description.endswith(".")
        assert entry.type != catalog.RECURRING or entry.every_days


def test_supported_locales_come_from_babel_and_cover_every_language():
    locales = i18n.supported_locales()
    assert {code.split("_")[0] for code in locales} == set(i18n.SUPPORTED_LANGUAGES)
    for language in i18n.SUPPORTED_LANGUAGES:
        assert i18n.default_locale(language) in locales
    assert i18n.resolve_locale("nl", i18n.SAME_AS_LANGUAGE) == "nl_NL"
    assert i18n.resolve_locale("nl", "nl_BE") == "nl_BE"
    assert dict(i18n.language_choices())["de"] == "Deutsch"
    assert dict(i18n.locale_choices())["en_GB"] == "English (United Kingdom)"
    assert "en_Dsrt" not in locales  # a script (Deseret), not a territory: no formats of its own


def test_languages_are_offered_in_their_own_names_alphabetically():
    names = [name for _, name in i18n.language_choices()]
    assert names[:3] == ["Deutsch", "English", "español"] and len(names) == 8
    assert names == sorted(names, key=str.casefold)


@pytest.mark.parametrize("sign", ["", "-"])
def test_a_count_out_of_range_is_shown_cut_with_its_length(sign):
    # json.loads takes a number of 4,300 digits: the receiver's 400 repeated all of them
    with pytest.raises(catalog.CatalogError) as info:
        catalog.validate("system.users.count", int(f"{sign}1{'0' * 4000}"))
    assert str(info.value) == (
        f"system.users.count: count {sign}1{'0' * (39 - len(sign))}… ({4001 + len(sign):,} "
        f"characters) out of range 0..{catalog.MAX_USERS}"
    )


# A refusal names the value and what the key takes: the receiver's 400 and a dropped value's log
# line carry it, for whoever finds the sender's bug.
TAKES = {
    "system.users.count": "expected a whole number, got str",
    "config.default_language": "'xx' is not a supported language",
    "user.preferences.language": "'zz' is not a supported language",
    "user.preferences.locale": "'en' is not a supported locale",
    "system.python.version": "'3' is not a valid Python version",
    "system.os.version": "'Linux 6.1.0-13-amd64 #1 SMP PREEMPT_DYNA…' (50 characters) is not a "
    "valid OS version",
    "system.database.driver": "'PostgreSQL 15.4' is not a supported database driver",
    "system.os.is_docker": "'yes' is not a supported true/false value",
    "system.command.executed": "'cron --force' is not a supported console command",
    "system.command.errored": "'unknown' is not a supported console command",
}


@pytest.mark.parametrize("key", sorted(TAKES))
def test_a_refusal_names_the_value_and_what_the_key_takes(key):
    with pytest.raises(catalog.CatalogError) as info:
        catalog.validate(key, BAD[key][0])
    assert str(info.value) == f"{key}: {TAKES[key]}"
