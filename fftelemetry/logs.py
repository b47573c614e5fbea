"""The shipped inis' log format (`[formatter_generic]`'s `class`): a record starts a line, and
nothing else does.

A one-line message escapes the outside text it quotes where it is written (shown). A traceback
is written by Python as it is: an exception whose text quotes a request's path or a header can
hold a line break and, after it, a line just like a record of its own. So here, in every record:
an exception's own text (each line of `ValueError: ...` and its notes, for every exception of a
chain or a group) is escaped as shown() escapes a line, its line breaks written \\n, and cut past
TRACEBACK_CHARS with its length, as shown() cuts; every further line of the record (a frame, a
stack, a library's multi-line message) starts with two spaces, as a traceback's frames already
do; and a character a terminal would act on that is left anywhere is written as its escape. A
record of one line is written as logging.Formatter writes it, byte for byte."""

import logging
import traceback
from collections.abc import Sequence

from .shown import TRACEBACK_CHARS, shown

# Before each line of a record after its first: only a record's first line starts at column 0,
# which is how a reader, `grep '^2026'` and a log shipper's multi-line rule tell records apart.
CONTINUATION = "  "


class Formatter(logging.Formatter):
    """logging.Formatter, for a record of more than one line: see above."""

    def format(self, record):
        # A handler before this one may have left its formatter's traceback text, unescaped, in
        # the record (logging caches it there): this one makes its own, and leaves that be. A
        # record with the text and no exception (a SocketHandler's, unpickled) keeps its text.
        cached = record.exc_text
        if record.exc_info:
            record.exc_text = None
        try:
            text = super().format(record)
        finally:
            record.exc_text = cached
        if text.isprintable():
            return text  # the usual record: one line, nothing to escape
        return f"\n{CONTINUATION}".join(map(escaped, text.split("\n")))

    def formatException(self, ei):
        # as logging.Formatter's print_exception() makes it, whole chain and all
        exception = traceback.TracebackException(type(ei[1]), ei[1], ei[2], compact=True)
        for each in held(exception):
            each.format_exception_only = one_line_each(each)
        return "".join(exception.format()).removesuffix("\n")


def held(exception):
    """The exception and every one it holds: its cause, its context, a group's members."""
    seen, waiting = set(), [exception]
    while waiting:
        each = waiting.pop()
        if each is None or id(each) in seen:
            continue
        seen.add(id(each))
        yield each
        waiting += [each.__cause__, each.__context__, *(each.exceptions or ())]


def one_line_each(exception):
    """An exception's text, each of its lines (`Type: message`, a note) escaped into one, and cut
    past TRACEBACK_CHARS with its length: its message is the part of a traceback that quotes
    outside text. Python splits a note at its line breaks before they reach here, so the notes
    are taken from it and written here whole."""
    format_exception_only = exception.format_exception_only
    notes, exception.__notes__ = exception.__notes__, None

    def escaped_lines(**options):
        for line in format_exception_only(**options):
            yield shown(line.removesuffix("\n"), TRACEBACK_CHARS) + "\n"
        for note in each_note(notes):
            yield shown(note, TRACEBACK_CHARS) + "\n"

    return escaped_lines


def each_note(notes):
    """An exception's __notes__ as Python's traceback reads them: each note's str(), or the
    repr() of notes that are not a sequence; one that fails to convert is said to. A str is
    not a sequence of notes here, as from Python 3.12: 3.11 wrote one line per character."""
    if isinstance(notes, Sequence) and not isinstance(notes, str | bytes):
        return [_converted(note, "note", str) for note in notes]
    return [] if notes is None else [_converted(notes, "__notes__", repr)]


def _converted(value, what, convert):
    try:
        return convert(value)
    except Exception:
        return f"<{what} {convert.__name__}() failed>"


def escaped(line):
    """A line with what a terminal acts on written as its escape, its backslashes as they are:
    a message was escaped where it was written, an exception's text above, and a frame's
    backslashes are its code's."""
    if line.isprintable():
        return line
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in line)
