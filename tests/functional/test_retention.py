"""Expiry of submitted records (fftelemetry.keep_submitted_days) on the real app's database: one
transaction a chunk, the counts and the status page right after. The console's runs are in
test_cli.py."""

from datetime import timedelta

from fftelemetry.resources.store import ALL, PENDING, SUBMITTED, utcnow
from fftelemetry.scripting import database
from fftelemetry.telemetry.retention import expire_submitted

NOW = utcnow()


def transactions(site):
    """How many transactions the database holds (its undo log reads the storage's own file,
    which an iterator would read before the last commit is flushed)."""
    return len(database(site.app.registry).undoLog(0, 1_000_000))


def sent(site, count, days_ago, first=0):
    """`count` records collected and sent `days_ago` days ago, by the store's own API."""
    then = NOW - timedelta(days=days_ago)
    with site.store() as store:
        for i in range(count):
            store.add_feature("system.users.count", first + i, then - timedelta(hours=1))
        store.mark_submitted([seq for seq, _ in store.pending_batch(count)], "u", then)


def test_expiry_commits_a_chunk_at_a_time(site):
    sent(site, 120, days_ago=100)
    sent(site, 5, days_ago=10, first=1000)
    with site.store() as store:
        store.add_feature("system.users.count", 2000)  # pending
    before = transactions(site)
    registry = site.app.registry
    assert expire_submitted(registry, 90, now=NOW, chunk=50) == 120
    assert transactions(site) - before == 3  # 50, 50, 20: never one transaction for all
    assert site.counts() == {ALL: 6, PENDING: 1, SUBMITTED: 5}
    assert expire_submitted(registry, 90, now=NOW, chunk=50) == 0
    assert transactions(site) - before == 3  # nothing to expire: nothing written


def test_a_dry_run_counts_and_writes_nothing(site):
    sent(site, 7, days_ago=100)
    before = transactions(site)
    assert expire_submitted(site.app.registry, 90, now=NOW, dry_run=True, chunk=5) == 7
    assert transactions(site) == before
    assert site.counts()[SUBMITTED] == 7


def test_0_days_keeps_everything(site):
    sent(site, 3, days_ago=36500)
    assert expire_submitted(site.app.registry, 0, now=NOW) == 0  # for ever, not "0 days"
    assert site.counts()[SUBMITTED] == 3
    assert expire_submitted(site.app.registry, 36499, now=NOW) == 3


def test_the_status_page_says_expired_records_are_still_in_the_file(site, admin):
    sent(site, 2, days_ago=100)
    assert "deleted-in-file" not in admin.get("/admin/telemetry").text
    expire_submitted(site.app.registry, 90, now=NOW)
    page = admin.get("/admin/telemetry")
    assert "still in the database file" in page.html.select_one("#deleted-in-file").text
