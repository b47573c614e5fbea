"""Fixtures for the browser-facing tests: one real app per test, and browsers (WebTest apps with
their own cookie jars) signed in as the administrator, an ordinary user, or nobody.

Passwords are hashed with argon2's cheapest profile here (`fftelemetry.password_profile`), so a
registration costs a millisecond rather than a tenth of a second.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

# Chameleon compiles every template anew for each app (one app per test: ~0.8 s); its disk cache,
# keyed by the templates' digests, makes that once per change. Must be set before Chameleon loads,
# which happens when the first app is made.
_CHAMELEON_CACHE = Path(tempfile.gettempdir()) / "fftelemetry-chameleon-cache"
_CHAMELEON_CACHE.mkdir(exist_ok=True)
os.environ.setdefault("CHAMELEON_CACHE", str(_CHAMELEON_CACHE))

import pytest  # noqa: E402
import webtest  # noqa: E402

from fftelemetry.scripting import request_environment  # noqa: E402

FAST_HASHING = {"fftelemetry.password_profile": "cheapest"}
PASSWORD = "correct horse battery"
ADMIN_EMAIL = "owner@example.org"
USER_EMAIL = "member@example.org"


class Site:
    """A running app and what tests do with it."""

    def __init__(self, app):
        self.app = app

    def browser(self):
        return webtest.TestApp(self.app)

    def register(self, email, password=PASSWORD, wizard=("en", "equal")):
        """A browser signed in as a newly registered user, wizard finished unless `wizard` is
        None."""
        browser = self.browser()
        form = browser.get("/register").forms["register"]
        form["email"], form["password"] = email, password
        welcome = form.submit(status=303).follow(status=200)
        assert f"Welcome! Your account {email.lower()} is ready." in welcome.text
        if wizard is not None:
            finish_wizard(welcome, *wizard)
        return browser

    @contextmanager
    def root(self):
        """The application root in a transaction of its own, committed at the end."""
        with request_environment(self.app.registry) as env:
            yield env["root"]

    @contextmanager
    def store(self):
        with self.root() as root:
            yield root["admin"]["telemetry"].store

    def counts(self):
        with self.store() as store:
            return store.counts()

    def seed(self, count, start=1000, submitted=0):
        """`count` feature records straight into the store (values start, start+1, ...), then
        the oldest `submitted` pending records marked submitted; returns the new records' ids."""
        with self.store() as store:
            records = [store.add_feature("system.users.count", start + i) for i in range(count)]
            oldest = [seq for seq, _ in store.pending_batch(submitted)] if submitted else []
            store.mark_submitted(oldest, "receiver-uuid-1")
        return [record.id for record in records]


def finish_wizard(page, language="en", locale="equal"):
    form = page.forms["preferences"]
    form["language"], form["locale"] = language, locale
    return form.submit(status=303).follow()


@pytest.fixture
def make_site(make_app):
    def make(**settings):
        return Site(make_app(**FAST_HASHING, **settings))

    return make


@pytest.fixture
def site(make_site):
    return make_site()


@pytest.fixture
def admin(site):
    return site.register(ADMIN_EMAIL)


@pytest.fixture
def member(site, admin):
    return site.register(USER_EMAIL)


@pytest.fixture
def anonymous(site):
    return site.browser()
