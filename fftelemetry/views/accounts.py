"""Accounts: register, log in and out, the new-user wizard (/welcome) and /preferences.

These views announce what happened with events (fftelemetry.events) and know nothing about
who listens; telemetry is one listener.
"""

import re

from pyramid.csrf import new_csrf_token
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import forget, remember
from pyramid.view import view_config
from urllib3.util import parse_url

from .. import i18n
from ..events import PreferencesChanged, UserRegistered
from ..resources import ACCOUNT, Root
from ..resources.users import MAX_EMAIL, AccountError, normalise_email
from ..security import ended_sign_in
from ..throttle import client_network

# Characters of a came_from, host included. This app's own addresses take some 60 past the host
# (a records page's with its filter and a key); a came_from becomes a Location header of its
# length, three times that escaped in the wizard's address, and a front proxy answers a 502 for
# headers past its buffer (nginx's proxy_buffer_size: 4 KB by default, all headers together).
MAX_CAME_FROM = 500


def safe_next(request, url):
    """`url` if it points into this application, else the home page (no open redirects); home
    too for one longer than MAX_CAME_FROM. What a URI may not hold raw (a space, a backslash,
    "<", a stray "%": RFC 3986) is percent-encoded, as a Location header needs."""
    home = request.application_url + "/"
    if url and not (url.isascii() and url.isprintable()):
        return home  # a Location header holds neither control characters nor raw non-ASCII
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        url = request.application_url + url
    if not (url and url.startswith(home)):
        return home
    # urllib3's parser also lowercases the host and removes dot segments, so home is compared as
    # parsed too: "/app/../x" is outside an app at /app once a browser removes them
    url = as_parsed(url)
    if url.startswith(as_parsed(home)) and len(url) <= MAX_CAME_FROM:
        return url
    return home


# "%2e", which a browser takes for "." in a dot segment (the URL Standard's "%2e%2e" is ".."),
# and urllib3's parser leaves as it is
ENCODED_DOT = re.compile("%2e", re.IGNORECASE)


def as_parsed(url):
    """`url` as urllib3's RFC 3986 parser writes it, its "%2e"s decoded first (RFC 3986 makes
    them "." all the same): "/app/%2e%2e/x" is "/x" here too, as it is to a browser."""
    return parse_url(ENCODED_DOT.sub(".", url)).url


def sign_in(request, user, came_from):
    """Start a fresh session for `user`; a user who has not finished the wizard goes there."""
    request.session.invalidate()
    headers = remember(request, user.email)
    new_csrf_token(request)
    if not user.welcomed:
        came_from = request.resource_url(request.root, "welcome", query={"came_from": came_from})
    return HTTPSeeOther(came_from, headers=headers)


def registration_open(request, users):
    # The first account can always be made: somebody has to own the installation.
    return request.app_settings.allow_registration or len(users) == 0


# A form's page: GET shows it, POST sends it (every view names its methods: see views.errors)
FORM = ("GET", "POST")


@view_config(
    context=Root,
    name="register",
    request_method=FORM,
    renderer="fftelemetry:templates/register.page",
)
def register(context, request):
    users = context["users"]
    if not registration_open(request, users):
        request.response.status = 403
        return {"page_title": "Register", "closed": True, "email": "", "error": None,
                "invalid": ()}
    email, error, invalid = request.POST.get("email", ""), None, ()
    if request.method == "POST":
        try:
            user = users.create(email, request.POST.get("password", ""), request.password_hasher)
        except AccountError as exc:
            error, invalid = str(exc), (exc.field,)
            request.response.status = 400
        else:
            request.registry.notify(UserRegistered(request, user, len(users)))
            response = sign_in(request, user, request.application_url + "/")
            # after sign_in, whose fresh session would drop it
            request.session.flash(f"Welcome! Your account {user.email} is ready.", "info")
            return response
    return {"page_title": "Register", "closed": False, "email": email, "error": error,
            "invalid": invalid}


def throttle_key(request, email):
    """Whom failed logins are counted for (fftelemetry.throttle): the email as the login looks it
    up, and the client's address. REMOTE_ADDR, not client_addr, which believes an X-Forwarded-For
    header anyone may send; behind a proxy, waitress's trusted_proxy sets REMOTE_ADDR from it.
    An IPv6 address is counted by its /64 (throttle.client_network). No account has a longer
    email than MAX_EMAIL: a 60 KB one is kept as a short one."""
    return normalise_email(email)[: MAX_EMAIL + 1], client_network(request.remote_addr)


