"""Who is signed in, and what they may do (Pyramid 2's ISecurityPolicy, as in Warehouse).

The session remembers a user's normalised email, the account's session key (a log-out changes
the key, which ends every session of the account) and when the user signed in (a sign-in lasts
a week by default, however busy its session); ACLs on the resources decide. Every view
needs a permission (default VIEW) and every POST a CSRF token, so forgetting either on a new
view fails closed.
"""

import hmac
import json
import re
import time

import argon2
from pyramid.authentication import SessionAuthenticationHelper
from pyramid.authorization import ACLHelper, Authenticated, Everyone
from pyramid.csrf import SessionCSRFStoragePolicy
from pyramid.events import NewResponse
from pyramid.interfaces import ISecurityPolicy
from pyramid.request import RequestLocalCache
from pyramid.session import SignedCookieSessionFactory
from zope.interface import implementer

from .request import drop_unreadable_cookies
from .resources import ADMIN_ROLE, VIEW, users_folder

# What a signed-in session holds, under short names: the session cookie (all of it base64, sent
# with every request) is parsed by WebOb's regular expression at ~800 instructions a character.
USERID_PREFIX = ""  # Pyramid's helper keeps the email under PREFIX + "userid"
SESSION_KEY = "k"  # the account's session key when it signed in
SIGNED_IN_AT = "t"  # when it signed in, seconds since the epoch
CSRF_KEY = "c"  # Pyramid's SessionCSRFStoragePolicy's token (32 hex digits)
SESSION_HASHALG = "sha256"  # the cookie's HMAC: 32 bytes, where Pyramid's default sha512 is 64
CLOCK_SKEW_SECONDS = 300
SESSION_AUTH = SessionAuthenticationHelper(USERID_PREFIX)

PROFILES = {
    "default": argon2.profiles.RFC_9106_LOW_MEMORY,
    "cheapest": argon2.profiles.CHEAPEST,
}


def password_hasher(settings):
    """The argon2 hasher for the configured cost (`fftelemetry.password_profile`)."""
    return argon2.PasswordHasher.from_parameters(PROFILES[settings.hashing_profile])


def principals_for(user):
    principals = [Everyone]
    if user is not None:
        principals += [Authenticated, f"user:{user.email}"]
        if user.is_admin:
            principals.append(ADMIN_ROLE)
    return principals


def same_session_key(sent, kept):
    """Whether a session's key is the account's, compared in constant time: the cookie's HMAC
    already keeps a guesser from choosing it, so this is defence in depth. A key that is not an
    ASCII string (none, or another shape from an older cookie) fails closed: compare_digest
    raises for a str that is not ASCII, and the account's key is hex."""
    return isinstance(sent, str) and sent.isascii() and hmac.compare_digest(sent, kept)


@implementer(ISecurityPolicy)
class SecurityPolicy:
    def __init__(self, lifetime_seconds):
        self.lifetime_seconds = lifetime_seconds
        self.session = SESSION_AUTH
        self.acl = ACLHelper()
        # request.identity is asked for by pyramid_tm, the permission check and the layout:
        # look the user up once per request.
        self.identity_cache = RequestLocalCache(self._load_identity)

    def identity(self, request):
        """The signed-in User, or None (also when the account no longer exists)."""
        return self.identity_cache.get_or_create(request)

    def _load_identity(self, request):
        email = self.session.authenticated_userid(request)
        user = None if email is None else users_folder(request).get(email)
        if user is None or user.session_key is None:  # fail closed: see User.session_key
            return None
        if not same_session_key(request.session.get(SESSION_KEY), user.session_key):
            return None
        return user if self._within_lifetime(request.session.get(SIGNED_IN_AT)) else None

    def _within_lifetime(self, signed_in_at):
        # A session from before sign-in times were kept has none: it has to sign in again.
        if not isinstance(signed_in_at, int):
            return False
        # A sign-in time ahead of our clock (another server's clock, fast) may be so by a few
        # minutes, not more: else it would stretch the lifetime by as much.
        return -CLOCK_SKEW_SECONDS <= time.time() - signed_in_at <= self.lifetime_seconds

    def authenticated_userid(self, request):
        user = request.identity
        return None if user is None else user.email

    def permits(self, request, context, permission):
        return self.acl.permits(context, principals_for(request.identity), permission)

    def remember(self, request, userid, **kw):
        """Sign `userid` in: remember the email, the account's current session key and now."""
        self.identity_cache.clear(request)
        user = users_folder(request).get(userid)
        if user is not None and user.session_key is None:
            user.end_sessions()  # an account stored without a key gets its first one
        request.session[SESSION_KEY] = None if user is None else user.session_key
        request.session[SIGNED_IN_AT] = int(time.time())
        return self.session.remember(request, userid, **kw)

    def forget(self, request, **kw):
        self.identity_cache.clear(request)
        return self.session.forget(request, **kw)


