"""The receiver's two views: POST /submit and the JSON counts."""

from pyramid.view import view_config

from ..resources.store import utcnow
from .resources import Receiver
from .validation import Invalid, parse_batch


@view_config(context=Receiver, name="submit", request_method="POST", renderer="json")
def submit(context, request):
    limit = request.registry.settings["receiver.max_body_bytes"]
    try:
        if request.content_length is not None and request.content_length > limit:
            raise Invalid(f"the body is larger than {limit} bytes", status=413)
        body = request.body
        if len(body) > limit:  # no Content-Length (chunked): measured after reading
            raise Invalid(f"the body is larger than {limit} bytes", status=413)
        records = parse_batch(body, request.registry.settings["receiver.max_records"])
    except Invalid as exc:
        request.response.status_int = exc.status
        return exc.as_json()
    return {"uuid": context.accept(records, utcnow())}


@view_config(context=Receiver, request_method="GET", renderer="json")
@view_config(context=Receiver, name="stats", request_method="GET", renderer="json")
def stats(context, request):
    return context.stats()
