"""What one run of an integration holds open: its typed collaborators.

Built once per flow run from the configuration (secrets resolved here, at run time, never stored)
and shared by the mailbox threads. Prefect-free.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from exchange_sync.config import IntegrationConfig
from exchange_sync.destinations import Destination, checkpoints_url, open_destination
from exchange_sync.pipeline.folder_cache import FolderCache
from exchange_sync.pipeline.transformer import Transformer
from exchange_sync.sources import Source, open_source
from exchange_sync.staging import Staging
from exchange_sync.store import SqlStore, StateStore


def checkpoint_store(config: IntegrationConfig) -> SqlStore:
    """The database holding an integration's watermarks and usage ledger, for callers without a run
    (``destinations.checkpoints_url``); a run has it as ``Runtime.checkpoints``."""
    return SqlStore(checkpoints_url(config))


@dataclass
class Runtime:
    """``state``: the state database (runs, mailbox statuses and health, leases, rejections, deletions,
    destination ledgers). ``checkpoints``: where folder watermarks, usage, folder lists and server info
    live (the comment store itself for the embedded destination, else ``state``). The source and the
    transform pool are started on first use (a run with nothing to fetch never starts the pool)."""

    config: IntegrationConfig
    state: StateStore
    checkpoints: StateStore
    destination: Destination
    staging: Staging
    _source: Source | None = None
    _transformer: Transformer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, config: IntegrationConfig) -> Runtime:
        state = SqlStore(config.state.url)
        url = checkpoints_url(config)
        checkpoints = state if url == config.state.url else SqlStore(url)
        return cls(config=config, state=state, checkpoints=checkpoints,
                   destination=open_destination(config, state=state, checkpoints=checkpoints),
                   staging=Staging(config.staging.url))

    @property
    def source(self) -> Source:
        """The mail source (``sources.registry``), created on first use (secrets are resolved here, not earlier)."""
        with self._lock:
            if self._source is None:
                self._source = open_source(self.config, self.checkpoints)
            return self._source

    @property
    def folder_cache(self) -> FolderCache:
        return FolderCache(self.checkpoints, self.config)

    @property
    def transformer(self) -> Transformer:
        """The transform pool of this run (see ``pipeline.transformer``), started on first use."""
        with self._lock:
            if self._transformer is None:
                self._transformer = Transformer(self.config)
            return self._transformer

    def close(self) -> None:
        if self._transformer is not None:
            self._transformer.close()
        if self._source is not None:
            self._source.close()
        self.destination.close()
        if self.checkpoints is not self.state:
            self.checkpoints.close()
