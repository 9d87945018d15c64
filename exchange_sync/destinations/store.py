"""The embedded store as a destination (the default)."""

from __future__ import annotations

from collections.abc import Sequence

from exchange_sync.comment import Comment
from exchange_sync.store import DEFAULT_SOURCE, SqlStore, SyncCounts


class StoreDestination:
    """Thin: ``SqlStore.sync_comments`` on one source. (The pipeline calls the store directly when
    it also needs the folder's watermark in the same transaction.)"""

    def __init__(self, store: SqlStore, source: str = DEFAULT_SOURCE) -> None:
        self.store = store
        self.source = source

    def sync(self, comments: Sequence[Comment], *, freeze_text: bool = True) -> SyncCounts:
        return self.store.sync_comments(comments, source=self.source, freeze_text=freeze_text)
