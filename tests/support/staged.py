"""Staged batches built in memory, for tests that exercise staging or the transform without a server."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

from exchange_sync.staging import STAGED_SCHEMA

RECEIVED = datetime(2024, 1, 1, tzinfo=timezone.utc)


def staged_table(mime: list[bytes], *, mailbox: str = "a@example.com", folder_id: str = "f",
                 folder_path: str = "Inbox") -> pa.Table:
    """A staged batch (``STAGED_SCHEMA``) of one row per message: item ids ``i0``, ``i1``, ..."""
    n = len(mime)
    return pa.table({
        "mailbox": [mailbox] * n, "folder_id": [folder_id] * n, "folder_path": [folder_path] * n,
        "item_id": [f"i{k}" for k in range(n)], "change_key": ["c"] * n, "change_type": ["create"] * n,
        "internet_message_id": [None] * n, "datetime_received": [RECEIVED] * n,
        "conversation_id": [None] * n, "size": [len(m) for m in mime], "mime_content": mime,
    }, schema=STAGED_SCHEMA)
