"""Plain data passed between the source and the pipeline (no exchangelib types leak out)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import pyarrow as pa

# The source produces rows of the staging contract's schema (defined there, re-exported here).
from exchange_sync.staging import STAGED_SCHEMA  # noqa: F401 - re-exported: the staged rows a source hands over

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
    # Lowercased addresses of From, Sender, To and Cc when the listing returned them (Graph with a
    # participant filter), else None: ``participants()`` of the session reads them then.
    participants: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Participants:
    """What ``MailboxSession.participants`` returns: addresses per item id (From, Sender, To, Cc);
    ``missing_ids`` vanished since the listing; ``failed`` maps other per-item errors to a reason."""

    by_id: dict[str, tuple[str, ...]] = field(default_factory=dict)
    missing_ids: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


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




def size_chunks(refs: Sequence[ItemRef], max_items: int, max_bytes: int) -> Iterator[list[ItemRef]]:
    """``refs`` in order, cut at ``max_items`` or at ``max_bytes`` of the sizes the server reported
    (an item larger than ``max_bytes`` goes alone; an item without a size counts as 0)."""
    chunk: list[ItemRef] = []
    total = 0
    for ref in refs:
        size = ref.size or 0
        if chunk and (len(chunk) >= max_items or total + size > max_bytes):
            yield chunk
            chunk, total = [], 0
        chunk.append(ref)
        total += size
    if chunk:
        yield chunk
