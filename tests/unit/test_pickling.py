"""Our exceptions with an __init__ of their own survive pickle, as a multiprocessing pool's result
carries them: unpickling calls the class with its args, and an __init__ that takes more than it
passes on failed with a TypeError; the notes (add_note) come back too. (A StorageError's, such as
retention.ExpiryStopped, is pickled by ZODB's POSError.__reduce__; a QueueHandler's record carries
none, its prepare() formats the traceback into the message.)"""

import pickle
from datetime import UTC, datetime

import pytest

from fftelemetry.opening import DatabaseInUse
from fftelemetry.resources.users import AccountError
from fftelemetry.telemetry.sender import SubmissionInterrupted


def stopped_with_a_lost_server():
    stopped = SubmissionInterrupted(3000, datetime(2026, 1, 1, tzinfo=UTC))
    stopped.server_lost = "the ZEO server cannot be reached"
    return stopped


@pytest.mark.parametrize(
    ("make", "fields"),
    [
        (lambda: AccountError("Please enter a valid email address.", "email"), ["field"]),
        (stopped_with_a_lost_server, ["sent", "at", "server_lost"]),
        (lambda: DatabaseInUse("fftelemetry: the database is in use", "the database"), ["held"]),
    ],
)
def test_an_exception_comes_back_whole_from_pickle(make, fields):
    original = make()
    original.add_note("while opening app.ini")  # as a caller adds what it was doing
    copy = pickle.loads(pickle.dumps(original))  # noqa: S301 - our own bytes
    assert type(copy) is type(original)
    assert str(copy) == str(original)  # what a page or a log line shows
    names = [*fields, "__notes__"]
    assert [getattr(copy, name) for name in names] == [getattr(original, name) for name in names]
