"""``StateStore``: the pipeline's state database: folder watermarks, deletions, rejections, the folder-list
and server-info caches, usage, runs, mailbox statuses and health, and the remote destinations' ledgers.
(Leases, watch state, bucket emails, filtered usage and integration errors are module functions over
the same engine: ``leases``, ``buckets``, ``usage_filtered``, ``errors``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from exchange_sync.store import ledger, state, usage as usage_ledger
from exchange_sync.store.database import Database
from exchange_sync.store.ledger import LedgerEntry
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


class StateStore(Database):
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
