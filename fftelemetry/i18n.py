"""The languages this application is translated into, and the locales a user may pick.

Only the language list is ours (it names our translations). Which locales exist, and what they are
called, is Babel's knowledge: the locale list is derived from Babel's data, never typed by hand.
"""

from functools import cache

from babel import Locale
from babel.core import get_global
from babel.localedata import locale_identifiers

SUPPORTED_LANGUAGES = ("en", "de", "fr", "nl", "es", "it", "pt", "pl")
DEFAULT_LANGUAGE = "en"
# Firefly III lets a user keep "the same as my language"; telemetry stores what it resolves to.
SAME_AS_LANGUAGE = "equal"


@cache
def supported_locales():
    """Every `ll_TT` locale Babel knows for a supported language (a territory: not a script such
    as en_Dsrt, Deseret, which says nothing about number and date formats), sorted."""
    return tuple(sorted(ident for ident in locale_identifiers() if _territory_locale(ident)))


def _territory_locale(ident):
    """Whether `ident` is `ll_TT`: a supported language and a two-letter territory."""
    language, _, territory = ident.partition("_")
    return language in SUPPORTED_LANGUAGES and len(territory) == 2 and territory.isalpha()


def default_locale(language):
    """The locale Babel thinks most likely for a language (nl -> nl_NL, pt -> pt_BR)."""
    likely = Locale.parse(get_global("likely_subtags")[language])
    return f"{likely.language}_{likely.territory}"


def resolve_locale(language, locale):
    """The concrete locale code for a user's choice; "equal" follows the language."""
    if locale == SAME_AS_LANGUAGE:
        return default_locale(language)
    return locale


# The two lists below are what /preferences and /welcome offer. Babel's data does not change
# while the process runs, so each is made once (naming ~230 locales took ~2.5 ms a page view).


@cache
def language_choices():
    """Each language in its own name, in alphabetical order of those names."""
    names = [(code, Locale.parse(code).get_display_name(code)) for code in SUPPORTED_LANGUAGES]
    return tuple(sorted(names, key=lambda choice: choice[1].casefold()))


@cache
def locale_choices():
    """Each supported locale with its name in English, in the order of supported_locales()."""
    return tuple(
        (code, Locale.parse(code).get_display_name("en")) for code in supported_locales()
    )


def is_supported_language(code):
    return isinstance(code, str) and code in SUPPORTED_LANGUAGES


def is_supported_locale(code):
    return isinstance(code, str) and code in supported_locales()


def installation_language(registry_settings):
    """The installation's default language: the language of `pyramid.default_locale_name`
    when we support it, else DEFAULT_LANGUAGE."""
    name = str(registry_settings.get("pyramid.default_locale_name") or "")
    language = name.replace("-", "_").split("_")[0].lower()
    return language if is_supported_language(language) else DEFAULT_LANGUAGE
