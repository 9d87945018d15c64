"""``CommentStore``: the embedded comment store (what the ``store`` destination and the comments API use).

``sync_comments`` also commits the folder's watermark and the usage ledger in the same transaction,
so a crash can never leave comments loaded without the watermark moving or the other way round: that
is why comments and the pipeline's state can share one database (``SqlStore``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from exchange_sync.comment import ApiComment, Comment
from exchange_sync.store import comments as comment_rows
from exchange_sync.store import state, usage as usage_ledger
from exchange_sync.store.database import Database
from exchange_sync.store.models import FolderState, SyncCounts, UsageKey

DEFAULT_SOURCE = "default"


class CommentStore(Database):
    # --- loading ---------------------------------------------------------------------------

    def sync_comments(
        self,
        batch: Iterable[Comment | ApiComment],
        *,
        source: str = DEFAULT_SOURCE,
        freeze_text: bool = True,
        folder_state: FolderState | None = None,
        usage: UsageKey | None = None,
    ) -> SyncCounts:
        """Sync semantics of the public ``POST /api/v1/sources/<project>/<source>/sync``.

        Per id: unknown -> inserted (``new``); known and equal (canonical JSON) -> ``unchanged``;
        known and different -> ``updated``, split into ``updated_text_changed`` (the text fields
        differ, see ``textpolicy``) or ``updated_properties_only``. ``freeze_text=True`` (the
        pipeline) keeps a known comment's frozen fields (subject, body, signature, language,
        timestamp) and takes everything else from the new copy, so it never counts a text change;
        ``freeze_text=False`` (the public API) replaces the whole comment.

        A batch with an id more than once: the last occurrence wins and the id is counted once
        (as if the batch held only that occurrence); the public API documents no duplicate rule,
        and this is the one that makes a batch equal to "its final state".

        ``folder_state`` and the ``usage`` of these counts are written in the same transaction.
        Replaying a batch is a no-op: everything ``unchanged``, zero units.
        """
        incoming = comment_rows.dedupe_last_wins(batch)

        def work(conn: Connection) -> SyncCounts:
            counts = comment_rows.sync_rows(conn, source, incoming, freeze=freeze_text)
            if folder_state is not None:
                state.upsert_folder_state(conn, folder_state)
            if usage is not None:
                usage_ledger.add_usage(conn, usage, counts)
            return counts

        return self._write(work)

    def get_comment(self, comment_id: str, source: str = DEFAULT_SOURCE) -> Comment | None:
        return self._read(lambda conn: comment_rows.get(conn, source, comment_id))

    def list_comments(
        self,
        source: str = DEFAULT_SOURCE,
        *,
        from_timestamp: datetime | None = None,
        to_timestamp: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> tuple[list[Comment], str | None]:
        """A page ordered by (timestamp, id) and the continuation for the next (None at the end).
        Raises ``InvalidContinuation`` for a token this store did not issue."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        return self._read(
            lambda conn: comment_rows.list_page(
                conn, source, from_timestamp=from_timestamp, to_timestamp=to_timestamp, after=after, limit=limit
            )
        )

    def count_comments(self, source: str = DEFAULT_SOURCE, **filters: Any) -> int:
        """Filters as in ``search_comments`` (mailbox, folder, sender_domain, since, until, text)."""
        clauses = comment_rows.filters(source, **filters)
        return self._read(lambda conn: comment_rows.count(conn, clauses))

    def search_comments(
        self,
        source: str = DEFAULT_SOURCE,
        mailbox: str | None = None,
        folder: str | None = None,
        sender_domain: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Comment]:
        """Newest first. See ``comments.filters`` for what each filter matches."""
        clauses = comment_rows.filters(
            source, mailbox=mailbox, folder=folder, sender_domain=sender_domain, since=since, until=until, text=text
        )
        return self._read(lambda conn: comment_rows.search(conn, clauses, limit=limit, offset=offset))

    def delete_comments(self, ids: Sequence[str], source: str = DEFAULT_SOURCE) -> int:
        return self._write(lambda conn: comment_rows.delete(conn, source, list(ids)))

    def list_sources(self) -> list[str]:
        return self._read(comment_rows.sources)
