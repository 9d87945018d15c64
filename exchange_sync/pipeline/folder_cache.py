"""Folder-list cache: what makes a no-change poll one sync request per folder.

Without it every run sends, per mailbox, the folder discovery requests (EWS: GetFolder + FindFolder).
(The EWS server version is cached by the source itself: ``sources/ews/version_cache.py``.) The cache
keeps in the checkpoint database:

- per mailbox, the full folder list (every folder under msgfolderroot, before allow/deny lists are
  applied, so a configuration change needs no refresh) with its ``refreshed_at``. It is rediscovered
  when older than ``folder_refresh_minutes`` (0 = every run), when a cached folder is gone on the
  server (SyncFolderItems answers ErrorFolderNotFound), or on demand (``forget_folders``).

A stale list can only miss folders *created* since the refresh (picked up at the next refresh) or
hold folders deleted since (detected by the failing sync, which triggers a refresh). Folder ids
never change when a folder is renamed or moved in Exchange, but the path does: the path used for
``string:Folder`` is refreshed with the list.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import datetime, timedelta, timezone

from exchange_sync.config import IntegrationConfig
from exchange_sync.sources.models import FolderInfo
from exchange_sync.store import StateStore

log = logging.getLogger("exchange_sync.pipeline")

def _now() -> datetime:
    return datetime.now(timezone.utc)


class FolderCache:
    def __init__(self, store: StateStore, config: IntegrationConfig) -> None:
        self.store = store
        self.integration = config.name
        self.max_age = timedelta(minutes=config.folder_refresh_minutes)

    def cached(self, mailbox: str) -> list[FolderInfo] | None:
        """The cached folder list if it is fresh enough, else None."""
        if self.max_age <= timedelta(0):
            return None
        row = self.store.get_folder_list(self.integration, mailbox)
        if row is None:
            return None
        data, refreshed_at = row
        if _now() - refreshed_at >= self.max_age:
            return None
        try:
            return [FolderInfo(**f) for f in json.loads(data)]
        except (ValueError, TypeError) as exc:  # written by another version: rediscover
            log.warning("folder cache of %s unreadable (%s); rediscovering", mailbox, exc)
            return None

    def discover(self, session) -> list[FolderInfo]:
        """Ask the server (GetFolder + FindFolder) and store the list."""
        folders = session.all_folders()
        self.store.put_folder_list(self.integration, session.email, json.dumps([asdict(f) for f in folders]), _now())
        return folders

    def folders(self, session) -> tuple[list[FolderInfo], bool]:
        """(every folder of the mailbox, whether it came from the cache)."""
        cached = self.cached(session.email)
        if cached is not None:
            return cached, True
        return self.discover(session), False

    def forget(self, mailbox: str | None = None) -> int:
        return self.store.forget_folder_lists(self.integration, mailbox)


def forget_folders(config: IntegrationConfig, mailbox: str | None = None) -> int:
    """On demand: make the next run rediscover the folders of ``mailbox`` (or of every mailbox)."""
    from exchange_sync.pipeline.runtime import checkpoint_store

    store = checkpoint_store(config)
    try:
        return FolderCache(store, config).forget(mailbox.lower() if mailbox else None)
    finally:
        store.close()
