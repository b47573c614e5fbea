"""`/telemetry`: what telemetry means for the people it is about, for anyone to read.

The register page links here before anyone has an account, so it needs no login (the root's
VIEW, granted to Everyone). It shows what the admin pages show of the catalog, and none of what
only an administrator may see: not the receiver's address (an internal host name, perhaps a
password in it), the installation id, the counts or the records.
"""

from pyramid.view import view_config

from ..resources import Root
from ..telemetry.status import days_word
from .admin_telemetry import catalog_table


def every(days):
    return "every day" if days == 1 else f"every {days} days"


@view_config(
    context=Root,
    name="telemetry",
    request_method="GET",
    renderer="fftelemetry:templates/about_telemetry.page",
)
def about_telemetry(context, request):
    return {
        "page_title": "About telemetry",
        "enabled": request.telemetry.enabled,  # the switch the collector itself obeys
        "sent_every": every(request.app_settings.interval_days),
        "keep_days": request.app_settings.keep_submitted_days,
        "catalog_table": catalog_table(),
        "days_word": days_word,
    }
