"""SIGTERM to a test run (a CI job's timeout) stops it as Ctrl-C does (tests/conftest.py): the
fixtures' finalizers run, every one of them, even when it comes as a test is torn down. A real
test run in a subprocess, with this suite's conftest, signalling itself."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

TESTS = '''
import signal
from pathlib import Path

import pytest

DONE = Path(__file__).parent / "done"


def note(what):
    with DONE.open("a") as done:
        done.write(what + "\\n")


@pytest.fixture
def unmounted():  # torn down last: a tmpfs, say
    yield
    note("unmounted")


@pytest.fixture
def stopped():  # torn down first: a server, say
    yield
    for _ in range(SIGTERMS_IN_TEARDOWN):
        signal.raise_signal(signal.SIGTERM)
    note("stopped")
    assert not FAILS_IN_TEARDOWN, "its own error as well"


def test_first(unmounted, stopped):
    for _ in range(SIGTERMS_IN_TEST):
        signal.raise_signal(signal.SIGTERM)
    note("first")


def test_second():
    note("second")
'''


def run_tests(tmp_path, in_test=0, in_teardown=0, fails_in_teardown=False):
    """The run's exit status and what it did, in order."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not this suite's settings
    tests = (f"SIGTERMS_IN_TEST = {in_test}\nSIGTERMS_IN_TEARDOWN = {in_teardown}\n"
             f"FAILS_IN_TEARDOWN = {fails_in_teardown}\n{TESTS}")
    (tmp_path / "test_stopped.py").write_text(tests)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         str(tmp_path / "test_stopped.py")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    done = tmp_path / "done"
    return run.returncode, done.read_text().split() if done.exists() else []


def test_a_sigterm_as_a_test_runs_stops_the_run_and_its_fixtures_are_torn_down(tmp_path):
    assert run_tests(tmp_path, in_test=1) == (
        pytest.ExitCode.INTERRUPTED, ["stopped", "unmounted"]
    )


@pytest.mark.parametrize("fails_in_teardown", [False, True])
def test_a_sigterm_as_a_test_is_torn_down_stops_the_run_once_every_finalizer_ran(
    tmp_path, fails_in_teardown
):
    # raised at once, it cut the first finalizer short and the second never ran; put off, it
    # still stops the run after a finalizer's own error
    assert run_tests(tmp_path, in_teardown=1, fails_in_teardown=fails_in_teardown) == (
        pytest.ExitCode.INTERRUPTED, ["first", "stopped", "unmounted"]
    )


@pytest.mark.parametrize(
    ("sigterms", "done"),
    [
        ({"in_test": 1, "in_teardown": 1}, []),  # the second, as the first's cleanup runs
        ({"in_teardown": 2}, ["first"]),  # the first put off, the second not
    ],
)
def test_a_second_sigterm_ends_the_run_at_once(tmp_path, sigterms, done):
    assert run_tests(tmp_path, **sigterms) == (-signal.SIGTERM, done)
