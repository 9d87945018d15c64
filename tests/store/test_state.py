"""Folder states, deletions, rejections, runs and mailbox statuses."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from exchange_sync.store import Deletion, FolderState, Rejected, SqlStore, SyncCounts
from tests.support.comments import make_comment

WHEN = datetime(2026, 11, 2, 10, tzinfo=timezone.utc)


def test_folder_state_set_get_list(store: SqlStore) -> None:
    assert store.get_folder_state("acme", "ap@acme.com", "f1") is None
    inbox = FolderState(integration="acme", mailbox="ap@acme.com", folder_id="f1", folder_path="Inbox")
    empty = FolderState(
        integration="acme", mailbox="ap@acme.com", folder_id="f2", folder_path="Archive", sync_state="s", last_error="x"
    )
    store.set_folder_state(inbox)
    store.set_folder_state(empty)
    store.set_folder_state(FolderState(integration="other", mailbox="ap@acme.com", folder_id="f1"))
    assert store.get_folder_state("acme", "ap@acme.com", "f1") == inbox
    updated = inbox.model_copy(update={"sync_state": "s2", "items_synced": 10, "last_synced_at": WHEN})
    store.set_folder_state(updated)
    assert store.list_folder_states("acme") == [empty, updated]


def test_deletions_recorded_idempotently_and_comments_stay(store: SqlStore) -> None:
    store.sync_comments([make_comment(1)])
    deletion = Deletion(folder_id="f1", item_id="AAMk-item-1", deleted_at=WHEN)
    store.record_deletions("acme", "ap@acme.com", [deletion, Deletion(folder_id="f1", item_id="AAMk-item-2")])
    store.record_deletions("acme", "ap@acme.com", [deletion])
    assert store.count_deletions("acme") == 2
    assert store.count_deletions("acme", "support@acme.com") == 0
    assert store.count_comments() == 1


def test_rejections_one_row_per_item_latest_reason(store: SqlStore) -> None:
    first = Rejected(mailbox="ap@acme.com", folder_path="Inbox", item_id="i1", message_id=None, reason="no_body")
    other = Rejected(mailbox="ap@acme.com", folder_path="Inbox", item_id="i2", message_id="<a@b>", reason="too_large")
    store.record_rejections("acme", [first, other])
    store.record_rejections("acme", [first.model_copy(update={"reason": "unparseable_mime"})])
    rejected = store.list_rejections("acme")
    assert [(r.item_id, r.reason) for r in rejected] == [("i1", "unparseable_mime"), ("i2", "too_large")]
    assert store.list_rejections("other") == []


def test_runs(store: SqlStore) -> None:
    first = store.start_run("acme", "incremental")
    second = store.start_run("acme", "backfill")
    store.finish_run(first, "completed", {"counts": SyncCounts(new=2).model_dump(), "mailboxes": ["ap@acme.com"]})
    runs = store.list_runs("acme", limit=10)
    assert [run.id for run in runs] == [second, first]
    assert runs[0].status == "running" and runs[0].finished_at is None
    assert runs[1].status == "completed" and runs[1].summary == {
        "counts": SyncCounts(new=2).model_dump(),
        "mailboxes": ["ap@acme.com"],
    }
    assert len(store.list_runs("acme", limit=1)) == 1
    with pytest.raises(KeyError):
        store.finish_run(second + 1000, "failed", {})


def test_mailbox_statuses_count_errors(store: SqlStore) -> None:
    store.set_mailbox_status("acme", "ap@acme.com", "ok")
    store.set_mailbox_status("acme", "gone@acme.com", "disabled", "mailbox_not_found", error_count_delta=1)
    store.set_mailbox_status("acme", "gone@acme.com", "disabled", "mailbox_not_found", error_count_delta=1)
    statuses = {s.mailbox: s for s in store.mailbox_statuses("acme")}
    assert statuses["ap@acme.com"].status == "ok" and statuses["ap@acme.com"].error_count == 0
    assert statuses["gone@acme.com"].reason == "mailbox_not_found"
    assert statuses["gone@acme.com"].error_count == 2
    store.set_mailbox_status("acme", "gone@acme.com", "ok", None)
    assert store.mailbox_statuses("acme")[1].reason is None
