"""/health: "OK" for a monitor, with no login and no session."""


def test_health_is_ok_in_plain_text_without_a_session(site, admin):
    answer = site.browser().get("/health", status=200)
    assert answer.text == "OK\n" and answer.content_type == "text/plain"
    assert "Set-Cookie" not in answer.headers and answer.headers["Cache-Control"] == "no-store"

    signed_in = admin.get("/health", status=200)  # a signed-in browser's cookie is not re-sent
    assert signed_in.text == "OK\n" and "Set-Cookie" not in signed_in.headers
    assert admin.head("/health", status=200).body == b""

