"""The embedded comment store and the pipeline's state database (SQLAlchemy Core).

SQLite file by default, PostgreSQL by URL. ``CommentStore`` (comments) and ``StateStore`` (watermarks,
usage, runs, mailbox health, caches, ledgers) are the two facades over one engine; ``SqlStore`` is
both. ``textpolicy`` says what "text" means under the two text policies.
"""

from exchange_sync.store.comment_store import DEFAULT_SOURCE, CommentStore
from exchange_sync.store.comments import InvalidContinuation
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
from exchange_sync.store.sqlstore import SqlStore
from exchange_sync.store.state_store import StateStore

__all__ = [
    "DEFAULT_SOURCE",
    "CommentStore",
    "Deletion",
    "FolderState",
    "InvalidContinuation",
    "LedgerEntry",
    "MailboxHealth",
    "MailboxStatus",
    "Rejected",
    "RunRecord",
    "SqlStore",
    "StateStore",
    "SyncCounts",
    "UsageKey",
    "UsageRow",
]
