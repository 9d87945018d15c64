"""The bucket destination against our own comments API over HTTP: raw MIME and metadata as the hosted
integration sends them, replace-by-id (a replay or a move never duplicates), counts from the ledger,
batching, retries, quota and token errors."""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import pytest

from exchange_sync.destinations.bucket import ReinferBucketClient
from exchange_sync.destinations.reinfer_http import ReinferAuthError, ReinferQuotaError
from exchange_sync.store import SqlStore, SyncCounts
from exchange_sync.store import buckets as bucket_store
from tests.support.api import running_api
from tests.support.comments import make_comment
from tests.support.faults import FaultInjector, FaultRule

WHEN = datetime(2026, 11, 2, 9, 14, 3, tzinfo=timezone.utc)


def _page(n: int, folder: str = "Inbox/Suppliers") -> tuple[list[dict], list[dict]]:
    """Staged rows (STAGED_SCHEMA's fields) and the comments the transform made of them."""
    rows, comments = [], []
    for i in range(n):
        mime = (f"From: ann@acme.com\r\nMessage-ID: <{i}@acme.com>\r\nImportance: high\r\nSensitivity: Private\r\n"
                f"Keywords: Red, Invoices\r\nThread-Topic: Invoice {i}\r\nSubject: Invoice {i}\r\n\r\nbody {i}\r\n").encode()
        rows.append({"mailbox": "ap@acme.com", "folder_id": "f", "folder_path": folder, "item_id": f"item-{i}",
                     "change_key": "ck", "change_type": "create", "internet_message_id": f"<{i}@acme.com>",
                     "datetime_received": WHEN, "conversation_id": f"conv-{i}", "size": len(mime), "mime_content": mime})
        comment = make_comment(i, folder=folder, attachments=[{"name": "a.pdf", "size": 10,
                                                                "content_type": "application/pdf"}] if i == 0 else None,
                               extra_properties={"string:Item ID": f"item-{i}"}).to_api()
        comments.append(comment)
    return rows, comments


def _dest(api, ledger: SqlStore, **kw) -> ReinferBucketClient:
    options = {"backoff_base": 0.001, "backoff_max": 0.01} | kw
    token = options.pop("token", api.token)
    return ReinferBucketClient(api.url, "acme", "raw-mail", token, ledger=ledger, **options)


def test_emails_as_the_hosted_integration_sends_them_replaced_by_id(tmp_path):
    calls: list[FaultInjector] = []

    def wrap(app):
        calls.append(FaultInjector(app, []))
        return calls[0]

    with running_api(f"sqlite:///{tmp_path / 'api.db'}", wrap=wrap) as api, \
            SqlStore(f"sqlite:///{tmp_path / 'state.db'}") as ledger:
        dest = _dest(api, ledger, max_emails=2)
        rows, comments = _page(5)
        assert dest.load_staged(iter(rows), comments) == SyncCounts(new=5)
        assert sum(1 for m, _, s in calls[0].requests if m == "PUT" and s == 200) == 3  # 2 + 2 + 1
        assert dest.load_staged(iter(rows), comments) == SyncCounts(unchanged=5)  # a replay
        moved_rows, moved_comments = _page(2, folder="Archive")
        assert dest.load_staged(iter(moved_rows), moved_comments) == SyncCounts(updated=2, updated_properties_only=2)
        held = {e["id"]: e for e in bucket_store.list_emails(api.store, "acme/raw-mail")}
        assert len(held) == 5  # never duplicated
        first = held[comments[0]["id"]]
        assert base64.b64decode(first["mime_content"]) == rows[0]["mime_content"]
        assert first["mailbox"] == "ap@acme.com" and first["timestamp"].startswith("2026-11-02T09:14:03")
        assert first["metadata"] == {"folder": ["Archive"], "received_at": first["timestamp"], "has_attachments": True,
                                     "importance": "High", "sensitivity": "Private", "categories": ["Red", "Invoices"],
                                     "conversation_topic": "Invoice 0", "conversation_id": "conv-0",
                                     "size": rows[0]["size"]}
        assert first["attachments"] == [{"name": "a.pdf", "size": 10, "content_type": "application/pdf"}]
        assert held[comments[4]["id"]]["metadata"]["folder"] == ["Inbox", "Suppliers"]


def test_retries_then_quota_and_token_errors_fail_at_once(tmp_path):
    rules = [FaultRule("PUT", "/emails", 503, times=2, retry_after="0")]
    injector: list[FaultInjector] = []

    def wrap(app):
        injector.append(FaultInjector(app, rules))
        return injector[0]

    with running_api(f"sqlite:///{tmp_path / 'api.db'}", wrap=wrap, comment_quota=3) as api, \
            SqlStore(f"sqlite:///{tmp_path / 'state.db'}") as ledger:
        rows, comments = _page(5)
        assert _dest(api, ledger).load_staged(iter(rows[:3]), comments[:3]) == SyncCounts(new=3)  # after two 503s
        before = len(injector[0].requests)
        with pytest.raises(ReinferQuotaError, match="quota"):
            _dest(api, ledger).load_staged(iter(rows), comments)
        assert len(injector[0].requests) == before + 1  # a quota refusal is not retried
        with pytest.raises(ReinferAuthError) as caught:
            _dest(api, ledger, token="wrong-token-" + "q" * 20).load_staged(iter(rows), comments)
        assert "wrong-token" not in str(caught.value)
        assert bucket_store.count_emails(api.store, "acme/raw-mail") == 3
