"""Text from outside (a request's address or method, a receiver's answer, an exception naming a
file) as it goes into a log or console line.

Escaped once, where the line is written: a message quotes what it names as it is, '...', and
never repr()s it, since shown() writes a backslash \\\\ and a repr()'d backslash would come out
doubled."""

import os

# Outside text in a log line (a request line, an error's text) is cut to this: no address of
# ours is a tenth of it, and waitress takes a request line up to its 256 KB header limit.
LOGGED_CHARS = 300
# An exception's own text (and each note) in a logged traceback is cut to this: more than a log
# line's, since a bug is found by reading it, and a library's text quotes what a log line would,
# with its own words around it, often twice (requests' "Max retries exceeded" for a host of 39
# characters, 364). A repr() of a request's body in it would be a line of a megabyte.
TRACEBACK_CHARS = 1000
# A refused value a message quotes (a setting, a record's value) is cut to this: enough to
# recognise it, where a 5,000-digit number made a line of 5,000.
QUOTED_CHARS = 40


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
    return _cut("".join(pieces), text)


def quoted(value, limit=QUOTED_CHARS, mark="'"):
    """`value` as a message quotes it, '...', cut past `limit` characters: '1000…' (401
    characters). Not escaped: the line that writes the message does, with shown(), and escaped
    here too each backslash would double. `mark=""` for a number, which is not quoted, or
    for what a message names unquoted (the method and address in the receiver's 404)."""
    text = str(value)
    if len(text) <= limit:
        return f"{mark}{text}{mark}"
    return _cut(text[:limit], text, mark)


def _cut(kept, text, mark=""):
    """What is kept of a cut text, then how long it was: "..." alone could be the text's own
    end, and the length says how much is missing."""
    return f"{mark}{kept}…{mark} ({len(text):,} characters)"


def error_text(exc):
    """An exception's text for shown(): an OSError's file names quoted as they are, where its
    str() repr()s them (the path C:\\dir would come out with four backslashes)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        names = (name for name in (exc.filename, exc.filename2) if name is not None)
        files = " -> ".join(f"'{_file_name(name)}'" for name in names)
        return f"[Errno {exc.errno}] {exc.strerror}: {files}"
    return str(exc)


def _file_name(name):
    return os.fsdecode(name) if isinstance(name, str | bytes | os.PathLike) else str(name)


def request_line(request):
    """"GET /path" for a log line, cut to LOGGED_CHARS: the method is whatever text the WSGI
    server hands on. The path is WebOb's, percent-encoded again (PATH_INFO is decoded: /%0a is
    a line break in it, /%5c a backslash), and goes through the same escape."""
    return shown(f"{request.method} {request.path}", LOGGED_CHARS)
