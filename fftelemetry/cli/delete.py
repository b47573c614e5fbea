"""`fftelemetry delete all|submitted CONFIG_URI --yes`: the records page's two deletes, from the
console (a script, a container with no administrator's account at hand, a purge after switching
telemetry off).

The same store methods as the page's buttons, so the same outcome: `all` forgets every record
and which facts were sent (a fresh start), `submitted` the submitted records, their facts still
known so that they are not sent again; both note the time for the status page (the records stay
in the database file until the next `fftelemetry pack`). Deleting is neither collecting nor
sending: it works while telemetry is off too.

Without --yes nothing is deleted: it says how many records would be and exits with status 3
(NOT_CONFIRMED), which a script tells from 0 (deleted, or nothing to delete), 1 (failed) and
2 (bad usage, a config or database that cannot be used).

Its use is not collected (COUNTED): `system.command.executed` "delete" would be a record left by
the purge itself, and one collected before the delete would survive `delete submitted`.
"""

from ..failures import in_second_phase, what_went_wrong
from ..resources import telemetry_store
from ..resources.store import ALL, PENDING, SUBMITTED
from ..scripting import run_in_transaction
from ..telemetry.deleting import deleted_all, deleted_submitted
from ..telemetry.sender import records_word
from .errors import CommandError, try_again

HELP = (
    "delete all records and the memory of the facts sent, or the submitted records only, as "
    "the records page's buttons do (nothing without --yes: exit status 3 if there was "
    "something to delete)"
)

COUNTED = False  # see above; main.py counts the first use of every other command
NOT_CONFIRMED = 3


def add_arguments(parser):
    # before CONFIG_URI, as `instructions install CONFIG_URI`: `fftelemetry delete all x.ini --yes`
    parser.add_argument(
        "kind",
        choices=(ALL, SUBMITTED),
        help="all: every record, pending and submitted, and the memory of which facts were sent "
        "(they will be collected and sent again); submitted: the records already sent, their "
        "facts still remembered so that they are not sent again",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="delete them; without it nothing is deleted: the command says how many records it "
        f"would delete and exits with status {NOT_CONFIRMED} (with none to delete, it says so and "
        "exits with 0, as with --yes)",
    )


def writes(args):
    """Without --yes it only counts: it runs on a read-only database (a replica) too."""
    return args.yes


def run(registry, args):
    def delete(env):
        store = telemetry_store(env["request"])
        count = store.counts()[args.kind]
        # "all" forgets which facts were sent too, even once no record is left
        if not (count or (args.kind == ALL and store.identity)):
            return NOTHING[args.kind]
        if not args.yes:  # raised: the transaction is aborted, nothing written
            raise CommandError(would_delete(args.kind, count), status=NOT_CONFIRMED)
        if args.kind == ALL:
            return deleted_all(store.delete_all())
        deleted = store.delete_submitted()
        return deleted_submitted(deleted, store.counts()[PENDING])

    print(run_in_transaction(registry, delete))
    return 0


NOTHING = {ALL: "No records to delete.", SUBMITTED: "No submitted records to delete."}


def would_delete(kind, count):
    if kind == ALL:
        what = (
            f"{records_word(count)}, pending and submitted, and forget which facts were sent "
            "(they would be collected and sent again)"
        )
    else:
        what = (
            f"{records_word(count)} already submitted (their facts stay remembered, so they "
            "are not sent again)"
        )
    return f"would delete {what}; nothing deleted: add --yes to delete them"


def cannot_write(exc):
    """A full disk, or records collected or marked sent meanwhile on every attempt (a busy
    site): the delete is one transaction, aborted whole. One whose commit failed in its second
    phase (in_second_phase) may have been saved: running it without --yes says what is left."""
    if in_second_phase(exc):
        return (
            f"could not delete ({what_went_wrong(exc)}) as the delete was being saved: the "
            "records may have been deleted or not; run it without --yes to see what is left"
        )
    return f"could not delete ({what_went_wrong(exc)}); nothing was deleted{try_again(exc)}"