def seconds(count):
    return "1 second" if count == 1 else f"{count} seconds"


@view_config(
    context=Root, name="login", request_method=FORM, renderer="fftelemetry:templates/login.page"
)
def login(context, request):
    came_from = safe_next(request, request.params.get("came_from"))
    ended = ended_sign_in(request)
    email, error, invalid = request.POST.get("email", ended or ""), None, ()
    if request.method == "POST":
        throttle, key = request.registry.login_throttle, throttle_key(request, email)
        counted = throttle.attempt(*key)  # counted now, cleared if the password is right
        wait = counted.wait
        if wait:
            # The password is not checked: a right guess must not get in now, nor cost argon2.
            request.response.status = 429
            request.response.headers["Retry-After"] = str(wait)
            error = f"Too many login attempts. Please try again in {seconds(wait)}."
            return {"page_title": "Log in", "came_from": came_from, "email": email, "error": error,
                    "invalid": (), "ended": ended}
        password = request.POST.get("password", "")
        try:
            user = context["users"].by_email(email)
            right = user is not None and user.verify_password(password, request.password_hasher)
        except BaseException:
            # Not checked (a lost database server): no guess, and pyramid_retry's rerun of the
            # request, once the server is back, counts it again. Counted, an owner's tries
            # through an outage (each a 503) locked the owner out once the server was back.
            throttle.not_checked(*key, counted.at)
            raise
        if right:
            throttle.succeeded(*key, counted.at)
            return sign_in(request, user, came_from)
        if user is None:
            request.password_hasher.hash(password)  # as slow as a wrong password: no probing
        # which of the two was wrong is not said (no probing for accounts): both are marked
        error, invalid = "Wrong email address or password.", ("email", "password")
        request.response.status = 400
    return {"page_title": "Log in", "came_from": came_from, "email": email, "error": error,
            "invalid": invalid, "ended": ended}


@view_config(context=Root, name="logout", request_method="POST")
def logout(context, request):
    if request.identity is not None:
        request.identity.end_sessions()  # a copied cookie must not outlive the log-out
    headers = forget(request)
    request.session.invalidate()
    request.session.flash("You are logged out.", "info")
    return HTTPSeeOther(request.application_url + "/", headers=headers)


def preferences_form(request, user, wizard):
    """Show the language/locale form, or save it on POST; returns a dict or a redirect."""
    values = {"language": user.language, "locale": user.locale}
    error, invalid = None, ()
    if request.method == "POST":
        values = {key: request.POST.get(key, "") for key in values}
        try:
            user.set_preferences(values["language"], values["locale"])
        except AccountError as exc:
            error, invalid = str(exc), (exc.field,)
            request.response.status = 400
        else:
            user.welcomed = True
            request.registry.notify(PreferencesChanged(request, user, wizard=wizard))
            return None
    return {
        "values": values,
        "error": error,
        "invalid": invalid,
        "languages": i18n.language_choices(),
        "locales": [(i18n.SAME_AS_LANGUAGE, "The same as my language"), *i18n.locale_choices()],
    }


@view_config(
    context=Root,
    name="welcome",
    request_method=FORM,
    permission=ACCOUNT,
    renderer="fftelemetry:templates/preferences.page",
)
def welcome(context, request):
    user = request.identity
    came_from = safe_next(request, request.params.get("came_from"))
    if user.welcomed and request.method != "POST":
        return HTTPSeeOther(request.resource_url(context, "preferences"))
    result = preferences_form(request, user, wizard=True)
    if result is None:
        request.session.flash("Thank you, you are all set.", "info")
        return HTTPSeeOther(came_from)
    return dict(result, page_title="Welcome", wizard=True, came_from=came_from)


@view_config(
    context=Root,
    name="preferences",
    request_method=FORM,
    permission=ACCOUNT,
    renderer="fftelemetry:templates/preferences.page",
)
def preferences(context, request):
    result = preferences_form(request, request.identity, wizard=False)
    if result is None:
        request.session.flash("Your preferences are saved.", "info")
        return HTTPSeeOther(request.resource_url(context, "preferences"))
    return dict(result, page_title="Preferences", wizard=False, came_from=None)
