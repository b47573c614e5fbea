"""Collecting: the only way a value gets into the telemetry store.

`request.telemetry.collect(key, value)` checks the key and value against the catalog, then stores
a record only if telemetry is on. Off means nothing at all is written, not even the installation
id. A value the catalog refuses raises CatalogError where `fftelemetry.strict_catalog` is on (the
tests) and is logged and dropped otherwise: a telemetry mistake must never break a user's request.
"""

import logging

from .. import catalog
from ..resources import telemetry_store
from ..shown import shown

log = logging.getLogger(__name__)


class Telemetry:
    def __init__(self, request):
        self.request = request
        self.settings = request.app_settings

    @property
    def enabled(self):
        return self.settings.send_telemetry

    @property
    def store(self):
        return telemetry_store(self.request)

    def collect(self, key, value, now=None):
        """Store `value` for the catalog key `key`; returns the new record, or None when
        telemetry is off, the value is known already, or the value was refused."""
        try:
            entry, value = catalog.validate(key, value)
        except catalog.CatalogError as exc:
            if self.settings.strict_catalog:
                raise
            log.warning("telemetry value dropped: %s", shown(exc))
            return None
        if not self.enabled:
            return None
        if entry.type == catalog.FEATURE:
            return self.store.add_feature(key, value, now)
        return self.store.add_recurring(key, value, entry.every_days, now)
