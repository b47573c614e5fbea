"""Database generations: which layout of its persistent tree a database has.

ZODB stores Python objects, so the shape of the tree is the schema. The app's `Root` and the
receiver's `Receiver` record their database's generation; a root made before generations were
recorded (by a development snapshot of 0.1.0) has 0.1.0's layout, so it counts as generation 1.

To change the layout of databases in use (an attribute renamed, a part of the tree moved or
rebuilt, a class path changed; a part `appmaker` can simply add needs none), append a step to
that app's `GENERATIONS.steps` (fftelemetry/resources/__init__.py, fftelemetry/receiver/
resources.py): a function that takes the root and brings it one generation forward. The current
generation is 1 + the number of steps, so appending one makes the next. When the app or a
console command starts, each step the database lacks runs in a transaction of its own, with the
root's new generation in the same transaction: a step that raises leaves the database at the
generation before it, nothing half-written. A step must suit every database of its generation.

A database of a newer generation (fftelemetry was downgraded) is refused at start-up; a request
of a process started before another process evolved the database is refused too, with a compare
of the root's generation (the root is loaded by every request anyway). Opened read-only (a
replica), a database that needs a write first is refused at start-up too, new (no root) or older:
nothing can make its root there, and a step's commit would only fail.
"""

import logging

from ZODB.POSException import ConflictError

from ..failures import is_no_room, why_not_written
from ..scripting import is_read_only, own_connection
from ..shown import error_text, shown

log = logging.getLogger(__name__)

FIRST = 1  # 0.1.0's layout: that of every root without a generation


def named(where):
    """The database, in a start-up refusal: `where` is the ini (or setting) naming it."""
    return f"the database named in {where}"


class GenerationError(Exception):
    """The database is not of the generation this version knows (said in one line)."""


class Generations:
    """One app's database: its root's key in the ZODB root and its evolve steps, oldest first
    (`steps[0]` brings generation 1 to 2)."""

    def __init__(self, program, root_key, steps, writer=None):
        self.program = program
        self.root_key = root_key
        self.steps = steps
        # what makes the root, and evolves it, for a read-only database's refusal to name
        self.writer = writer or f"start {program}"

    @property
    def current(self):
        return FIRST + len(self.steps)

    def check(self, root):
        """In every request, on its root: refuse a database that another process has evolved
        (or one swapped for an older copy) since this one started."""
        if root.generation != self.current:
            raise GenerationError(self.mismatch("the database", root.generation))

    def bring_up_to_date(self, db, where, evolve=True):
        """At start-up: refuse a database of a newer generation, evolve an older one (or, for a
        run that must change nothing, `evolve=False`, or a read-only database, refuse it too). A
        new database is left alone: its first request makes the root at the current generation;
        a read-only one is refused, as nothing can make it there. `where` names the database in
        the messages."""
        database = named(where)
        read_only = is_read_only(db)
        with own_connection(db) as (tm, conn):
            while True:
                tm.begin()
                root = conn.root().get(self.root_key)
                if root is None and read_only:
                    raise GenerationError(self.not_made(database))
                if root is None or root.generation == self.current:
                    return
                if root.generation > self.current or not evolve or read_only:
                    raise GenerationError(
                        self.mismatch(database, root.generation, evolve, read_only)
                    )
                self._evolve_one(tm, root, database)

    def _evolve_one(self, tm, root, database):
        """The next step and the root's new generation, in one transaction."""
        found = root.generation
        try:
            self.steps[found - FIRST](root)
            root.generation = found + 1
            tm.commit()
        except ConflictError:  # another process evolved it at the same moment: read it again
            tm.abort()
            return
        except Exception as exc:
            tm.abort()
            if is_no_room(exc):  # a full disk: the line says it all, there is no bug to trace
                failed = f"could not be written ({shown(why_not_written(exc))})"
            else:
                log.exception("evolving %s to generation %d failed", database, found + 1)
                failed = f"failed ({type(exc).__name__}: {shown(error_text(exc))})"
            raise GenerationError(
                f"evolving {database} from generation {found} to {found + 1} {failed}; it is "
                f"left at generation {found}, nothing of the step was stored"
            ) from None
        log.info("evolved %s to generation %d", database, found + 1)

    def not_made(self, database, missing_file=None):
        """A read-only database without this app's root (or, `missing_file`, without its file)."""
        what = (f"{database}, {missing_file}, does not exist, and opened read-only it is not made"
                if missing_file else
                f"{database} is read-only and holds no {self.program} data yet (a new database)")
        return f"{what}: {self.writer} once with a config that opens it writable, to make it"

    def mismatch(self, database, found, evolve=True, read_only=False):
        if found < self.current and read_only:
            return (
                f"{database} is of generation {found}, older than this {self.program}'s "
                f"{self.current}, and read-only: {self.writer} once with a config that opens it "
                "writable, to bring it up to date"
            )
        if found < self.current and not evolve:
            return (
                f"{database} is of generation {found}, older than this {self.program}'s "
                f"{self.current}, and this run changes nothing: start {self.program} (or run "
                "the command without --dry-run) to bring it up to date first"
            )
        if found > self.current:
            return (
                f"{database} is of generation {found}, but this {self.program} knows up to "
                f"generation {self.current} (a newer version has changed the database): upgrade "
                "fftelemetry again, or restore a backup of the database made before that upgrade"
            )
        return (
            f"{database} is of generation {found}, older than this {self.program}'s "
            f"{self.current}: restart {self.program} to bring it up to date"
        )
