"""Users and their passwords, without the web app."""

import argon2
import pytest
import transaction
from ZODB.POSException import ConflictError

from fftelemetry import settings
from fftelemetry.i18n import installation_language
from fftelemetry.resources.users import AccountError, Users, normalise_email
from fftelemetry.security import PROFILES, principals_for

CHEAP = argon2.PasswordHasher.from_parameters(PROFILES["cheapest"])


def test_emails_are_normalised():
    assert normalise_email("  Ann@Example.ORG ") == "ann@example.org"
    assert normalise_email(None) == ""


def test_first_user_owns_the_installation_unless_told_otherwise():
    users = Users()
    first = users.create("a@example.org", "long enough", CHEAP)
    second = users.create("b@example.org", "long enough", CHEAP)
    third = users.create("c@example.org", "long enough", CHEAP, admin=True)
    assert (first.is_admin, second.is_admin, third.is_admin) == (True, False, True)
    assert users.owner == "a@example.org"
    assert len(users) == 3
    assert users.by_email(" B@example.org") is second
    assert second.__parent__ is users and second.__name__ == "b@example.org"


@pytest.mark.parametrize(
    ("email", "password"),
    [("no-at-sign", "long enough"), ("a@b", "long enough"), ("a b@c.org", "long enough"),
     ("x" * 250 + "@c.org", "long enough"), ("a@c.org", "short"), ("a@c.org", "x" * 1025)],
)
def test_bad_email_or_password_is_refused(email, password):
    users = Users()
    with pytest.raises(AccountError):
        users.create(email, password, CHEAP)
    assert len(users) == 0 and users.owner is None


# Addresses in a shape no mail system takes: a dot first, last or twice in either part, an empty
# domain label, a label starting or ending with a hyphen.
UNDELIVERABLE = ["..@x.org", ".a@x.org", "a.@x.org", "a..b@x.org", "a@x..org", "a@-x.org",
                 "a@x-.org", "a@.x.org", "a@x.org."]


def test_an_address_in_a_shape_no_mail_system_takes_is_refused_and_others_are_not():
    users = Users()
    for email in UNDELIVERABLE:
        with pytest.raises(AccountError, match="valid email address"):
            users.create(email, "long enough", CHEAP)
    assert len(users) == 0
    taken = ["a.b+tag@x.org", "o'neil_x-y@sub.x-y.org", "jos\u00e9@b\u00fccher.example",
             "\u7528\u6237@\u4f8b\u5b50.\u5e7f\u544a", "a@xn--bcher-kva.example", "a@1.2"]
    for email in taken:
        users.create(email, "long enough", CHEAP)
    assert sorted(users.data) == sorted(taken)


def test_duplicate_is_refused():
    users = Users()
    users.create("a@example.org", "long enough", CHEAP)
    with pytest.raises(AccountError, match="exists already"):
        users.create("A@EXAMPLE.org", "other password", CHEAP)


def test_each_account_has_its_own_session_key_and_a_log_out_changes_it():
    users = Users()
    first = users.create("a@example.org", "long enough", CHEAP)
    second = users.create("b@example.org", "long enough", CHEAP)
    assert len({first.session_key, second.session_key}) == 2
    before = first.session_key
    first.end_sessions()
    assert first.session_key not in (before, None, second.session_key)


def test_password_check_and_rehash_when_the_cost_changes():
    user = Users().create("a@example.org", "long enough", CHEAP)
    assert not user.verify_password("wrong password", CHEAP)
    cheap_hash = user.password_hash
    assert user.verify_password("long enough", CHEAP)
    assert user.password_hash == cheap_hash  # same cost: kept
    stronger = argon2.PasswordHasher.from_parameters(PROFILES["default"])
    assert user.verify_password("long enough", stronger)
    assert user.password_hash != cheap_hash
    assert not stronger.check_needs_rehash(user.password_hash)


def test_a_broken_hash_is_a_wrong_password():
    user = Users().create("a@example.org", "long enough", CHEAP)
    user.password_hash = "not a hash"
    assert not user.verify_password("long enough", CHEAP)


def test_preferences_only_from_the_lists():
    user = Users().create("a@example.org", "long enough", CHEAP)
    assert user.resolved_locale == "en_US"
    user.set_preferences("pt", "equal")
    assert user.resolved_locale == "pt_BR"
    for language, locale in (("xx", "equal"), ("en", "xx_YY"), ("en", None)):
        with pytest.raises(AccountError):
            user.set_preferences(language, locale)
    assert (user.language, user.locale) == ("pt", "equal")


def test_principals():
    users = Users()
    admin = users.create("a@example.org", "long enough", CHEAP)
    member = users.create("b@example.org", "long enough", CHEAP)
    assert principals_for(None) == ["system.Everyone"]
    assert "role:admin" in principals_for(admin)
    assert principals_for(member) == [
        "system.Everyone", "system.Authenticated", "user:b@example.org"]


def test_users_persist_in_the_tree(opened_root):
    root, tm = opened_root
    root["users"].create("a@example.org", "long enough", CHEAP)
    tm.commit()
    conn = root._p_jar.db().open(transaction.TransactionManager())
    try:
        stored = conn.root()["fftelemetry"]["users"].by_email("a@example.org")
        assert stored.verify_password("long enough", CHEAP)
        assert type(stored).__module__ == "fftelemetry.resources.users"
    finally:
        conn.close()


def test_password_cost_setting():
    ini = {"fftelemetry.session_secret": "a-secret-of-sufficient-length"}
    assert settings.load(ini, environ={}).hashing_profile == "default"
    cheap = {**ini, "fftelemetry.password_profile": "cheapest"}
    assert settings.load(cheap, environ={}).hashing_profile == "cheapest"
    with pytest.raises(settings.SettingsError, match="password_profile='weak'"):
        settings.load({**ini, "fftelemetry.password_profile": "weak"}, environ={})


@pytest.mark.parametrize(
    ("configured", "expected"),
    [(None, "en"), ("de", "de"), ("nl_BE", "nl"), ("pt-BR", "pt"), ("tlh", "en")],
)
def test_installation_language(configured, expected):
    assert installation_language({"pyramid.default_locale_name": configured}) == expected


def test_two_first_registrations_at_once_make_one_admin(zodb, opened_root):
    """Both see no users; the second commit conflicts on `owner`, and its retry (what
    pyramid_retry does for a request) sees the first user and makes an ordinary one."""
    opened_root[1].commit()
    managers = [transaction.TransactionManager() for _ in range(2)]
    conns = [zodb.open(tm) for tm in managers]
    try:
        folders = [conn.root()["fftelemetry"]["users"] for conn in conns]
        folders[0].create("a@example.org", "long enough", CHEAP)
        folders[1].create("b@example.org", "long enough", CHEAP)
        managers[0].commit()
        with pytest.raises(ConflictError):
            managers[1].commit()
        managers[1].abort()
        retried = folders[1].create("b@example.org", "long enough", CHEAP)
        managers[1].commit()
        assert not retried.is_admin
        assert folders[1].by_email("a@example.org").is_admin
    finally:
        for conn in conns:
            conn.close()
