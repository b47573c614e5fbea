"""Views, one module per area. `config.scan('.views')` in `main` registers them."""

from pyramid.csrf import get_csrf_token
from pyramid.events import BeforeRender, ContextFound, NewRequest
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.static import static_view

from ..request import no_subpath, reject_undecodable_address, reject_undecodable_form


def add_template_globals(event):
    """What layout.pt needs on every page: the signed-in user, the CSRF token, flash messages."""
    request = event["request"]
    if request is None:  # render() outside a request
        return
    given = event.rendering_val if isinstance(event.rendering_val, dict) else {}
    if "user" not in given:  # a page given its user (None) must not load one
        event.setdefault("user", request.identity)
    event.setdefault("csrf_token", lambda: get_csrf_token(request))
    event.setdefault("pop_flash", lambda queue="": pop_flash(request.session, queue))


def pop_flash(session, queue):
    """The queue's messages, emptied. Only a queue that holds some is popped: popping marks the
    session changed, and a changed session is re-signed and re-sent as a cookie."""
    return session.pop_flash(queue) if session.peek_flash(queue) else []


class Files:
    """The context of the static files and the icon. Not the persistent tree: without a factory
    of its own a route's context is the application root, so every stylesheet, script and icon
    took a database connection and looked the root up, and while a ZEO server was away (a fresh
    process, nothing cached) each waited `wait_timeout` for a 503: the 503 page's own stylesheet
    too."""


def files(request):
    return FILES


FILES = Files()


def includeme(config):
    config.include(".rendering")
    config.include(".admin_telemetry")
    # add_static_view's, but with a request_method: it gives its view none, and served a PUT
    config.add_route("static", "/static/*subpath", factory=files)
    config.add_view(
        static_view(
            "fftelemetry:static",
            cache_max_age=3600,
            use_subpath=True,
            reload=config.registry.settings["pyramid.reload_assets"],
        ),
        route_name="static",
        request_method="GET",
        permission=NO_PERMISSION_REQUIRED,
    )
    config.add_route("favicon", "/favicon.ico", factory=files)
    config.add_subscriber(add_template_globals, BeforeRender)
    config.add_subscriber(no_subpath, ContextFound)
    config.add_subscriber(reject_undecodable_address, NewRequest)
    config.add_subscriber(reject_undecodable_form, NewRequest)
