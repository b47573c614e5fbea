"""Telemetry's side of the account events: the web triggers of the catalog.

Each handler only calls `request.telemetry.collect`, which does nothing while telemetry is off
and stores a feature value once.
"""

from .. import i18n
from ..events import PreferencesChanged, UserRegistered


def user_registered(event):
    event.request.telemetry.collect("system.users.count", event.user_count)


def preferences_changed(event):
    request, user = event.request, event.user
    collect = request.telemetry.collect
    collect("user.preferences.language", user.language)
    collect("user.preferences.locale", user.resolved_locale)
    collect("config.default_language", i18n.installation_language(request.registry.settings))


def includeme(config):
    config.add_subscriber(user_registered, UserRegistered)
    config.add_subscriber(preferences_changed, PreferencesChanged)
