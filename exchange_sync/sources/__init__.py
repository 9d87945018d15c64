"""Mail sources (Prefect-free): the contract every source implements, and the registry that picks one.

- ``base``: the ``Source`` / ``MailboxSession`` protocols the pipeline codes against.
- ``models``, ``errors``, ``folders``, ``tls``, ``redact``: what every source shares (the data it hands over,
  the errors the pipeline understands, folder selection, TLS settings, keeping secrets out of logs).
- ``ews/``, ``graph/``: the implementations; ``registry``: ``connection.kind`` -> implementation.

See docs/architecture.md ("Adding a source").
"""

from .base import MailboxSession, ServerInfoStore, Source
from .errors import (
    FolderNotFound,
    InvalidCredentials,
    InvalidSyncState,
    MailboxAccessDenied,
    MailboxNotFound,
    ServerRejectedRequest,
    ServerUnavailable,
    SourceConfigError,
    SourceError,
    TlsError,
    redact_url,
    tls_error_from,
)
from .models import STAGED_SCHEMA, FetchResult, FolderInfo, ItemRef, Participants, SyncPage
from .registry import SOURCES, SourceKind, open_source, source_kind
from .tls import TlsConfigError

__all__ = [
    "Source",
    "MailboxSession",
    "ServerInfoStore",
    "SOURCES",
    "SourceKind",
    "open_source",
    "source_kind",
    "FolderInfo",
    "ItemRef",
    "SyncPage",
    "FetchResult",
    "Participants",
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
    "redact_url",
    "tls_error_from",
]
