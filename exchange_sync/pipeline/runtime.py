"""What one run of an integration holds open: the Exchange source, the stores, the staging area.

Built once per flow run from the configuration (secrets resolved here, at run time, never stored)
and shared by the mailbox threads. Prefect-free.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from exchange_sync.comment import ApiComment, Comment
from exchange_sync.config import IntegrationConfig, ReinferBucketDestination, ReinferDestination, StoreDestination
from exchange_sync.sources import Source, open_source
from exchange_sync.staging import Staging
from exchange_sync.store import FolderState, SqlStore, SyncCounts, UsageKey


class Loader:
    """Loads comments and commits a folder's watermark, as atomically as the destination allows.

    Embedded store: comments, the folder's sync state and the usage units commit in ONE
    transaction of the store's database, so a crash can neither lose a page nor bill it twice.
    Remote destinations: load first, then commit state and usage to the state database; a crash
    in between replays the page, which the destination answers as ``unchanged`` (idempotent).
    A bucket destination (``reinfer_bucket``) loads the page's staged raw MIME, one email per comment.
    The ``reinfer`` destination then uploads the page's stored attachment content (mailboxes with
    ``attachments.sync``), after the comments were synced, before the watermark is committed.
    """

    def __init__(self, config: IntegrationConfig, state: SqlStore) -> None:
        self.config = config
        self.state = state
        dest = config.destination
        self.remote = None
        self.bucket = None
        if isinstance(dest, StoreDestination):
            self.store = state if dest.url == config.state.url else SqlStore(dest.url)
            self.source_name = dest.source_key
        elif isinstance(dest, ReinferBucketDestination):
            self.store = None
            self.source_name = f"bucket:{dest.owner}/{dest.bucket}"
            self.remote = self.bucket = _build_bucket(dest, ledger=state)
            self.staging = Staging(config.staging.url)
        else:
            self.store = None
            self.source_name = f"{dest.project}/{dest.source}"
            self.remote = _build_remote(dest, ledger=state)

    @property
    def checkpoints(self) -> SqlStore:
        """Where folder watermarks and usage live: next to the comments when we own the store."""
        return self.store if self.store is not None else self.state

    def load(self, comments: Sequence[Comment | ApiComment], *, folder_state: FolderState | None, mailbox: str, day: date,
             staged_path: str | None = None) -> SyncCounts:
        """``staged_path``: the page's staged batch (what a bucket destination sends)."""
        usage = UsageKey(integration=self.config.name, mailbox=mailbox, day=day)
        if self.store is not None:
            return self.store.sync_comments(
                comments, source=self.source_name, freeze_text=True, folder_state=folder_state, usage=usage
            )
        assert self.remote is not None
        if self.bucket is not None:
            counts = self._load_bucket(comments, staged_path)
        else:
            counts = self.remote.sync(comments, freeze_text=True) if comments else SyncCounts()
            if comments and self._uploads_attachments(mailbox):
                from exchange_sync.attachments import AttachmentStore, attachments_url

                self.remote.upload_attachments(comments, AttachmentStore(attachments_url(self.config.staging.url)))
        if folder_state is not None:
            self.state.set_folder_state(folder_state)
        self.state.record_usage(usage, counts)
        return counts

    def _uploads_attachments(self, mailbox: str) -> bool:
        """The Re:infer destination uploads stored attachment content for a mailbox with attachments.sync."""
        return any(mb.email == mailbox and mb.attachments.sync for mb in self.config.mailboxes)

    def _load_bucket(self, comments: Sequence[Comment | ApiComment], staged_path: str | None) -> SyncCounts:
        if not comments:
            return SyncCounts()
        if staged_path is None:
            raise ValueError("a bucket destination loads staged batches: no staged batch was given")
        api = [c if isinstance(c, dict) else c.to_api() for c in comments]
        rows = (row for part in self.staging.iter_batch(staged_path, 16) for row in part.to_pylist())
        return self.bucket.load_staged(rows, api)

    def close(self) -> None:
        for closable in (self.remote, self.store if self.store is not self.state else None):
            close = getattr(closable, "close", None)
            if close:
                close()


def checkpoint_store(config: IntegrationConfig) -> SqlStore:
    """The database holding an integration's watermarks and usage ledger (see ``Loader``)."""
    dest = config.destination
    return SqlStore(dest.url if isinstance(dest, StoreDestination) else config.state.url)


def _build_remote(dest: ReinferDestination, *, ledger: SqlStore):
    from exchange_sync.destinations.reinfer import ReinferDestination as Remote

    token = dest.token.resolve()
    return Remote(
        base_url=dest.url,
        project=dest.project,
        source=dest.source,
        token=token.get_secret_value(),
        verify=str(dest.ca_bundle) if dest.ca_bundle else dest.verify_tls,
        ledger=ledger,  # what was sent, to keep text frozen without re-reading (docs/destinations.md)
    )


def _build_bucket(dest: ReinferBucketDestination, *, ledger: SqlStore):
    from exchange_sync.destinations.bucket import ReinferBucketDestination as Bucket

    return Bucket(base_url=dest.url, owner=dest.owner, bucket=dest.bucket, token=dest.token.resolve().get_secret_value(),
                  verify=str(dest.ca_bundle) if dest.ca_bundle else dest.verify_tls, ledger=ledger)


@dataclass
class Runtime:
    config: IntegrationConfig
    state: SqlStore
    loader: Loader
    staging: Staging
    _source: Source | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _transformer: object | None = None

    @classmethod
    def open(cls, config: IntegrationConfig) -> "Runtime":
        state = SqlStore(config.state.url)
        return cls(config=config, state=state, loader=Loader(config, state), staging=Staging(config.staging.url))

    @property
    def source(self) -> Source:
        """The mail source (``sources.registry``), created on first use (secrets are resolved here, not earlier)."""
        with self._lock:
            if self._source is None:
                self._source = open_source(self.config, self.loader.checkpoints)
            return self._source

    @property
    def folder_cache(self):
        from exchange_sync.pipeline.folder_cache import FolderCache

        return FolderCache(self.loader.checkpoints, self.config)

    @property
    def transformer(self):
        """The transform pool of this run (see ``pipeline.transformer``), started on first use."""
        from exchange_sync.pipeline.transformer import Transformer

        with self._lock:
            if self._transformer is None:
                self._transformer = Transformer(self.config)
            return self._transformer

    def close(self) -> None:
        if self._transformer is not None:
            self._transformer.close()
        if self._source is not None:
            self._source.close()
        self.loader.close()
