"""What Exchange tells us about an item (input) and why an item could not become a comment (output)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ExchangeMeta:
    """Exchange's view of one item; every field is optional (the CLI transforms bare .eml files)."""

    mailbox: str | None = None
    folder_path: str | None = None
    datetime_received: datetime | None = None
    conversation_id: str | None = None
    item_id: str | None = None
    internet_message_id: str | None = None


@dataclass(frozen=True)
class Rejection:
    """An input that truly cannot be a comment, with a precise reason (recorded by the pipeline)."""

    reason: str
    item_id: str | None = None
    mailbox: str | None = None
    folder_path: str | None = None
    message_id: str | None = None
