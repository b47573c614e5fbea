"""Collecting from a console command, in a transaction of its own, where a busy site or a
read-only database must not cost the operator the command."""

import logging

from ZODB.POSException import ConflictError

from ..failures import READ_ONLY, hide_passwords, what_went_wrong
from ..scripting import database, is_read_only, run_in_transaction

log = logging.getLogger(__name__)


def collect_unless_busy(registry, what, collect, later="a later run collects it"):
    """Run collect(request) in a transaction of its own; whether it was done.

    Conflicts on every attempt (the site busy writing the store) leave `what` uncollected, in
    one WARNING line: the operator's command runs all the same, and, the values being unknown
    still, a later run collects them. So does a read-only database (a replica), tried not at
    all: a command that only reads runs there, and a run on the writable database collects.
    A storage that cannot write otherwise is raised, for main's one line: a full disk or a lost
    server is for the operator to see to before anything else. While telemetry is off nothing
    is tried, nor said: there is nothing a later run would collect."""
    if not registry.app_settings.send_telemetry:
        return False
    if is_read_only(database(registry)):
        log.warning(
            "%s not collected (%s); %s on the writable database", what, READ_ONLY, later
        )
        return False
    try:
        run_in_transaction(registry, lambda env: collect(env["request"]))
    except ConflictError as exc:
        # a lost PostgreSQL server's conflict says so, with libpq's text: it may quote the password
        reason = hide_passwords(what_went_wrong(exc), registry.settings)
        log.warning("%s not collected (%s); %s", what, reason, later)
        return False
    return True
