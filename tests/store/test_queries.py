"""Reads: get, keyset pagination, search filters, count, delete."""

from __future__ import annotations

from datetime import timedelta

import pytest

from exchange_sync.store import InvalidContinuation, SqlStore
from tests.support.comments import BASE_TIME, comment_id, make_comment


def _walk(store: SqlStore, limit: int, **kwargs: object) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        page, after = store.list_comments(after=after, limit=limit, **kwargs)  # type: ignore[arg-type]
        ids.extend(c.id for c in page)
        if after is None:
            return ids


def test_pagination_orders_by_timestamp_then_id(store: SqlStore) -> None:
    # Three comments share one timestamp: the id breaks the tie.
    same = BASE_TIME + timedelta(hours=1)
    batch = [make_comment(i) for i in range(10)] + [make_comment(f"x{i}", timestamp=same) for i in range(3)]
    store.sync_comments(batch)
    expected = [c.id for c in sorted(batch, key=lambda c: (c.timestamp, c.id))]
    for limit in (1, 2, 3, 5, 13, 100):
        assert _walk(store, limit) == expected
    page, continuation = store.list_comments(limit=13)
    assert len(page) == 13 and continuation is None


def test_time_range_is_half_open(store: SqlStore) -> None:
    store.sync_comments([make_comment(i) for i in range(10)])
    ids = _walk(store, 3, from_timestamp=BASE_TIME + timedelta(minutes=2), to_timestamp=BASE_TIME + timedelta(minutes=5))
    assert ids == [comment_id(2), comment_id(3), comment_id(4)]


@pytest.mark.parametrize("token", ["garbage!!", "", "e30", "WyJub3QtYS1kYXRlIiwgMV0"])
def test_invalid_continuation(store: SqlStore, token: str) -> None:
    store.sync_comments([make_comment(1)])
    if token == "":
        assert len(store.list_comments(after=token)[0]) == 1
        return
    with pytest.raises(InvalidContinuation):
        store.list_comments(after=token)


def test_search_filters(store: SqlStore) -> None:
    store.sync_comments(
        [
            make_comment(1, mailbox="AP@acme.com", folder="Inbox", sender="a@Supplier.com", body="100% paid"),
            make_comment(2, mailbox="ap@acme.com", folder="Inbox/Suppliers", sender="b@supplier.com"),
            make_comment(3, mailbox="support@acme.com", folder="Inboxes", sender="c@other.org", subject="Ünïcode Subject"),
            make_comment(4, mailbox="support@acme.com", folder="Archive", sender="d@other.org", body="under_score"),
        ]
    )

    def ids(**filters: object) -> list[str]:
        return sorted(c.id for c in store.search_comments("default", **filters))  # type: ignore[arg-type]

    assert ids(mailbox="ap@ACME.com") == sorted([comment_id(1), comment_id(2)])
    # A folder matches itself and its subfolders, not a sibling sharing a prefix.
    assert ids(folder="Inbox") == sorted([comment_id(1), comment_id(2)])
    assert ids(folder="Inbox/Suppliers") == [comment_id(2)]
    assert ids(sender_domain="SUPPLIER.com") == sorted([comment_id(1), comment_id(2)])
    assert ids(text="ünïcode") == [comment_id(3)]
    # LIKE wildcards in the query are literal characters.
    assert ids(text="100%") == [comment_id(1)]
    assert ids(text="%") == [comment_id(1)]
    assert ids(text="r_s") == [comment_id(4)]
    assert ids(text="e_s") == []
    assert ids(since=BASE_TIME + timedelta(minutes=2), until=BASE_TIME + timedelta(minutes=4)) == sorted(
        [comment_id(2), comment_id(3)]
    )
    assert ids(mailbox="support@acme.com", text="invoice 4") == [comment_id(4)]
    assert store.count_comments(mailbox="support@acme.com") == 2
    assert store.count_comments(text="nothing like this") == 0
    newest_first = [c.id for c in store.search_comments("default", limit=2)]
    assert newest_first == [comment_id(4), comment_id(3)]
    assert [c.id for c in store.search_comments("default", limit=2, offset=2)] == [comment_id(2), comment_id(1)]


def test_delete(store: SqlStore) -> None:
    store.sync_comments([make_comment(i) for i in range(4)])
    assert store.delete_comments([comment_id(1), comment_id(2), comment_id(2), "ffff"]) == 2
    assert store.get_comment(comment_id(1)) is None
    assert store.count_comments() == 2
    assert store.delete_comments([]) == 0
    # A deleted id comes back as new.
    assert store.sync_comments([make_comment(1)]).new == 1
