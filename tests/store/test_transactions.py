"""Comments, folder state and usage commit in ONE transaction (or not at all)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
from sqlalchemy.exc import IntegrityError

from exchange_sync.store import FolderState, SqlStore, SyncCounts, UsageKey
from exchange_sync.store import comment_store
from tests.support.comments import make_comment

DAY = date(2026, 11, 2)


def _state(items: int = 3, sync_state: str | None = "H4sIAAAA-state-1") -> FolderState:
    return FolderState(
        integration="acme",
        mailbox="ap@acme.com",
        folder_id="AAMk-inbox",
        folder_path="Inbox",
        sync_state=sync_state,
        items_synced=items,
        last_synced_at=datetime(2026, 11, 2, 10, tzinfo=timezone.utc),
    )


def test_folder_state_and_usage_committed_with_comments(store: SqlStore) -> None:
    key = UsageKey(integration="acme", mailbox="ap@acme.com", day=DAY)
    counts = store.sync_comments([make_comment(i) for i in range(3)], folder_state=_state(), usage=key)
    assert counts == SyncCounts(new=3)
    assert store.get_folder_state("acme", "ap@acme.com", "AAMk-inbox") == _state()
    [row] = store.usage("acme")
    assert (row.day, row.mailbox, row.new, row.units) == (DAY, "ap@acme.com", 3, 3)


def test_constraint_violation_in_folder_state_rolls_back_comments(store: SqlStore) -> None:
    # model_construct bypasses pydantic's ge=0 so the database's CHECK constraint is what fails.
    bad = FolderState.model_construct(**{**_state().model_dump(), "items_synced": -1})
    with pytest.raises(IntegrityError):
        store.sync_comments([make_comment(1), make_comment(2)], folder_state=bad)
    assert store.count_comments() == 0
    assert store.get_folder_state("acme", "ap@acme.com", "AAMk-inbox") is None


def test_failing_usage_insert_rolls_back_comments_and_state(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.sync_comments([make_comment(1)], folder_state=_state(items=1, sync_state="s1"))

    def boom(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("usage ledger unavailable")

    monkeypatch.setattr(comment_store.usage_ledger, "add_usage", boom)
    with pytest.raises(RuntimeError, match="usage ledger unavailable"):
        store.sync_comments(
            [make_comment(1, folder="Archive"), make_comment(2)],
            folder_state=_state(items=2, sync_state="s2"),
            usage=UsageKey(integration="acme", mailbox="ap@acme.com", day=DAY),
        )
    # Nothing of the failed call persisted: the old comment, the old watermark.
    assert store.count_comments() == 1
    stored = store.get_comment(make_comment(1).id)
    assert stored is not None and stored.user_properties["string:Folder"] == "Inbox"
    state = store.get_folder_state("acme", "ap@acme.com", "AAMk-inbox")
    assert state is not None and (state.sync_state, state.items_synced) == ("s1", 1)
    assert store.usage("acme") == []


def test_usage_accumulates_per_day_and_mailbox(store: SqlStore) -> None:
    ap = UsageKey(integration="acme", mailbox="ap@acme.com", day=DAY)
    support = UsageKey(integration="acme", mailbox="support@acme.com", day=DAY)
    next_day = UsageKey(integration="acme", mailbox="ap@acme.com", day=date(2026, 11, 3))
    store.sync_comments([make_comment(1), make_comment(2)], usage=ap)
    store.sync_comments([make_comment(1), make_comment(3)], usage=ap)  # 1 unchanged, 1 new
    store.sync_comments([make_comment(3, mailbox="support@acme.com")], usage=support)  # properties only
    store.record_usage(next_day, SyncCounts(updated=1, updated_text_changed=1))
    store.record_usage(UsageKey(integration="other", mailbox="x@y.z", day=DAY), SyncCounts(new=9))

    rows = {(row.day, row.mailbox): row for row in store.usage("acme")}
    assert set(rows) == {(DAY, "ap@acme.com"), (DAY, "support@acme.com"), (date(2026, 11, 3), "ap@acme.com")}
    ap_row = rows[(DAY, "ap@acme.com")]
    assert (ap_row.new, ap_row.unchanged, ap_row.units) == (3, 1, 3)
    support_row = rows[(DAY, "support@acme.com")]
    assert (support_row.updated_properties_only, support_row.units) == (1, 0)
    assert rows[(date(2026, 11, 3), "ap@acme.com")].units == 1
    assert [row.day for row in store.usage("acme", since=date(2026, 11, 3))] == [date(2026, 11, 3)]


def test_replaying_a_batch_bills_nothing(store: SqlStore) -> None:
    key = UsageKey(integration="acme", mailbox="ap@acme.com", day=DAY)
    batch = [make_comment(i) for i in range(4)]
    store.sync_comments(batch, folder_state=_state(), usage=key)
    replay = store.sync_comments(batch, folder_state=_state(), usage=key)
    assert replay == SyncCounts(unchanged=4)
    [row] = store.usage("acme")
    assert (row.new, row.unchanged, row.units) == (4, 4, 4)
