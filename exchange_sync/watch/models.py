"""What a watch reports: per mailbox how it was watched and what its syncs did, and the totals."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

# streaming: EWS streaming notifications; pull: EWS pull notifications (GetEvents); polling: EWS
# SyncFolderItems every watch.poll_interval_s (a mailbox that cannot subscribe, reported with the
# reason); graph_polling: Graph delta every watch.graph_interval_s; skipped: not found / denied.
WatchMode = Literal["starting", "streaming", "pull", "polling", "graph_polling", "skipped", "stopped"]


class MailboxWatch(BaseModel):
    mailbox: str
    mode: WatchMode = "starting"
    reason: str | None = None  # why polled instead of notified, or why skipped
    events: int = 0  # notifications received for it
    syncs: int = 0  # folder syncs run (a catch-up counts as one)
    busy: int = 0  # syncs put off because another writer held the mailbox
    failures: int = 0
    resubscribes: int = 0
    items: int = 0
    new: int = 0
    updated: int = 0
    last_event_at: datetime | None = None
    last_sync_at: datetime | None = None
    last_lag_ms: int | None = None
    last_error: str | None = None


class WatchSummary(BaseModel):
    """The result of ``run_watch``: JSON-able (``model_dump(mode="json")``)."""

    integration: str
    started_at: datetime
    finished_at: datetime | None = None
    stopped_by: Literal["signal", "duration", "error"] = "signal"
    error: str | None = None  # "<reason>: <message>" when the watch stopped on an integration-wide failure
    mailboxes: list[MailboxWatch] = Field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        keys = ("events", "syncs", "busy", "failures", "resubscribes", "items", "new", "updated")
        return {k: sum(getattr(m, k) for m in self.mailboxes) for k in keys}

    @property
    def skipped(self) -> list[MailboxWatch]:
        return [m for m in self.mailboxes if m.mode == "skipped"]
