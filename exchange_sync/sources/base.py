"""The source contract: what the pipeline asks of any mail source (EWS, Graph, or the next one).

A source package (``sources/ews``, ``sources/graph``) implements these two protocols and adds one line
to ``sources/registry.py``. The pipeline only ever sees ``Source`` and ``MailboxSession``; the models it
exchanges with them (``FolderInfo``, ``ItemRef``, ``SyncPage``, ``FetchResult``, ``Participants``) live in
``sources/models.py`` and the errors it understands (each with a stable ``reason``) in ``sources/errors.py``.
Each source maps its own protocol's failures to those errors; nothing protocol-specific crosses this line.

Incremental state is a source's own opaque string (an EWS SyncState, a Graph delta link): the pipeline
stores it with the page it belongs to and hands it back, never reads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from .models import FetchResult, FolderInfo, ItemRef, Participants, SyncPage


@runtime_checkable
class MailboxSession(Protocol):
    """One mailbox through its source. Cheap to create; sends nothing until the first call."""

    email: str

    def all_folders(self) -> list[FolderInfo]:
        """Every folder of the mailbox (mail or not), before allow/deny lists: what the folder cache keeps."""

    def mail_folders(self, allowlist: Sequence[str] | None = None, denylist: Sequence[str] = ()) -> list[FolderInfo]:
        """The mail folders to sync (``sources.folders.select_mail_folders`` over ``all_folders``)."""

    def sync_pages(self, folder: FolderInfo, sync_state: str | None, *, page_size: int = 512) -> Iterator[SyncPage]:
        """Changes since ``sync_state`` (None: from the start), one page per request; each page carries the
        state after it, which the caller commits only once the page is loaded. Raises ``InvalidSyncState``
        when the server refuses a stored state (the folder is then resynced from None)."""

    def fetch(self, refs: Sequence[ItemRef], folder: FolderInfo, *, chunk_size: int | None = None) -> FetchResult:
        """The items' raw MIME as staged rows (``STAGED_SCHEMA``), in the order of ``refs``; vanished items in
        ``missing_ids``, per-item failures in ``failed`` (recorded as rejections, never fatal)."""

    def participants(self, refs: Sequence[ItemRef], *, chunk_size: int | None = None) -> Participants:
        """From/Sender/To/Cc addresses per item, for participant filters (without fetching the MIME)."""

    def find_range(self, folder: FolderInfo, start: datetime | None, end: datetime | None,
                   *, page_size: int = 512) -> Iterator[list[ItemRef]]:
        """Items received in [start, end), oldest first, one page per request: what a backfill reads (never
        touches the incremental state)."""


@runtime_checkable
class Source(Protocol):
    """One endpoint with one set of credentials, shared by every mailbox thread of a run (thread-safe).

    Opened by the registry from the configuration (secrets are resolved then, at run time); ``close`` is
    called once at the end of the run.
    """

    def open_mailbox(self, email: str, *, with_participants: bool = False) -> MailboxSession:
        """``with_participants``: the caller filters by participants; a source whose listing can return them
        (Graph: ``$select``) does so, so ``participants()`` needs no request; others ignore it."""

    def close(self) -> None: ...


class ServerInfoStore(Protocol):
    """Where a source may keep what it learnt about a server between runs (the state database)."""

    def get_server_info(self, integration: str, server: str) -> tuple[str, datetime] | None: ...

    def put_server_info(self, integration: str, server: str, data: str, learned_at: datetime) -> None: ...
