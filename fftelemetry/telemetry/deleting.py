"""What a delete of records says, on the records page and from `fftelemetry delete`: both delete
through the same store methods, and say the same."""

from .sender import records_word

# ZODB keeps every revision until the database is packed: a delete only makes records
# unreachable, and their keys and values stay in the database file.
UNTIL_PACKED = (
    "The deleted records remain in the database file's history until it is packed: run "
    "fftelemetry pack (weekly in scripts/crontab.example)."
)


def deleted_all(count):
    return (
        f"Deleted {records_word(count)}, pending and submitted. This is a fresh start: "
        "facts that were sent before will be collected and sent again. " + UNTIL_PACKED
    )


def deleted_submitted(count, pending):
    return (
        f"Deleted {records_word(count)} already submitted; "
        f"{records_word(pending)} still pending. Facts that were sent are remembered, "
        "so they are not sent again. " + UNTIL_PACKED
    )
