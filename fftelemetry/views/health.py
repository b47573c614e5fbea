"""`/health`: whether this process serves and reaches its database, for a load balancer, an
uptime monitor or a container's health check (Firefly III answers its `/health` the same way).

No login, no session (no cookie is read or sent) and no template: "OK" in plain text, or a 503.
Reaching the root proves a FileStorage (or RelStorage, which asks its database at each
transaction); a ZEO client may answer from its cache while its server is away, so it is also
asked whether it is connected, and says so in plain text without a log line: a monitor asking
every few seconds would otherwise fill the log through an outage that its own alert reports.
A root not in the cache, or RelStorage's PostgreSQL server gone (the start of each transaction
asks it), fails before this view: the error view answers the same 503, without a line either.
Any method but GET and HEAD is a 405 in plain text, which names the methods to use.
"""

from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from ..resources import Root
from ..scripting import zeo_server_away
from .errors import unavailable_in_plain_text


@view_config(
    context=Root, name="health", request_method=("GET", "HEAD"), permission=NO_PERMISSION_REQUIRED
)
def health(context, request):
    if zeo_server_away(request.registry):
        return unavailable_in_plain_text()
    return Response("OK\n", content_type="text/plain")


@view_config(context=Root, name="health", permission=NO_PERMISSION_REQUIRED, require_csrf=False)
def health_other_methods(context, request):
    """A monitor set up to POST (or PUT, OPTIONS...): a 405 that says what to use, with Allow.
    Without this view a POST got the HTML page of a form whose token has expired (the CSRF
    check of every POST: none is needed where nothing is changed), which read the session."""
    response = Response(
        "Method not allowed: use GET or HEAD\n", status=405, content_type="text/plain"
    )
    response.allow = ("GET", "HEAD")
    return response
