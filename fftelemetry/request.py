"""The application's request class, with everything the application hangs on a request.

Pyramid's `add_request_method(..., reify=True)` makes a new subclass of the request's class on
every request to carry such properties, and an attribute lookup on an instance of a class that
new misses CPython's type cache: the whole request gets slower, not just the property. Declared
once on this class, the same properties cost nothing per request (see docs/performance.md).
"""

import pyramid_tm
from pyramid.decorator import reify
from pyramid.httpexceptions import HTTPBadRequest
from pyramid.request import Request

from .telemetry.collector import Telemetry


class AppRequest(Request):
    @reify
    def tm(self):
        """pyramid_tm's transaction manager for this request (`main` keeps pyramid_tm from
        adding it per request)."""
        return pyramid_tm.create_tm(self)

    @reify
    def app_settings(self):
        """The settings resolved at start-up (`fftelemetry.settings.load`)."""
        return self.registry.app_settings

    @reify
    def telemetry(self):
        """The one way to collect a value: `request.telemetry.collect(key, value)`."""
        return Telemetry(self)

    @reify
    def password_hasher(self):
        """The argon2 hasher for the configured cost."""
        return self.registry.password_hasher


def use_app_request(config):
    """Make AppRequest the request class. Call it in the top-level configuration, after
    `config.include("pyramid_tm")`, not from an includeme: declaring `tm` there without a
    callable overrides pyramid_tm's add_request_method (the including configuration wins),
    which would otherwise give every request a class of its own."""
    config.set_request_factory(AppRequest)
    config.add_request_method(None, "tm")


def reject_undecodable_path(event):
    """A NewRequest subscriber: an address that is not UTF-8 (`/%ff`) is a 400. Left to go on,
    it fails wherever the path is first read (route matching, the error page's own log line),
    and ends in waitress's bare 500 with a traceback, for a request anyone can send."""
    try:
        event.request.path_info  # noqa: B018 - decoding it is the check
    except UnicodeDecodeError:
        raise HTTPBadRequest("the address is not valid UTF-8") from None
