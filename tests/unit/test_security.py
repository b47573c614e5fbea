from fftelemetry.security import SessionJSON


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
