"""The home page: where to go from here."""

from pyramid.view import view_config

from ..resources import Root
from .accounts import registration_open


@view_config(context=Root, renderer="fftelemetry:templates/home.pt")
def home(context, request):
    return {"registration_open": registration_open(request, context["users"])}
