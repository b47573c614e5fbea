"""/health: "OK" for a monitor, with no login and no session."""

import pytest


def test_health_is_ok_in_plain_text_without_a_session(site, admin):
    answer = site.browser().get("/health", status=200)
    assert answer.text == "OK\n" and answer.content_type == "text/plain"
    assert "Set-Cookie" not in answer.headers and answer.headers["Cache-Control"] == "no-store"

    signed_in = admin.get("/health", status=200)  # a signed-in browser's cookie is not re-sent
    assert signed_in.text == "OK\n" and "Set-Cookie" not in signed_in.headers
    assert admin.head("/health", status=200).body == b""


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_health_answers_other_methods_405_in_plain_text(admin, method, caplog):
    # A POST got the 400 page of an expired form (HTML, the session read); OPTIONS got "OK"
    answer = admin.request("/health", method=method, status=405)
    assert answer.text == "Method not allowed: use GET or HEAD\n"
    assert answer.content_type == "text/plain" and answer.headers["Allow"] == "GET, HEAD"
    assert "Set-Cookie" not in answer.headers and not caplog.records
