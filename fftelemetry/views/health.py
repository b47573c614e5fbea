"""`/health`: whether this process serves and reaches its database, for a load balancer, an
uptime monitor or a container's health check (Firefly III answers its `/health` the same way).

No login, no session (no cookie is read or sent) and no template: "OK" in plain text, or a 503.
Reaching the root proves a FileStorage (or RelStorage, which asks its database at each
transaction); a ZEO client may answer from its cache while its server is away, so it is also
asked whether it is connected, and says so in plain text without a log line: a monitor asking
every few seconds would otherwise fill the log through an outage that its own alert reports.
A root not in the cache fails to load first, and gets the error views' 503 page (and its line).
"""

from pyramid.response import Response
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from ..resources import Root
from .errors import zeo_disconnected


@view_config(context=Root, name="health", permission=NO_PERMISSION_REQUIRED)
def health(context, request):
    if zeo_disconnected(request):
        response = Response("Database unavailable\n", status=503, content_type="text/plain")
        response.retry_after = 30
        return response
    return Response("OK\n", content_type="text/plain")
