from ZEO.Exceptions import ClientDisconnected

from fftelemetry.cli import main, pack


def test_a_lost_zeo_server_is_named_not_shown_as_an_empty_exception():
    # ClientDisconnected carries no text: "could not write (ClientDisconnected: )" said nothing
    lost = ClientDisconnected()
    assert main.cannot_write(lost) == (
        "could not write (the ZEO server cannot be reached); the change in progress was rolled back"
    )
    assert pack.cannot_write(lost).startswith("the pack failed (the ZEO server cannot be reached);")
    assert main.cannot_write(OSError(28, "No space left on device")) == (
        "could not write (OSError: [Errno 28] No space left on device); "
        "the change in progress was rolled back"
    )
