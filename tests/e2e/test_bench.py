"""scripts/bench.py still runs: its requests-per-second part, the quickest, prints every figure.

Figures are not judged here (the brief keeps timings out of the test suite); only that the
benchmark works, so a change that breaks it is seen before someone needs its numbers."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .harness import child_environment

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench.py"
FIGURES = ("hello_rps", "stack_rps", "untemplated_rps", "status_rps", "stack_vs_hello",
           "untemplated_vs_hello", "status_vs_stack", "status_vs_hello")


def test_bench_status_prints_its_figures(tmp_path):
    # run by an operator whose shell exports the app's variables: the benchmark's own databases
    # all the same, not the operator's
    operators = tmp_path / "operators.fs"
    exported = {"ZODBCONN_URI": f"file://{operators}", "SEND_TELEMETRY": "false"}
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "status"],
        capture_output=True, text=True, timeout=300, env=child_environment(exported),
        check=False,
    )
    assert not operators.exists()
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr == ""  # no stray warnings in the middle of the figures
    figures = dict(line.split(": ", 1) for line in run.stdout.splitlines()[1:])
    assert tuple(figures) == FIGURES
    for name, text in figures.items():
        value, unit = text.split()
        assert float(value) > 0, name
        assert unit == ("ratio" if "_vs_" in name else "req/s"), name


def test_bench_refuses_an_unknown_measurement():
    run = subprocess.run(
        [sys.executable, str(BENCH), "--only", "everything"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 2
    assert "invalid choice: 'everything'" in run.stderr


INSTRUCTIONS = BENCH.with_name("instructions.py")


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instructions_counts_requests():
    run = subprocess.run(
        [sys.executable, str(INSTRUCTIONS), "--requests", "20", "wsgi", "hello"],
        capture_output=True, text=True, timeout=300, env=child_environment(), check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    counts = dict(line.split(": ", 1) for line in run.stdout.splitlines())
    assert list(counts) == ["wsgi_instructions", "hello_instructions"]
    wsgi, hello = (int(text.removesuffix(" k per request").replace(",", "")) for text in
                   counts.values())
    assert 0 < wsgi < hello  # Pyramid's "hello" costs more than the loop alone


def test_instructions_builds_the_status_page_with_ten_submissions():
    # The child's part without valgrind (under it, the set-up alone takes a minute): the app
    # as the benchmark's, signed in, ten submissions logged through the store, its page checked
    # for ten rows, then called as the count would call it.
    run = subprocess.run(
        [sys.executable, str(INSTRUCTIONS), "--child", "status_10_submissions", "--requests", "2"],
        capture_output=True, text=True, timeout=120, env=child_environment(), check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == ""


def test_instructions_refuses_an_unknown_kind():
    run = subprocess.run(
        [sys.executable, str(INSTRUCTIONS), "everything"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 2
    assert "no such kind: everything" in run.stderr
