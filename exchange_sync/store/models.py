"""Value types of the store's public API (pydantic, so they validate and serialise)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class SyncCounts(BaseModel):
    """Counts of one sync, as in the public API's sync response.

    ``updated = updated_properties_only + updated_text_changed``; usage units (DESIGN 1.10) are
    ``new + updated_text_changed``.
    """

    model_config = ConfigDict(frozen=True)

    new: int = 0
    updated: int = 0
    updated_properties_only: int = 0
    updated_text_changed: int = 0
    unchanged: int = 0

    @property
    def units(self) -> int:
        return self.new + self.updated_text_changed

    @property
    def total(self) -> int:
        return self.new + self.updated + self.unchanged

    def __add__(self, other: object) -> SyncCounts:
        if not isinstance(other, SyncCounts):
            return NotImplemented
        return SyncCounts(
            new=self.new + other.new,
            updated=self.updated + other.updated,
            updated_properties_only=self.updated_properties_only + other.updated_properties_only,
            updated_text_changed=self.updated_text_changed + other.updated_text_changed,
            unchanged=self.unchanged + other.unchanged,
        )

    def __radd__(self, other: object) -> SyncCounts:
        # sum(counts_list) starts from 0.
        if other == 0:
            return self
        return self.__add__(other)


class FolderState(BaseModel):
    """The watermark of one (integration, mailbox, folder): EWS SyncState and bookkeeping.

    ``items_synced`` is stored as given (the caller keeps it cumulative: one folder is synced by
    one thread at a time, so read-add-write by the caller is race-free).
    """

    integration: str = Field(min_length=1, max_length=255)
    mailbox: str = Field(min_length=1, max_length=320)
    folder_id: str = Field(min_length=1, max_length=1024)
    folder_path: str = ""
    sync_state: str | None = None
    items_synced: int = Field(default=0, ge=0)
    last_synced_at: datetime | None = None
    last_error: str | None = None


class Deletion(BaseModel):
    folder_id: str
    item_id: str
    deleted_at: datetime = Field(default_factory=utcnow)


class Rejected(BaseModel):
    mailbox: str
    folder_path: str
    item_id: str
    message_id: str | None = None
    reason: str
    rejected_at: datetime = Field(default_factory=utcnow)


class UsageKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    integration: str
    mailbox: str
    day: date


class UsageRow(BaseModel):
    integration: str
    day: date
    mailbox: str
    new: int
    updated_properties_only: int
    updated_text_changed: int
    unchanged: int
    units: int


class RunRecord(BaseModel):
    id: int
    integration: str
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    summary: dict[str, Any] | None = None


class MailboxStatus(BaseModel):
    integration: str
    mailbox: str
    status: str
    reason: str | None = None
    error_count: int = 0
    updated_at: datetime


class MailboxHealth(BaseModel):
    """Consecutive failures of a mailbox and whether it is disabled (see ``SqlStore.record_mailbox_outcome``)."""

    integration: str
    mailbox: str
    failure_reason: str | None = None
    consecutive_failures: int = 0
    disabled: bool = False
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    updated_at: datetime | None = None
