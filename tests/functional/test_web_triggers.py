"""The catalog's web triggers, done in the browser: on -> exactly the catalog's records,
off -> nothing at all (not even an installation id), repeated -> stored once."""

import pytest

from tests.functional.conftest import ADMIN_EMAIL, USER_EMAIL, finish_wizard

WIZARD_KEYS = ("config.default_language", "user.preferences.language", "user.preferences.locale")


def stored(site):
    """Every record as (key, value), oldest first, and the installation id."""
    with site.store() as store:
        pairs = [(r.key, r.value) for _, r in reversed(store.page(size=10_000))]
        return pairs, store.installation_id


@pytest.fixture(params=["on", "off"])
def switch(request, make_site):
    on = request.param == "on"
    return on, make_site(**{"fftelemetry.send_telemetry": "true" if on else "false"})


def test_registration_counts_users(switch):
    on, site = switch
    site.register(ADMIN_EMAIL, wizard=None)
    site.register(USER_EMAIL, wizard=None)
    records, installation_id = stored(site)
    if on:
        assert records == [("system.users.count", 1), ("system.users.count", 2)]
        assert installation_id is not None
    else:
        assert records == []
        assert installation_id is None


def test_wizard_collects_language_locale_and_default_language(switch):
    on, site = switch
    browser = site.register(ADMIN_EMAIL, wizard=None)
    finish_wizard(browser.get("/welcome"), "nl", "equal")
    records, installation_id = stored(site)
    wizard = [pair for pair in records if pair[0] != "system.users.count"]
    if on:
        assert sorted(wizard) == [
            ("config.default_language", "en"),
            ("user.preferences.language", "nl"),
            ("user.preferences.locale", "nl_NL"),  # "the same as my language", resolved
        ]
    else:
        assert (records, installation_id) == ([], None)


def test_preferences_collect_and_repeats_are_stored_once(switch):
    on, site = switch
    browser = site.register(ADMIN_EMAIL, wizard=("en", "en_GB"))
    for _ in range(2):  # the same choice twice
        form = browser.get("/preferences").forms["preferences"]
        form["language"], form["locale"] = "fr", "fr_CA"
        form.submit(status=303)
    records, installation_id = stored(site)
    if not on:
        assert (records, installation_id) == ([], None)
        return
    assert records.count(("user.preferences.language", "fr")) == 1
    assert records.count(("user.preferences.locale", "fr_CA")) == 1
    assert records.count(("config.default_language", "en")) == 1  # wizard and saves: once
    assert ("user.preferences.locale", "en_GB") in records


def test_refused_preferences_collect_nothing(site, admin):
    before = stored(site)
    form = admin.get("/preferences").forms["preferences"]
    form["language"].force_value("klingon")
    form.submit(status=400)
    assert stored(site) == before


def test_default_language_comes_from_the_installation(make_site):
    site = make_site(**{"pyramid.default_locale_name": "de"})
    site.register(ADMIN_EMAIL, wizard=("fr", "fr_FR"))
    records, _ = stored(site)
    assert ("config.default_language", "de") in records


def test_refused_registration_collects_nothing(site):
    browser = site.browser()
    form = browser.get("/register").forms["register"]
    form["email"], form["password"] = "nobody", "short"
    form.submit(status=400)
    assert stored(site) == ([], None)


def test_the_wizard_sent_again_once_finished_saves_and_collects(site):
    # the wizard open in a second tab, sent after the first finished it: a choice like any
    # other, saved and collected, not dropped by the redirect that a finished wizard's GET gets
    browser = site.register(ADMIN_EMAIL, wizard=None)
    second_tab = browser.get("/welcome")
    finish_wizard(browser.get("/welcome"), "nl", "equal")
    form = second_tab.forms["preferences"]
    form["language"], form["locale"] = "fr", "fr_CA"
    assert form.submit(status=303).location == "http://localhost/"
    with site.root() as root:
        user = root["users"][ADMIN_EMAIL]
        assert (user.language, user.locale) == ("fr", "fr_CA")
    records, _ = stored(site)
    assert ("user.preferences.language", "fr") in records
    assert ("user.preferences.locale", "fr_CA") in records
