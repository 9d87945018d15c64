"""Errors of every source: what the pipeline sees, whatever the protocol (each source maps its own errors to these).

Every ``SourceError`` has a stable ``reason`` code (the hosted product's codes where it has one) and a
message written here from safe parts only: the mailbox address, the server host, exchangelib's error
class name and the server's MessageText. Exception texts coming from requests/urllib3 can quote URLs;
they never carry credentials (verified in tests), but we still build our own messages and strip any
``user:password@`` part from URLs we mention.
"""

from __future__ import annotations

import re
import ssl


__all__ = [
    "SourceError",
    "InvalidCredentials",
    "MailboxNotFound",
    "MailboxAccessDenied",
    "InvalidSyncState",
    "FolderNotFound",
    "ServerUnavailable",
    "TlsError",
    "ServerRejectedRequest",
    "SourceConfigError",
    "tls_error_from",
    "redact_url",
]


class SourceError(Exception):
    """Base class of everything the source raises. ``reason`` is a stable machine-readable code."""

    reason: str = "exchange_error"

    def __init__(self, message: str, *, mailbox: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.mailbox = mailbox


class InvalidCredentials(SourceError):
    """HTTP 401 / login failure: the whole integration is misconfigured, fail the run at once."""

    reason = "invalid_exchange_credentials"


class MailboxNotFound(SourceError):
    """The mailbox does not exist on this server (skip it, keep syncing the others)."""

    reason = "mailbox_not_found"


class MailboxAccessDenied(SourceError):
    """The service account has no delegate grant / impersonation right for this mailbox."""

    reason = "mailbox_access_denied"


class InvalidSyncState(SourceError):
    """The stored SyncState was rejected (ErrorInvalidSyncStateData): resync the folder from None."""

    reason = "invalid_sync_state"


class FolderNotFound(SourceError):
    """The folder was deleted between discovery and sync."""

    reason = "folder_not_found"


class ServerUnavailable(SourceError):
    """The server stayed busy/unreachable after the bounded retry budget, or cannot be talked to at all."""

    reason = "server_unavailable"


class TlsError(ServerUnavailable):
    """The TLS handshake failed (certificate verification, no shared cipher/protocol version)."""

    reason = "tls_error"


class ServerRejectedRequest(SourceError):
    """The server refused the request itself as invalid for it (ErrorSchemaValidation, ErrorInvalidRequest,
    ErrorInvalidServerVersion): the same request would be refused again, so it is never retried."""

    reason = "server_rejected_request"


class SourceConfigError(SourceError):
    """The connection settings cannot work (an unknown version name, an unreadable certificate)."""

    reason = "invalid_source_config"


_USERINFO_RE = re.compile(r"(?<=://)[^/@\s]+@")


def redact_url(url: str) -> str:
    """``https://user:pw@host/x`` -> ``https://***@host/x`` (a URL with userinfo should never be configured)."""
    return _USERINFO_RE.sub("***@", url)


def _server_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact_url(text) if text else type(exc).__name__


def _ssl_cause(exc: BaseException) -> BaseException | None:
    """Walk __cause__/__context__ for the ssl-level error behind a requests SSLError/TransportError."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLError):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


_TLS_MARKERS = (
    "CERTIFICATE_VERIFY_FAILED",
    "certificate verify failed",
    "SSLError",
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "NO_SHARED_CIPHER",
    "no shared cipher",
    "WRONG_VERSION_NUMBER",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "UNSUPPORTED_PROTOCOL",
    "NO_CIPHERS_AVAILABLE",
    "NO_PROTOCOLS_AVAILABLE",
    "hostname mismatch",
)


def tls_error_from(exc: BaseException, server: str) -> TlsError | None:
    """A TlsError with the cause named plainly, or None if ``exc`` is not a TLS failure."""
    text = str(exc)
    cause = _ssl_cause(exc)
    if cause is None and not any(m in text for m in _TLS_MARKERS):
        return None
    detail = text
    if cause is not None:
        detail = str(cause)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        m = re.search(r"certificate verify failed: ([^()'\"]+)", text)
        why = m.group(1).strip() if m else "untrusted certificate"
        return TlsError(
            f"TLS to {server} failed: certificate verify failed: {why} "
            "(set connection.tls.ca_bundle to the CA that issued the server certificate)"
        )
    if any(m in text for m in ("HANDSHAKE_FAILURE", "NO_SHARED_CIPHER", "no shared cipher", "NO_CIPHERS_AVAILABLE")):
        return TlsError(
            f"TLS handshake with {server} failed: no shared cipher or protocol version between "
            f"connection.tls (ciphers/min_version/max_version) and the server ({_short(detail)})"
        )
    if any(m in text for m in ("PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "WRONG_VERSION")):
        return TlsError(
            f"TLS handshake with {server} failed: no common TLS protocol version "
            f"(check connection.tls.min_version/max_version; is the URL really https?) ({_short(detail)})"
        )
    return TlsError(f"TLS connection to {server} failed: {_short(detail)}")


def _short(text: str, limit: int = 300) -> str:
    text = redact_url(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."
