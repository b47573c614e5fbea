"""An OSError's text as a console or log line quotes it: both of its files, as they are."""

import os

import pytest

from fftelemetry.shown import error_text


@pytest.mark.parametrize("as_bytes", [False, True])
def test_an_error_on_two_files_names_both_as_they_are(tmp_path, as_bytes):
    # A rename names both files (a pack swaps Data.fs for the packed copy); a bytes path is
    # decoded, where str() would write b'...'
    source, target = tmp_path / "Data.fs.pack", tmp_path / "Data.fs"
    with pytest.raises(OSError) as refused:
        if as_bytes:
            os.rename(os.fsencode(source), os.fsencode(target))
        else:
            os.rename(source, target)
    assert error_text(refused.value) == (
        f"[Errno 2] No such file or directory: '{source}' -> '{target}'"
    )
