import time

from pyramid.testing import DummyRequest
from webob import Response

from fftelemetry.resources.users import MAX_EMAIL, check_email
from fftelemetry.security import (
    CSRF_KEY,
    SESSION_KEY,
    SIGNED_IN_AT,
    SessionJSON,
    session_factory,
)


def test_the_session_json_is_utf8_and_escapes_only_what_utf8_cannot_hold():
    serializer = SessionJSON()
    assert serializer.dumps({"flash": ["😀"]}) == '{"flash":["😀"]}'.encode()  # 4 bytes, not 12
    # a lone surrogate (an undecodable byte Python let through) has no UTF-8: written escaped,
    # as WebOb's serializer wrote everything, instead of failing the response
    assert serializer.dumps({"flash": ["\udcff"]}) == b'{"flash":["\\udcff"]}'
    assert serializer.loads(serializer.dumps({"flash": ["\udcff"]})) == {"flash": ["\udcff"]}
    assert serializer.loads(b'{"flash":["\\u00e9\\ud83d\\ude00"]}') == {"flash": ["é😀"]}


def test_a_lone_surrogate_leaves_the_rest_of_the_session_in_utf8():
    """Escaping all of it would make every other character 6 or 12 bytes again: a session
    holding a long address in another script would pass the cookie's 4 KB."""
    serializer = SessionJSON()
    session = {"auth.userid": "😀" * 240 + "@example.org", "flash": ["in \udcff"]}
    written = serializer.dumps(session)
    assert written == ('{"auth.userid":"' + "😀" * 240 + '@example.org","flash":["in \\udcff"]}'
                       ).encode()
    assert serializer.loads(written) == session


def test_a_message_cut_to_fit_fits_beside_the_biggest_sign_in():
    """An email of MAX_EMAIL bytes that JSON writes as twice as many, and a message of
    characters each written as a six-byte escape: the message's beginning is kept."""
    email = "\\" * (MAX_EMAIL - 5) + "@a.bc"
    check_email(email)  # an address one may register with
    request = DummyRequest(scheme="http")
    session = session_factory("a session secret of some length")(request)
    session.update({"userid": email, SESSION_KEY: "0" * 32, SIGNED_IN_AT: int(time.time())})
    session[CSRF_KEY] = "0" * 32
    session.flash("\x1b" * 5000, "error")

    response = Response()
    session._set_cookie(response)  # as Pyramid does for the response (raises past 4064 bytes)

    assert len(response.headers["Set-Cookie"].split(";")[0]) < 4096
    [message] = session.pop_flash("error")
    assert message.startswith("\x1b" * 300) and message.endswith("\x1b…")


def test_a_response_that_set_a_policy_header_itself_gets_ours_once():
    """The headers are appended, not set, where the response has none of them (every response
    here): one that does keeps no second value of its own beside ours."""
    from pyramid.events import NewResponse

    from fftelemetry.security import BROWSER_POLICY, add_browser_policy

    response = Response(headers={"x-frame-options": "SAMEORIGIN", "Cache-Control": "max-age=60"})
    add_browser_policy(NewResponse(DummyRequest(), response))
    for name, value in BROWSER_POLICY.items():
        assert response.headers.getall(name) == [value], name
    assert response.headers.getall("Cache-Control") == ["max-age=60"]
