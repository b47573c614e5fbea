"""The application's request class, with everything the application hangs on a request.

Pyramid's `add_request_method(..., reify=True)` makes a new subclass of the request's class on
every request to carry such properties, and an attribute lookup on an instance of a class that
new misses CPython's type cache: the whole request gets slower, not just the property. Declared
once on this class, the same properties cost nothing per request (see docs/performance.md).
"""

from contextlib import suppress
from urllib.parse import unquote_to_bytes

import pyramid_tm
from pyramid.decorator import reify
from pyramid.httpexceptions import HTTPBadRequest, HTTPNotFound
from pyramid.request import Request
from webob.cookies import RequestCookies, parse_cookie

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


def reject_undecodable_address(event):
    """A NewRequest subscriber: an address whose path or query is not UTF-8 (`/%ff`,
    `?came_from=%ff`) is a 400. Left to go on, it fails wherever it is first read (route
    matching, a view, the error page's own log line) and ends in a 500 with a traceback in the
    log, or waitress's bare 500, for a request anyone can send."""
    request = event.request
    try:
        request.path_info  # noqa: B018 - decoding is the check
        if request.environ.get("QUERY_STRING"):
            request.GET  # noqa: B018
    except UnicodeDecodeError:
        raise HTTPBadRequest("the address is not valid UTF-8") from None


def no_subpath(event):
    """A ContextFound subscriber: traversal hands a view the segments past its name as a
    subpath, which no view here (the app's or the receiver's) takes. /preferences/foo is a 404,
    not the preferences page under another address, and a batch POSTed to the receiver's
    /submit/foo is not stored."""
    request = event.request
    if request.subpath and request.matched_route is None:  # static files come by route
        raise HTTPNotFound()


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def reject_undecodable_form(event):
    """A NewRequest subscriber: a form (a body WebOb would parse as one) that is not UTF-8 is a
    400. WebOb raises an exception of its own for a form sent in another charset (`Content-Type:
    application/x-www-form-urlencoded; charset=latin-1`: a 500 with a traceback), and reads bytes
    that are not UTF-8 (`email=%ff@x.org`) as U+FFFD: an account registered under a name nobody
    typed. No form here uploads a file, so all of a multipart body is text, and a file in one is
    a 400 (a view would be handed WebOb's FieldStorage: a 500). A multipart body that WebOb
    cannot parse (no boundary) is a 400 as well: it raised a ValueError, a 500."""
    request = event.request
    content_type = request.content_type
    if content_type not in FORM_TYPES and (content_type or request.method != "POST"):
        return  # not a form: WebOb will not parse it as one
    if request.charset != "UTF-8":
        raise HTTPBadRequest("the form is not sent as UTF-8")
    body = request.body
    if content_type != "multipart/form-data":
        body = unquote_to_bytes(body.replace(b"+", b" "))
    try:
        body.decode()
    except UnicodeDecodeError:
        raise HTTPBadRequest("the form is not valid UTF-8") from None
    try:
        form = request.POST  # parsing is the check (WebOb keeps what it parsed)
    except ValueError:
        raise HTTPBadRequest("the form cannot be read") from None
    if not all(isinstance(value, str) for value in form.values()):  # a file: no form takes one
        raise HTTPBadRequest("the form cannot be read")


def drop_unreadable_cookies(request):
    """One cookie whose value is not UTF-8 once unquoted (`a="\\377"`, plain ASCII; another
    application on the same host may set it) made WebOb fail on reading any cookie, the session's
    too, and the error page read them again: waitress's bare 500 on every page for as long as the
    browser kept it. Such a cookie is not ours: it is dropped, and the others (the session) are
    read as usual. The session factory calls this: only the session reads cookies.

    The header is written once: set one by one in request.cookies (WebOb scans and copies the
    whole header for each), the 40,000 cookies that fit in waitress's header limit held a worker
    204 s for one request."""
    try:
        request.cookies.get("")  # decoding them all is the check
    except UnicodeDecodeError:
        readable = {}  # a name sent twice keeps its first place and its last value, as WebOb's
        for name, value in parse_cookie(request.environ["HTTP_COOKIE"]):
            with suppress(UnicodeDecodeError):
                readable[name.decode()] = value.decode()
        request.environ["HTTP_COOKIE"] = "; ".join(
            quoted_cookie(name, value) for name, value in readable.items()
        )


def quoted_cookie(name, value):
    """`name=value` as WebOb writes it into a Cookie header, quoted again as WebOb reads it."""
    environ = {}
    RequestCookies(environ)[name] = value
    return environ["HTTP_COOKIE"]
