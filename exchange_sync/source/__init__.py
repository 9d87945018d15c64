"""Extraction from Exchange over EWS (Prefect-free). See docs/source.md.

    with EwsSource(config.connection, secret, max_connections=4) as src:
        mb = src.open_mailbox("ap@acme.com")
        for folder in mb.mail_folders(allowlist, denylist):
            for page in mb.sync_pages(folder, state, page_size=512):
                result = mb.fetch(page.changes, folder)       # FetchResult(table, missing_ids, failed)
                ... stage + load result.table, then commit page.sync_state
"""

from .errors import (
    FolderNotFound,
    InvalidCredentials,
    InvalidSyncState,
    MailboxAccessDenied,
    MailboxNotFound,
    ServerRejectedRequest,
    ServerUnavailable,
    SourceError,
    TlsError,
)
from .ews import EwsSource, MailboxSession, SourceConfigError
from .models import STAGED_SCHEMA, FetchResult, FolderInfo, ItemRef, SyncPage
from .tls import TlsConfigError

__all__ = [
    "EwsSource",
    "MailboxSession",
    "FolderInfo",
    "ItemRef",
    "SyncPage",
    "FetchResult",
    "STAGED_SCHEMA",
    "SourceError",
    "InvalidCredentials",
    "MailboxNotFound",
    "MailboxAccessDenied",
    "InvalidSyncState",
    "FolderNotFound",
    "ServerUnavailable",
    "ServerRejectedRequest",
    "TlsError",
    "SourceConfigError",
    "TlsConfigError",
]
