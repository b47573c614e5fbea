"""The Makefile on a fresh machine: the venv `make run` and `make test` start with."""

import shutil
import subprocess
from pathlib import Path

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def fake_python(path, name, status):
    """A python3 whose `-m venv DIR` makes DIR/bin/python (one that does nothing) and exits with
    `status`, as Debian's does with 1 when python3-venv, which holds ensurepip, is missing."""
    path.write_text(
        "#!/bin/sh\n"
        'mkdir -p "$3/bin" && printf "#!/bin/sh\\n" > "$3/bin/python" && chmod +x "$3/bin/python"\n'
        f'echo {name} > "$3/made-by"\n'
        f"exit {status}\n"
    )
    path.chmod(0o755)
    return path


def make_venv(folder, python):
    return subprocess.run(
        ["make", f"PYTHON={python}", ".venv/bin/python"],
        cwd=folder, capture_output=True, text=True, timeout=60, check=False,
    )


def test_a_venv_that_failed_half_way_is_made_anew(tmp_path):
    shutil.copy(MAKEFILE, tmp_path)
    debian = fake_python(tmp_path / "python3-without-venv", "without-venv", status=1)
    fixed = fake_python(tmp_path / "python3-with-venv", "with-venv", status=0)

    assert make_venv(tmp_path, debian).returncode != 0
    # python3-venv installed, the same command again: it makes the venv, not "up to date"
    again = make_venv(tmp_path, fixed)

    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / ".venv" / "made-by").read_text() == "with-venv\n"


def test_a_failed_venv_removes_nothing_but_what_it_made(tmp_path):
    """VENV may name a folder that was there before (its bin/python missing): a python3 that
    fails, say one not installed, must not take the folder's files with it."""
    shutil.copy(MAKEFILE, tmp_path)
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "notes").write_text("kept\n")
    missing = tmp_path / "python3-not-installed"

    made = subprocess.run(
        ["make", f"PYTHON={missing}", "VENV=tools", "tools/bin/python"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )

    assert made.returncode != 0
    assert (tmp_path / "tools" / "notes").read_text() == "kept\n"
