"""The telemetry store on a real FileStorage: dedup, recurring window, counts, paging, deletes."""

from datetime import UTC, datetime, timedelta

import pytest
import transaction
from ZODB import DB
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError

from fftelemetry.resources import telemetry_store_in
from fftelemetry.resources.store import (
    ALL,
    PENDING,
    SUBMITTED,
    SubmissionResult,
    TelemetryStore,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(opened_root):
    root, _tm = opened_root
    return root["admin"]["telemetry"].store


def test_new_store_is_empty_and_has_no_installation_id(store):
    assert store.counts() == {ALL: 0, PENDING: 0, SUBMITTED: 0}
    assert store.installation_id is None
    assert store.page() == []


def test_feature_is_stored_once_per_key_and_value(store):
    first = store.add_feature("system.command.executed", "cron", T0)
    again = store.add_feature("system.command.executed", "cron", T0 + timedelta(days=1))
    other = store.add_feature("system.command.executed", "status", T0)
    assert first is not None and other is not None
    assert again is None
    assert store.counts()[ALL] == 2


def test_int_and_str_values_are_distinct_identities(store):
    assert store.add_feature("system.users.count", 1, T0)
    assert store.add_feature("system.users.count", "1", T0)  # store does not coerce
    assert store.add_feature("system.users.count", 1, T0) is None


def test_record_fields(store):
    record = store.add_feature("system.python.version", "3.11.7", T0)
    assert len(record.id) == 32 and record.id != store.installation_id.replace("-", "")
    assert record.installation_id == store.installation_id
    assert (record.type, record.key, record.value) == ("feature", "system.python.version", "3.11.7")
    assert record.collected_at == T0 and record.collected_at.tzinfo is UTC
    assert record.submitted_at is None and record.submission_uuid is None


def test_installation_id_is_random_and_kept(opened_root):
    root, _tm = opened_root
    store = root["admin"]["telemetry"].store
    store.add_feature("system.users.count", 1, T0)
    first = store.installation_id
    store.add_feature("system.users.count", 2, T0)
    assert store.installation_id == first
    other = TelemetryStore()
    other.add_feature("system.users.count", 1, T0)
    assert other.installation_id != first
    # the uuid of 5.2.7/5.2.8 that every installation shared
    assert first != "b2c27d92-be90-5c10-8589-005df5b314e6"


def test_recurring_window(store):
    assert store.add_recurring("k", 1, 7, T0)
    assert store.add_recurring("k", 2, 7, T0 + timedelta(days=6, hours=23)) is None
    assert store.add_recurring("k", 3, 7, T0 + timedelta(days=7))
    assert store.add_recurring("other", 1, 7, T0 + timedelta(days=1))
    # a recurring value may repeat: it is not deduplicated like a feature
    assert store.add_recurring("k", 3, 7, T0 + timedelta(days=14))
    assert store.counts()[ALL] == 4
    assert {r.type for _, r in store.page()} == {"recurring"}


def test_recurring_window_at_the_clocks_time(store):
    """As the collector calls it (no `now`): the window holds from the time the store read."""
    assert store.add_recurring("k", 1, 7)
    assert store.add_recurring("k", 2, 7) is None
    assert store.counts()[ALL] == 1


def _fill(store, n, start=T0):
    for i in range(n):
        store.add_feature("system.users.count", i, start + timedelta(seconds=i))


def test_page_is_newest_first_and_keyset_paged(store):
    _fill(store, 25)
    first = store.page(size=10)
    assert [r.value for _, r in first] == list(range(24, 14, -1))
    second = store.page(before=first[-1][0], size=10)
    assert [r.value for _, r in second] == list(range(14, 4, -1))
    last = store.page(before=second[-1][0], size=10)
    assert [r.value for _, r in last] == [4, 3, 2, 1, 0]
    assert not store.has_older(ALL, last[-1][0])
    assert store.has_older(ALL, first[-1][0])


def test_mark_submitted_counts_and_filters(store):
    _fill(store, 10)
    batch = store.pending_batch(4)
    assert [r.value for _, r in batch] == [0, 1, 2, 3]  # oldest first
    moved = store.mark_submitted([seq for seq, _ in batch], "u-1", T0 + timedelta(days=1))
    assert moved == 4
    assert store.counts() == {ALL: 10, PENDING: 6, SUBMITTED: 4}
    submitted = store.page(SUBMITTED)
    assert [r.value for _, r in submitted] == [3, 2, 1, 0]
    assert {r.submission_uuid for _, r in submitted} == {"u-1"}
    assert all(r.submitted_at == T0 + timedelta(days=1) for _, r in submitted)
    assert [r.value for _, r in store.page(PENDING)] == [9, 8, 7, 6, 5, 4]
    # "all" merges both partitions, still newest first
    assert [r.value for _, r in store.page(ALL)] == list(range(9, -1, -1))
    # marking again (a re-run after a crash) moves nothing twice
    assert store.mark_submitted([seq for seq, _ in batch], "u-2") == 0
    assert store.counts()[SUBMITTED] == 4


def test_records_gone_meanwhile_leave_the_counts_right(store):
    _fill(store, 6)
    seqs = [seq for seq, _ in store.pending_batch(3)]
    assert store.discard_pending(seqs[:1]) == 1  # gone while the batch was being sent
    assert store.mark_submitted(seqs, "u-1") == 2
    assert store.mark_submitted(seqs, "u-2") == 0  # a re-run after a crash
    assert store.discard_pending(seqs) == 0
    assert store.counts() == {ALL: 5, PENDING: 3, SUBMITTED: 2}
    assert len(store.page(PENDING)) == 3 and len(store.page(SUBMITTED)) == 2


def test_unknown_filter_is_refused(store):
    with pytest.raises(ValueError, match="unknown filter"):
        store.page("everything")


def test_delete_submitted_keeps_pending_and_remembers_facts(store):
    _fill(store, 6)
    store.mark_submitted([seq for seq, _ in store.pending_batch(2)], "u")
    assert store.delete_submitted() == 2
    assert store.counts() == {ALL: 4, PENDING: 4, SUBMITTED: 0}
    assert [r.value for _, r in store.page()] == [5, 4, 3, 2]
    # a submitted fact is not collected (and sent) a second time
    assert store.add_feature("system.users.count", 0, T0) is None


def test_delete_all_is_a_fresh_start(store):
    _fill(store, 6)
    store.add_recurring("k", 1, 7, T0)
    installation = store.installation_id
    store.mark_submitted([seq for seq, _ in store.pending_batch(2)], "u")
    assert store.delete_all() == 7
    assert store.counts() == {ALL: 0, PENDING: 0, SUBMITTED: 0}
    assert store.add_feature("system.users.count", 0, T0)
    assert store.add_recurring("k", 1, 7, T0)
    assert store.installation_id == installation


def test_a_delete_is_remembered_when_it_drops_something(opened_root):
    """What the status page's "deleted records still in the database file" is read from."""
    root, tm = opened_root
    store = root["admin"]["telemetry"].store

    def deleting(which):
        deleted = getattr(store, which)()
        tm.commit()  # one delete a transaction, as on the records page
        return deleted

    assert deleting("delete_submitted") == deleting("delete_all") == 0
    assert store.records_deleted_at is None  # nothing was dropped: nothing is in the history
    _fill(store, 3)
    store.mark_submitted([seq for seq, _ in store.pending_batch(1)], "u")
    assert deleting("delete_submitted") == 1
    first = store.records_deleted_at
    assert first is not None
    assert deleting("delete_submitted") == 0  # nothing submitted: the time stays
    assert store.records_deleted_at == first
    assert deleting("delete_all") == 2
    assert store.records_deleted_at > first
    store.add_feature("system.users.count", 9, T0)
    store.mark_submitted([seq for seq, _ in store.pending_batch(1)], "u")
    deleting("delete_submitted")
    sent_only = store.records_deleted_at
    assert deleting("delete_all") == 0  # no record left, but the memory of the facts sent
    assert store.records_deleted_at > sent_only


def test_submission_log_is_bounded_and_newest_first(store):
    for i in range(8):
        store.log_submission(
            SubmissionResult(T0 + timedelta(minutes=i), i, 200, f"u{i}", None), keep=5
        )
    store.log_submission(
        SubmissionResult(T0 + timedelta(minutes=9), 0, None, None, "refused"), keep=5
    )
    results = store.submissions(limit=10)
    assert [r.uuid for r in results] == [None, "u7", "u6", "u5", "u4"]
    assert store.last_submission().error == "refused"
    assert store.last_success_at == T0 + timedelta(minutes=7)


def test_submissions_are_the_newest_ones_when_there_are_more(store):
    for i in range(8):
        store.log_submission(SubmissionResult(T0 + timedelta(minutes=i), i, 200, f"u{i}", None))
    assert [r.uuid for r in store.submissions(limit=3)] == ["u7", "u6", "u5"]
    assert [r.uuid for r in store.submissions(limit=None)] == [f"u{i}" for i in range(7, -1, -1)]
    assert store.submissions_kept() == 8


def test_records_survive_a_reopened_filestorage(tmp_path):
    path = str(tmp_path / "Data.fs")
    db = DB(FileStorage(path))
    with db.transaction() as conn:
        store = telemetry_store_in(conn.root())
        _fill(store, 120)
        store.mark_submitted([seq for seq, _ in store.pending_batch(50)], "u")
    db.close()
    db = DB(FileStorage(path))
    try:
        with db.transaction() as conn:
            store = telemetry_store_in(conn.root())
            assert store.counts() == {ALL: 120, PENDING: 70, SUBMITTED: 50}
            assert store.page(size=1)[0][1].value == 119
            assert store.page(SUBMITTED, size=1)[0][1].submission_uuid == "u"
    finally:
        db.close()


def test_records_collected_in_the_same_microsecond_keep_a_key_each(store):
    """More records than a microsecond has keys (10 random bits: 1,024), as a clock that ticks
    in milliseconds gives: none overwrites another, pending or submitted, and the counts say
    what the trees hold."""
    for i in range(1100):
        store.add_feature("system.users.count", i, T0)
    store.mark_submitted([seq for seq, _ in store.pending_batch(1100)], "u-1")
    for i in range(1100, 2200):  # the same microsecond again, with every key of it submitted
        store.add_feature("system.users.count", i, T0)
    assert store.counts() == {ALL: 2200, PENDING: 1100, SUBMITTED: 1100}
    assert len(store.pending.records) == len(store.submitted.records) == 1100
    assert sorted(r.value for _, r in store.page(size=3000)) == list(range(2200))
    # their keys are neighbours: keyset pages, down and back up, skip none of them
    pages = [store.page(size=100)]
    while older := store.page(before=pages[-1][-1][0], size=100):
        pages.append(older)
    assert sorted(r.value for page in pages for _, r in page) == list(range(2200))
    newer = store.page_above(ALL, pages[-1][0][0], size=100)
    assert newer == pages[-2]


def test_concurrent_collects_in_two_connections_both_commit(tmp_path):
    """Two writers adding different records at once: BTrees resolve the conflict."""
    db = DB(FileStorage(str(tmp_path / "Data.fs")))
    try:
        with db.transaction() as conn:
            store = telemetry_store_in(conn.root())
            store.add_feature("system.users.count", 0, T0)  # installation id exists
        tm1, tm2 = transaction.TransactionManager(), transaction.TransactionManager()
        c1, c2 = db.open(tm1), db.open(tm2)
        s1 = telemetry_store_in(c1.root())
        s2 = telemetry_store_in(c2.root())
        s1.add_feature("system.command.executed", "cron", T0)
        s2.add_feature("system.command.executed", "status", T0)
        tm1.commit()
        tm2.commit()
        c1.close()
        c2.close()
        with db.transaction() as conn:
            store = telemetry_store_in(conn.root())
            assert store.counts()[ALL] == 3
            assert {r.value for _, r in store.page()} == {0, "cron", "status"}
    finally:
        db.close()


@pytest.fixture
def two_transactions(tmp_path):
    """Three records, one submitted, and two transactions open on them, each with its own
    connection: (transaction manager, store) twice, then a function giving the counts after."""
    db = DB(FileStorage(str(tmp_path / "Data.fs")))
    with db.transaction() as conn:
        store = telemetry_store_in(conn.root())
        _fill(store, 3)
        store.mark_submitted([seq for seq, _ in store.pending_batch(1)], "u-1")
    managers = transaction.TransactionManager(), transaction.TransactionManager()
    connections = [db.open(tm) for tm in managers]

    def counts_after():
        for tm, conn in zip(managers, connections, strict=True):
            tm.abort()
            conn.close()
        with db.transaction() as conn:
            return telemetry_store_in(conn.root()).counts()

    stores = [telemetry_store_in(conn.root()) for conn in connections]
    try:
        yield (*zip(managers, stores, strict=True), counts_after)
    finally:
        db.close()


@pytest.mark.parametrize("delete", ["delete_all", "delete_submitted"])
def test_a_delete_conflicts_with_a_record_changed_meanwhile(two_transactions, delete):
    """A delete reports the count it read: a record added (or marked submitted) by another
    transaction in between must make the delete conflict (and be retried), not vanish unseen."""
    (tm1, deleting), (tm2, other), counts_after = two_transactions
    deleting.counts()
    other.mark_submitted([seq for seq, _ in other.pending_batch(1)], "u-2")
    tm2.commit()
    getattr(deleting, delete)()
    with pytest.raises(ConflictError):
        tm1.commit()
    assert counts_after() == {ALL: 3, PENDING: 1, SUBMITTED: 2}


def test_marking_a_batch_marked_already_writes_nothing(two_transactions):
    """Another run (cron's, as an admin presses "Submit now") marked the batch first: this mark
    moves nothing and writes nothing, so a "delete submitted" meanwhile, which a real mark must
    make conflict, is not made to conflict and run again by it."""
    (tm1, deleting), (tm2, marking), counts_after = two_transactions
    deleting.counts()
    marked = list(marking.submitted.records.keys())
    assert marking.mark_submitted(marked, "u-2") == 0
    tm2.commit()
    assert deleting.delete_submitted() == 1
    tm1.commit()  # no ConflictError: the counts it read are current
    assert counts_after() == {ALL: 2, PENDING: 2, SUBMITTED: 0}


COLLECTED_MEANWHILE = {
    "feature": lambda store: store.add_feature("system.command.executed", "pack"),
    "recurring": lambda store: store.add_recurring("system.users.count", 9, every_days=7),
    "marked": lambda store: store.mark_submitted([seq for seq, _ in store.pending_batch(1)], "u-2"),
}


@pytest.mark.parametrize(
    "delete, change",
    [
        ("delete_all", "feature"),
        ("delete_all", "recurring"),
        ("delete_submitted", "marked"),
    ],
)
def test_a_record_written_while_a_delete_committed_conflicts_and_is_not_lost(
    two_transactions, delete, change
):
    """The other order: the delete commits first, then a transaction that read the old
    partitions adds a record (or marks one sent). It must conflict and be retried on the new
    partitions; without that it committed into the old ones, which nothing reads: a record lost
    with no error."""
    (tm1, deleting), (tm2, writing), counts_after = two_transactions
    writing.counts()  # the old partitions, loaded before the delete commits
    getattr(deleting, delete)()
    tm1.commit()
    assert COLLECTED_MEANWHILE[change](writing) is not None
    with pytest.raises(ConflictError):
        tm2.commit()
    tm2.abort()
    COLLECTED_MEANWHILE[change](writing)  # the retry, on the partitions now in place
    tm2.commit()
    assert counts_after() == {
        "feature": {ALL: 1, PENDING: 1, SUBMITTED: 0},
        "recurring": {ALL: 1, PENDING: 1, SUBMITTED: 0},
        "marked": {ALL: 2, PENDING: 1, SUBMITTED: 1},
    }[change]


# -- expiry (fftelemetry.keep_submitted_days) -------------------------------------------------

NOW = T0 + timedelta(days=200)
KEEP = timedelta(days=90)


def _sent(store, values, at, collected=T0):
    """Collect `values` at `collected` (a microsecond apart) and mark them submitted at `at`."""
    for i, value in enumerate(values):
        store.add_feature("system.users.count", value, collected + timedelta(microseconds=i))
    seqs = [seq for seq, r in store.pending_batch(1000) if r.value in values]
    store.mark_submitted(seqs, "u", at)


def _expire(store, before, limit=1000):
    """What cron's run does, in one transaction: every old enough record found, expired."""
    expired, after = 0, None
    while True:
        old, after = store.old_submitted(before, limit, after)
        expired += store.expire_submitted(old)
        if after is None:
            return expired


def _values(store, which=ALL):
    return sorted(r.value for _, r in store.page(which, size=1000))


def test_expiry_takes_exactly_the_records_sent_before_the_cut_off(store):
    _sent(store, [1, 2], NOW - KEEP - timedelta(days=30))  # older
    _sent(store, [3], NOW - KEEP - timedelta(microseconds=1))  # a microsecond too old
    _sent(store, [4], NOW - KEEP)  # sent exactly 90 days ago: kept 90 days, not less
    _sent(store, [5], NOW - timedelta(days=1))  # newer
    store.add_feature("system.users.count", 6, T0)  # pending, however old: never expired
    assert _expire(store, NOW - KEEP) == 3
    assert _values(store, SUBMITTED) == [4, 5] and _values(store, PENDING) == [6]
    assert _expire(store, NOW - KEEP) == 0  # nothing is taken twice


def test_expiry_keeps_the_counts_and_the_memory_of_what_was_sent(store):
    _sent(store, list(range(10)), NOW - KEEP - timedelta(days=1))
    _sent(store, [10, 11], NOW)
    store.add_feature("system.users.count", 12, T0)
    assert store.records_deleted_at is None
    assert _expire(store, NOW - KEEP) == 10
    assert store.counts() == {ALL: 3, PENDING: 1, SUBMITTED: 2}
    assert len(store.submitted.records) == 2 and len(store.pending.records) == 1
    # a fact that was sent, then expired, is not collected (and sent) a second time
    assert store.add_feature("system.users.count", 0, NOW) is None
    # the status page's "deleted records still in the database file" reads this
    assert store.records_deleted_at is not None


def test_expiring_nothing_is_no_delete(store):
    _sent(store, [1], NOW)
    assert _expire(store, NOW - KEEP) == 0
    assert store.records_deleted_at is None


def test_a_record_sent_out_of_order_does_not_hold_back_older_ones(store):
    """Collected first but sent last (its transaction committed late, or its process's clock
    was behind): its key is below records sent long before it. They expire on time; it stays
    until it is old enough itself."""
    late = store.add_feature("system.users.count", 0, T0)
    _sent(store, [1, 2], NOW - KEEP - timedelta(days=10), collected=T0 + timedelta(hours=1))
    store.mark_submitted([seq for seq, _ in store.pending_batch(1)], "u-late", NOW)
    # one stamped far in the future (a server's clock years ahead) holds nothing back either
    _sent(store, [3], NOW + timedelta(days=3650), collected=T0 + timedelta(hours=2))
    _sent(store, [4], NOW - KEEP - timedelta(days=5), collected=T0 + timedelta(hours=3))
    assert [r.id for _, r in store.page(SUBMITTED)][-1] == late.id  # the lowest key
    assert _expire(store, NOW - KEEP) == 3
    assert _values(store, SUBMITTED) == [0, 3]
    assert _expire(store, NOW + timedelta(days=1)) == 1  # 90 days after it was sent
    assert _values(store, SUBMITTED) == [3]


def test_expiry_looks_at_most_limit_records_a_step_and_goes_on_where_it_stopped(store):
    _sent(store, list(range(25)), NOW - KEEP - timedelta(days=1))
    _sent(store, [25, 26], NOW, collected=T0 + timedelta(seconds=1))  # young, among the old
    _sent(store, list(range(27, 35)), NOW - KEEP - timedelta(days=1),
          collected=T0 + timedelta(seconds=2))
    steps, after = [], None
    while True:
        old, after = store.old_submitted(NOW - KEEP, 10, after)
        steps.append(store.expire_submitted(old))
        if after is None:
            break
    assert steps == [10, 10, 8, 5]  # the third step looked at 10: 8 old, the 2 young ones
    assert _values(store, SUBMITTED) == [25, 26]
    assert store.counts()[SUBMITTED] == 2


def test_a_record_collected_and_sent_just_before_the_cut_off_is_expired(store):
    """The walk stops at the cut-off's key: a record collected a microsecond before the cut-off
    lies below it, and goes."""
    _sent(store, [1], NOW - KEEP - timedelta(microseconds=1),
          collected=NOW - KEEP - timedelta(microseconds=1))
    _sent(store, [2], NOW - KEEP, collected=NOW - KEEP - timedelta(microseconds=2))
    assert _expire(store, NOW - KEEP) == 1
    assert _values(store, SUBMITTED) == [2]


def test_records_collected_after_the_cut_off_are_not_even_looked_at(store):
    _sent(store, [1], NOW - KEEP - timedelta(days=1))
    _sent(store, list(range(2, 100)), NOW - KEEP - timedelta(days=1),
          collected=NOW - KEEP + timedelta(seconds=1))  # a clock ahead: sent before collected
    old, after = store.old_submitted(NOW - KEEP, 1000)
    assert (len(old), after) == (1, None)


def test_deleting_submitted_records_when_there_are_none_writes_nothing(opened_root):
    """As a mark that moves nothing: no transaction, and nothing for a concurrent writer (a run
    marking a batch) to conflict with."""
    root, tm = opened_root
    store = root["admin"]["telemetry"].store
    _fill(store, 2)  # pending, none submitted
    tm.commit()
    storage = store._p_jar.db().storage
    last = storage.lastTransaction()
    assert store.delete_submitted() == 0
    assert not store._p_changed
    tm.commit()
    assert storage.lastTransaction() == last
    assert store.counts() == {ALL: 2, PENDING: 2, SUBMITTED: 0}
