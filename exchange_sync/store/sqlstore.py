"""``SqlStore``: the embedded comment store and the pipeline's state database behind one object.

Thread-safe: it holds only an engine (a connection pool); every call takes its own connection.
Every write is one transaction (see engine.write_transaction); ``sync_comments`` also commits the
folder's watermark and the usage ledger in that same transaction, so a crash can never leave
comments loaded without the watermark moving or the other way round.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from exchange_sync.comment import ApiComment, Comment
from exchange_sync.store import comments as comment_rows
from exchange_sync.store import ledger, state, usage as usage_ledger
from exchange_sync.store.ledger import LedgerEntry
from exchange_sync.store.engine import create_store_engine, read_transaction, write_transaction
from exchange_sync.store.models import (
    Deletion,
    FolderState,
    MailboxHealth,
    MailboxStatus,
    Rejected,
    RunRecord,
    SyncCounts,
    UsageKey,
    UsageRow,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_SOURCE = "default"
# SQLSTATEs worth replaying the whole transaction for: serialization_failure, deadlock_detected.
_RETRY_SQLSTATES = {"40001", "40P01"}
_MAX_ATTEMPTS = 6


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


class SqlStore:
    """See the module docstring; ``url`` is a SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://``)."""

    def __init__(self, url: str, *, create_tables: bool = True) -> None:
        self.url = url
        self.engine = create_store_engine(url, create_tables=create_tables)

    def __repr__(self) -> str:
        return f"SqlStore({make_url(self.url).render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- transactions ------------------------------------------------------------------------

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction, replaying it on a PostgreSQL deadlock/serialisation
        failure (the transaction rolled back entirely, so a replay is safe)."""
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                with write_transaction(self.engine) as conn:
                    return work(conn)
            except DBAPIError as exc:
                if _sqlstate(exc) not in _RETRY_SQLSTATES or attempt == _MAX_ATTEMPTS:
                    raise
                log.info("store transaction retried after %s (attempt %d)", _sqlstate(exc), attempt)
                time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    def _read(self, work: Callable[[Connection], T]) -> T:
        with read_transaction(self.engine) as conn:
            return work(conn)

    # --- comments ----------------------------------------------------------------------------

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

    # --- folder state, deletions, rejections -----------------------------------------------

    def get_folder_state(self, integration: str, mailbox: str, folder_id: str) -> FolderState | None:
        return self._read(lambda conn: state.get_folder_state(conn, integration, mailbox, folder_id))

    def set_folder_state(self, folder_state: FolderState) -> None:
        self._write(lambda conn: state.upsert_folder_state(conn, folder_state))

    def list_folder_states(self, integration: str) -> list[FolderState]:
        return self._read(lambda conn: state.list_folder_states(conn, integration))

    def record_deletions(self, integration: str, mailbox: str, items: Sequence[Deletion]) -> None:
        """Deletes are recorded (idempotently); the comments stay."""
        self._write(lambda conn: state.record_deletions(conn, integration, mailbox, list(items)))

    def count_deletions(self, integration: str, mailbox: str | None = None) -> int:
        return self._read(lambda conn: state.count_deletions(conn, integration, mailbox))

    def record_rejections(self, integration: str, items: Sequence[Rejected]) -> None:
        """One row per (mailbox, item_id); re-rejecting an item updates its reason and time."""
        self._write(lambda conn: state.record_rejections(conn, integration, list(items)))

    def list_rejections(self, integration: str) -> list[Rejected]:
        return self._read(lambda conn: state.list_rejections(conn, integration))

    # --- folder-list cache and server info (exchange_sync.pipeline.folder_cache) ---------------

    def put_folder_list(self, integration: str, mailbox: str, folders_json: str, refreshed_at: datetime) -> None:
        self._write(lambda conn: state.put_folder_list(conn, integration, mailbox, folders_json, refreshed_at))

    def get_folder_list(self, integration: str, mailbox: str) -> tuple[str, datetime] | None:
        """(folders JSON, refreshed_at) of the cached folder list, or None."""
        return self._read(lambda conn: state.get_folder_list(conn, integration, mailbox))

    def forget_folder_lists(self, integration: str, mailbox: str | None = None) -> int:
        """Drop cached folder lists (all mailboxes of the integration when ``mailbox`` is None):
        the next run discovers folders again."""
        return self._write(lambda conn: state.delete_folder_lists(conn, integration, mailbox))

    def put_server_info(self, integration: str, endpoint: str, info_json: str, learned_at: datetime) -> None:
        self._write(lambda conn: state.put_server_info(conn, integration, endpoint, info_json, learned_at))

    def get_server_info(self, integration: str, endpoint: str) -> tuple[str, datetime] | None:
        return self._read(lambda conn: state.get_server_info(conn, integration, endpoint))

    # --- usage -------------------------------------------------------------------------------

    def record_usage(self, key: UsageKey, counts: SyncCounts) -> None:
        self._write(lambda conn: usage_ledger.add_usage(conn, key, counts))

    def usage(self, integration: str, since: date | None = None) -> list[UsageRow]:
        """Rows per (day, mailbox), oldest day first, ``since`` inclusive."""
        return self._read(lambda conn: usage_ledger.usage_rows(conn, integration, since))

    # --- runs and mailbox statuses -----------------------------------------------------------

    def start_run(self, integration: str, mode: str, owner: dict[str, Any] | None = None) -> int:
        return self._write(lambda conn: state.start_run(conn, integration, mode, owner))

    def mark_stale_runs(self, integration: str, is_dead: Any) -> list[int]:
        """See ``state.mark_stale_runs``."""
        return self._write(lambda conn: state.mark_stale_runs(conn, integration, is_dead))

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        self._write(lambda conn: state.finish_run(conn, run_id, status, summary))

    def list_runs(self, integration: str, limit: int = 20) -> list[RunRecord]:
        """Newest first."""
        return self._read(lambda conn: state.list_runs(conn, integration, limit))

    def set_mailbox_status(
        self,
        integration: str,
        mailbox: str,
        status: str,
        reason: str | None = None,
        error_count_delta: int = 0,
    ) -> None:
        self._write(
            lambda conn: state.set_mailbox_status(conn, integration, mailbox, status, reason, error_count_delta)
        )

    def mailbox_statuses(self, integration: str) -> list[MailboxStatus]:
        return self._read(lambda conn: state.mailbox_statuses_of(conn, integration))

    # --- mailbox health: consecutive failures and disabling ---------------------------------

    def record_mailbox_outcome(
        self, integration: str, mailbox: str, failure_reason: str | None, disable_after: int
    ) -> MailboxHealth:
        """See ``state.record_mailbox_outcome``; returns the mailbox's health after this run."""
        return self._write(
            lambda conn: state.record_mailbox_outcome(conn, integration, mailbox, failure_reason, disable_after)
        )

    def enable_mailbox(self, integration: str, mailbox: str) -> MailboxHealth:
        return self._write(lambda conn: state.set_mailbox_enabled(conn, integration, mailbox))

    def mailbox_health(self, integration: str) -> list[MailboxHealth]:
        return self._read(lambda conn: state.list_mailbox_health(conn, integration))

    # --- destination ledger (remote destinations, see destinations/reinfer.py) ----------------

    def ledger_get(self, destination: str, ids: Sequence[str]) -> dict[str, LedgerEntry]:
        return self._read(lambda conn: ledger.get_entries(conn, destination, list(ids)))

    def ledger_put(self, destination: str, entries: Sequence[LedgerEntry]) -> None:
        self._write(lambda conn: ledger.put_entries(conn, destination, list(entries)))

    def ledger_forget(self, destination: str, ids: Sequence[str]) -> None:
        self._write(lambda conn: ledger.delete_entries(conn, destination, list(ids)))
