"""Text from outside (a request's address or method, a receiver's answer, an exception naming a
file) as it goes into a log or console line."""

# Outside text in a log line (a request line, an error's text) is cut to this: no address of
# ours is a tenth of it, and waitress takes a request line up to its 256 KB header limit.
LOGGED_CHARS = 300


def shown(text, limit=None):
    """`text` on one line, every character a terminal would act on written as its escape: a
    line break (a forged log line after it), an escape sequence or a C1 control (it clears the
    screen or rewrites the lines above), a right-to-left override (it turns the text around).
    A backslash is written \\\\, always (in a line with nothing else to escape too), so every
    escape in the line is one: the two characters \\n in a receiver's answer do not read as a
    line break. With a `limit`, cut to that many characters after escaping, and between two
    escapes, never inside one: half of \\U000e0001 reads as another character."""
    text = str(text)
    if text.isprintable() and "\\" not in text and (limit is None or len(text) <= limit):
        return text  # the usual line: two scans, in C
    pieces, length = [], 0
    for ch in text if limit is None else text[:limit]:
        piece = ch if ch.isprintable() and ch != "\\" else ascii(ch)[1:-1]
        if limit is not None and length + len(piece) > limit:
            break
        pieces.append(piece)
        length += len(piece)
    if len(pieces) == len(text):
        return "".join(pieces)
    return f"{''.join(pieces)}... ({len(text)} characters)"


def request_line(request):
    """"GET /path" for a log line, cut to LOGGED_CHARS: the method is whatever text the WSGI
    server hands on. The path is WebOb's, percent-encoded again (PATH_INFO is decoded: /%0a is
    a line break in it, /%5c a backslash), and goes through the same escape."""
    return shown(f"{request.method} {request.path}", LOGGED_CHARS)
