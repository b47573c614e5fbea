"""The home page: where to go from here (and the icon browsers ask for)."""

from pathlib import Path

from pyramid.response import FileResponse
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import view_config

from ..resources import Root
from .accounts import registration_open


@view_config(context=Root, request_method="GET", renderer="fftelemetry:templates/home.page")
def home(context, request):
    return {"page_title": "Home", "registration_open": registration_open(request, context["users"])}


ICON = Path(__file__).resolve().parent.parent / "static" / "favicon.svg"


# see views.Files
@view_config(route_name="favicon", request_method="GET", permission=NO_PERMISSION_REQUIRED)
def favicon(context, request):
    """The icon where browsers look for it unasked (the JSON pages link none): not a 404."""
    response = FileResponse(str(ICON), request=request, content_type="image/svg+xml")
    response.cache_control.max_age = 3600
    return response
