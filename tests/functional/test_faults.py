"""A database that cannot write (a full disk, simulated with RLIMIT_FSIZE: every write past the
limit fails with EFBIG, as a full disk's fail with ENOSPC) gives a clear page and loses nothing."""

import resource
import signal
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_size_limit(nbytes):
    """No file of this process may grow past `nbytes` while the block runs."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)


def data_fs(site):
    return Path(site.app.registry.settings["zodbconn.uri"].removeprefix("file://"))


def test_a_write_error_at_commit_is_a_clear_page_and_loses_nothing(site, admin):
    site.seed(200)
    before = site.counts()
    form = admin.get("/preferences").forms["preferences"]
    form["language"], form["locale"] = "de", "de_AT"

    with file_size_limit(data_fs(site).stat().st_size):
        page = form.submit(status=503)

    assert "Not saved" in page.text
    assert "File too large" in page.text and "Nothing was changed" in page.text
    assert site.counts() == before
    with site.root() as root:
        assert root["users"].get("owner@example.org").language == "en"

    # with room again the same form goes through, and everything from before is still there
    form.submit(status=303)
    with site.root() as root:
        assert root["users"].get("owner@example.org").language == "de"
    after = site.counts()
    assert after["all"] == before["all"] + 2  # language de and locale de_AT, new facts
