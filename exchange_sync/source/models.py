"""Plain data passed between the source and the pipeline (no exchangelib types leak out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import pyarrow as pa

ChangeType = Literal["create", "update", "backfill"]


@dataclass(frozen=True)
class FolderInfo:
    folder_id: str
    path: str  # display path under the message folder root, "/"-separated, e.g. "Inbox/Suppliers"
    display_name: str
    folder_class: str  # e.g. "IPF.Note"
    distinguished_id: str | None  # "inbox", "sentitems", ... for well-known folders
    change_key: str | None = None
    parent_id: str | None = None
    total_count: int | None = None


@dataclass(frozen=True)
class ItemRef:
    item_id: str
    change_key: str
    change_type: ChangeType
    datetime_received: datetime | None
    internet_message_id: str | None
    size: int | None
    conversation_id: str | None = None


@dataclass(frozen=True)
class SyncPage:
    changes: list[ItemRef]  # creates and updates, in server order
    deletes: list[str]  # item ids
    read_flag_changes: int
    sync_state: str  # the state AFTER this page; commit it only after the page is loaded
    last_page: bool  # IncludesLastItemInRange


@dataclass(frozen=True)
class FetchResult:
    """What ``MailboxSession.fetch`` returns.

    table: staged rows (STAGED_SCHEMA), one per fetched item, in the order of the requested refs.
    missing_ids: ids that vanished between sync and fetch (ErrorItemNotFound): skipped, normal after a move/delete.
    failed: other per-item errors (e.g. ErrorMimeContentConversionFailed, ErrorItemCorrupt): id -> "Code: text";
      the pipeline records them as rejections.
    """

    table: pa.Table
    missing_ids: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


# Columns of a staged batch, exactly as in docs/architecture.md.
STAGED_SCHEMA = pa.schema(
    [
        pa.field("mailbox", pa.string(), nullable=False),
        pa.field("folder_id", pa.string(), nullable=False),
        pa.field("folder_path", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("change_key", pa.string(), nullable=False),
        pa.field("change_type", pa.string(), nullable=False),
        pa.field("internet_message_id", pa.string(), nullable=True),
        pa.field("datetime_received", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("conversation_id", pa.string(), nullable=True),
        pa.field("size", pa.int64(), nullable=True),
        pa.field("mime_content", pa.binary(), nullable=False),
    ]
)
