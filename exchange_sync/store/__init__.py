"""The embedded comment store and the pipeline's state database (SQLAlchemy Core).

SQLite file by default, PostgreSQL by URL. See ``SqlStore`` for the API and ``textpolicy`` for
what "text" means under the two text policies.
"""

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
from exchange_sync.store.sqlstore import DEFAULT_SOURCE, SqlStore

__all__ = [
    "DEFAULT_SOURCE",
    "Deletion",
    "FolderState",
    "InvalidContinuation",
    "LedgerEntry",
    "MailboxHealth",
    "MailboxStatus",
    "Rejected",
    "RunRecord",
    "SqlStore",
    "SyncCounts",
    "UsageKey",
    "UsageRow",
]
