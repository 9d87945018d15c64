"""The embedded comment store as a destination (the default kind, ``store``)."""

from __future__ import annotations

from collections.abc import Sequence

from exchange_sync.comment import ApiComment
from exchange_sync.config import IntegrationConfig
from exchange_sync.store import CommentStore, FolderState, SqlStore, StateStore, SyncCounts, UsageKey


class SqlStoreDestination:
    """Comments into ``store`` under ``source``, with the folder's watermark and the usage in the same
    transaction (``CommentStore.sync_comments``): the store is the run's checkpoints database."""

    def __init__(self, store: CommentStore, source: str) -> None:
        self.store, self.source = store, source

    @classmethod
    def from_config(cls, config: IntegrationConfig, *, state: StateStore, checkpoints: SqlStore) -> SqlStoreDestination:
        assert config.destination.kind == "store"
        return cls(checkpoints, config.destination.source_key)

    def load(self, comments: Sequence[ApiComment], *, folder_state: FolderState | None, usage: UsageKey,
             staged_path: str | None) -> SyncCounts:
        return self.store.sync_comments(comments, source=self.source, freeze_text=True, folder_state=folder_state,
                                        usage=usage)

    def close(self) -> None:
        """Nothing of its own: the store is the run's checkpoints database, closed with the run."""