def ended_sign_in(request):
    """The email this session was signed in with, if that sign-in has ended without a log-out
    here (its lifetime is over, or the account logged out in another browser); else None."""
    if request.identity is not None:
        return None
    return SESSION_AUTH.authenticated_userid(request)


# What browsers are told on every response: nothing runs but our own files (a value that slipped
# past escaping could not run a script), no other site may frame a page (the delete buttons) or
# receive its forms, and the admin area's addresses are not sent to other sites as referrers.
BROWSER_POLICY = {
    "Content-Security-Policy": (
        "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",  # frame-ancestors, for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


BROWSER_POLICY_NAMES = frozenset(name.lower() for name in BROWSER_POLICY)


def add_browser_policy(event):
    response = event.response
    # Appended to WebOb's header list, read once: its `headers` view scans the whole list for
    # each name it sets or finds, ~3% of the status page's instructions for these five.
    headerlist = response.headerlist
    names = {name.lower() for name, _ in headerlist}
    if names.isdisjoint(BROWSER_POLICY_NAMES):
        headerlist.extend(BROWSER_POLICY.items())
    else:  # a response that set one of them itself gets ours instead
        response.headers.update(BROWSER_POLICY)
    # Pages carry a CSRF token and, for an admin, records (the export and the preview are
    # records): no shared proxy may keep them, nor the browser once its user logs out. Only a
    # response that says how it may be cached (static files, the icon) keeps its own rule.
    if "cache-control" not in names:
        headerlist.append(("Cache-Control", "no-store"))  # not WebOb's parsed cache_control


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class SessionJSON:
    """The session's JSON with every character as UTF-8, one to four bytes; WebOb's escapes all
    but ASCII, six or twelve bytes. A browser keeps no cookie over 4 KB, and Pyramid will not
    send one: a flash naming a receiver's refusal in another script (its 300 characters of
    U+1F600) made "submit now" a bare 500. Cookies written the other way read the same."""

    def dumps(self, appstruct):
        text = json.dumps(appstruct, ensure_ascii=False, separators=(",", ":"))
        try:
            return text.encode()
        except UnicodeEncodeError:
            # a lone surrogate, which UTF-8 has no bytes for (it can only stand in a string):
            # written as its escape, as WebOb's serializer did; the rest stays UTF-8, as small
            return LONE_SURROGATE.sub(lambda found: f"\\u{ord(found[0]):04x}", text).encode()

    def loads(self, bstruct):
        return json.loads(bstruct.decode())


FLASH_QUEUE = "_f_"  # Pyramid keeps a flash queue under this prefix and the queue's name
MAX_FLASHES = 3  # per queue
# One message's bytes in the session's JSON. The cookie's value (at most 4064 characters) is
# base64 of the HMAC (32 bytes) and the JSON: 3,016 bytes. The rest of the session takes ~710
# of them at most: the times, the session key, the CSRF token, the queue's name and an email of
# MAX_EMAIL bytes, each of them a \ that JSON writes as two.
MAX_FLASH_BYTES = 2000
SESSION_JSON = SessionJSON()


def cut_to_fit(msg):
    """`msg`, or as much of its beginning as takes at most MAX_FLASH_BYTES in the session's
    JSON, with "…" at its end: a character there is one to four bytes of UTF-8, or an escape of
    two bytes (a quote, a backslash) or six (a control character, a lone surrogate)."""
    if not isinstance(msg, str) or len(SESSION_JSON.dumps(msg)) <= MAX_FLASH_BYTES:
        return msg
    size = len(SESSION_JSON.dumps("…"))
    for end, char in enumerate(msg):
        size += len(SESSION_JSON.dumps(char)) - 2  # without its quotes
        if size > MAX_FLASH_BYTES:
            return msg[:end] + "…"
    raise AssertionError("unreachable")  # pragma: no cover - the whole did not fit


class FlashesThatFit:
    """Flash messages that cannot take the session cookie past the 4 KB a browser keeps. A
    message waits in the cookie until a page shows it: a client that POSTs again and again
    without loading the page (a script pressing "submit now", a delete without the box ticked)
    made it grow by one each time, and at 4 KB Pyramid refused to send it, after the change was
    committed: waitress's bare 500. A queue keeps its newest MAX_FLASHES messages, and a message
    the same as the one before it once. A cookie still too big (three long refusals in another
    script) loses the oldest messages until it fits; what else the session holds (the sign-in,
    the CSRF token) stays, and is small (MAX_EMAIL). A message is cut to what fits on its own
    (cut_to_fit): one too big for any cookie (a failure naming a receiver's address thousands of
    characters long) would have been dropped whole, the outcome shown to nobody."""

    def flash(self, msg, queue="", allow_duplicate=True):
        msg = cut_to_fit(msg)
        messages = self.get(FLASH_QUEUE + queue, [])
        if messages[-1:] == [msg] or (not allow_duplicate and msg in messages):
            return
        self[FLASH_QUEUE + queue] = [*messages, msg][-MAX_FLASHES:]

    def _set_cookie(self, response):
        # Pyramid's method, not its API: a ValueError for a value over its 4064 bytes. A
        # ValueError with no message left to drop (a bug) is raised as before.
        while True:
            try:
                return super()._set_cookie(response)
            except ValueError:
                if not self._drop_oldest_flash():
                    raise

    def _drop_oldest_flash(self):
        """Drop the oldest message of the queue that holds the most: each queue's newest goes
        last. False when there is none to drop."""
        queues = [key for key in self if key.startswith(FLASH_QUEUE)]
        if not queues:
            return False
        fullest = max(queues, key=lambda key: len(self[key]))
        if len(self[fullest]) > 1:
            self[fullest] = self[fullest][1:]
        else:
            del self[fullest]
        return True


SESSION_COOKIE = "session"
# With fftelemetry.secure_cookies the name binds the cookie to this host: a browser keeps a
# __Host- cookie only if it is Secure, for Path=/ and no Domain, so no other site under the same
# domain (a sibling name) can set one that shadows ours. Not without the setting: a site reached
# over both HTTP and HTTPS keeps one name, which plain HTTP may then neither send nor replace.
HOST_SESSION_COOKIE = "__Host-" + SESSION_COOKIE


def session_cookie_name(secure):
    """The session cookie's name, by fftelemetry.secure_cookies."""
    return HOST_SESSION_COOKIE if secure else SESSION_COOKIE


def session_factory(secret, secure=False):
    """Signed-cookie sessions: eight hours idle, and re-signed at most every ten minutes (not on
    every request, Pyramid's default). `secure` (behind HTTPS) keeps browsers from ever sending
    the cookie over plain HTTP, and names it __Host-session; a request that came over HTTPS gets
    a Secure cookie without it. Flash messages are kept small (FlashesThatFit). A cookie WebOb
    cannot read is dropped first (see fftelemetry.request.drop_unreadable_cookies)."""
    cookie_name = session_cookie_name(secure)

    def session_class(secure):
        cookie_session = SignedCookieSessionFactory(
            secret,
            salt="fftelemetry.session.",
            hashalg=SESSION_HASHALG,
            cookie_name=cookie_name,
            path="/",  # and no domain, as __Host- requires (Pyramid's defaults, said here)
            httponly=True,
            secure=secure,
            samesite="Lax",
            serializer=SESSION_JSON,
            timeout=8 * 3600,
            reissue_time=600,
            # An error page (the transaction aborted) must not carry what that request put in
            # the session: a 503 "not saved" registration would otherwise sign in and welcome an
            # account that does not exist.
            set_on_exception=False,
        )

        class Session(FlashesThatFit, cookie_session):
            def __init__(self, request):
                super().__init__(request)
                # A whole second, as ISession says and as Pyramid keeps `accessed`: a new
                # session's time.time() took 8 more bytes of every cookie, read by nobody.
                self.created = int(self.created)

        return Session

    configured, https_only = session_class(secure), session_class(True)

    def session(request):
        drop_unreadable_cookies(request)
        # An HTTPS site whose ini leaves the setting out (a copy of development.ini behind a
        # proxy): its cookie would go in the clear with the browser's first http:// request,
        # the one the proxy redirects to https.
        return (https_only if request.scheme == "https" else configured)(request)

    return session


def includeme(config):
    settings = config.registry.app_settings
    config.set_session_factory(session_factory(settings.session_secret, settings.secure_cookies))
    config.set_security_policy(SecurityPolicy(settings.session_lifetime_hours * 3600))
    config.set_default_permission(VIEW)
    config.set_default_csrf_options(require_csrf=True)
    config.set_csrf_storage_policy(SessionCSRFStoragePolicy(key=CSRF_KEY))
    config.add_subscriber(add_browser_policy, NewResponse)
    config.registry.password_hasher = password_hasher(settings)
