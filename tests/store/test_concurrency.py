"""Many writers at once: no "database is locked", no deadlock, no double count; stable paging."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest

from exchange_sync.store import FolderState, SqlStore, SyncCounts, UsageKey
from tests.support.comments import BASE_TIME, make_comment

POOL = 120
THREADS = 8
BATCHES = 6
BATCH = 40


def _worker(store: SqlStore, worker: int) -> list[SyncCounts]:
    """One 'mailbox': syncs batches drawn from a pool of ids shared with the other mailboxes."""
    rng = random.Random(worker)
    mailbox = f"mb{worker}@acme.com"
    results = []
    for batch_no in range(BATCHES):
        ids = rng.sample(range(POOL), BATCH)
        counts = store.sync_comments(
            [make_comment(i, mailbox=mailbox, folder=f"Inbox/{batch_no}") for i in ids],
            folder_state=FolderState(
                integration="acme", mailbox=mailbox, folder_id="inbox", folder_path="Inbox", sync_state=f"s{batch_no}"
            ),
            usage=UsageKey(integration="acme", mailbox=mailbox, day=date(2026, 11, 2)),
        )
        assert counts.total == BATCH
        results.append(counts)
    return results


def test_concurrent_writers_count_each_comment_new_once(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    # Two store objects on one database, as two pipeline components would have.
    caplog.set_level(logging.INFO, logger="exchange_sync.store.database")
    with SqlStore(db_url) as first, SqlStore(db_url) as second:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            futures = [pool.submit(_worker, first if w % 2 else second, w) for w in range(THREADS)]
            all_counts = [counts for future in futures for counts in future.result()]
        total = sum(all_counts, SyncCounts())
        distinct = first.count_comments()
        assert total.new == distinct
        assert total.total == THREADS * BATCHES * BATCH
        assert total.updated_text_changed == 0  # the pipeline's policy freezes text
        usage_rows = first.usage("acme")
        assert sum(row.units for row in usage_rows) == distinct
        assert sum(row.new + row.updated_properties_only + row.unchanged for row in usage_rows) == total.total
        states = first.list_folder_states("acme")
        assert {state.sync_state for state in states} == {f"s{BATCHES - 1}"}
        # Writers lock rows in id order, so PostgreSQL never had to break a deadlock.
        assert [r.message for r in caplog.records if "retried" in r.getMessage()] == []


_CHILD = """
import sys
from exchange_sync.store import SqlStore
from tests.support.comments import make_comment
url, worker = sys.argv[1], int(sys.argv[2])
store = SqlStore(url)
new = 0
for batch in range(5):
    new += store.sync_comments([make_comment(i, mailbox=f"p{worker}@acme.com") for i in range(batch * 10, batch * 10 + 40)]).new
print(new)
"""


def test_concurrent_processes_do_not_fail(db_url: str) -> None:
    """Across processes only the database arbitrates (SQLite: WAL + BEGIN IMMEDIATE + busy timeout)."""
    SqlStore(db_url).close()  # create the schema once, before the race
    children = [
        subprocess.Popen([sys.executable, "-c", _CHILD, db_url, str(worker)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for worker in range(4)
    ]
    news = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        news.append(int(out.strip()))
    with SqlStore(db_url) as store:
        assert sum(news) == store.count_comments() == 80


def test_pagination_stable_under_concurrent_writes(db_url: str) -> None:
    with SqlStore(db_url) as store:
        existing = [make_comment(i, timestamp=BASE_TIME + timedelta(minutes=2 * i)) for i in range(150)]
        store.sync_comments(existing)
        expected = {c.id for c in existing}

        stop = threading.Event()
        progress = threading.Condition()
        written = [0]
        errors: list[BaseException] = []

        def writer() -> None:
            rng = random.Random(7)
            n = 0
            try:
                while not stop.is_set():
                    # New comments at odd minutes (between existing ones, before and after the
                    # reader's cursor), property changes to existing ones, and deletes of new ones.
                    fresh = [
                        make_comment(f"new{n + k}", timestamp=BASE_TIME + timedelta(minutes=2 * rng.randrange(150) + 1))
                        for k in range(5)
                    ]
                    moved = [make_comment(i, folder=f"Moved/{n}", timestamp=existing[i].timestamp) for i in rng.sample(range(150), 5)]
                    store.sync_comments(fresh + moved)
                    if n >= 10:
                        store.delete_comments([make_comment(f"new{n - 10}").id])
                    n += 5
                    with progress:
                        written[0] += 1
                        progress.notify_all()
            except BaseException as exc:  # surfaced by the assertion below
                errors.append(exc)
                with progress:
                    written[0] = 10**9
                    progress.notify_all()

        thread = threading.Thread(target=writer)
        thread.start()
        seen: list[str] = []
        after = None
        try:
            while True:
                with progress:
                    # Make sure at least one write batch lands between every two pages.
                    target = written[0] + 1
                    progress.wait_for(lambda: written[0] >= target, timeout=60)
                page, after = store.list_comments(after=after, limit=7)
                seen.extend(c.id for c in page)
                if after is None:
                    break
        finally:
            stop.set()
            thread.join()
        assert not errors, errors
        counts = Counter(seen)
        assert [cid for cid, n in counts.items() if n > 1] == []
        assert expected <= set(seen)
