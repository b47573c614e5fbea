"""The admin area's telemetry pages: the status page and the records page."""

from pyramid.view import view_config

from .. import catalog
from ..resources import RecordsView, TelemetryAdmin


@view_config(context=TelemetryAdmin, renderer="fftelemetry:templates/telemetry_status.pt")
def status(context, request):
    return {
        "settings": request.app_settings,
        "store": context.store,
        "counts": context.store.counts(),
        "catalog": catalog.ENTRIES,
    }


@view_config(context=RecordsView, renderer="fftelemetry:templates/telemetry_records.pt")
def records(context, request):
    return {"counts": context.store.counts(), "page": context.store.page()}
