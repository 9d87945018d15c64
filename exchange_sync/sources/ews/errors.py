"""EWS: the one place where exchangelib/requests/oauthlib errors are mapped to the sources' errors."""

from __future__ import annotations

from exchangelib import errors as ews
from oauthlib.oauth2.rfc6749 import errors as oauth

from ..errors import (FolderNotFound, InvalidCredentials, InvalidSyncState, MailboxAccessDenied, MailboxNotFound,
                      ServerRejectedRequest, ServerUnavailable, SourceError, _server_text, _short, redact_url,
                      tls_error_from)

__all__ = ["map_exception", "REJECTED", "TRANSIENT"]

_NOT_FOUND = (
    ews.ErrorNonExistentMailbox,
    ews.ErrorInvalidSmtpAddress,
    ews.ErrorMissingEmailAddress,
    ews.ErrorNonPrimarySmtpAddress,
)
_DENIED = (
    ews.ErrorAccessDenied,
    ews.ErrorImpersonateUserDenied,
    ews.ErrorImpersonationDenied,
    ews.ErrorImpersonationFailed,
    ews.ErrorInvalidExchangeImpersonationHeaderData,
    ews.ErrorInvalidMailbox,
    ews.ErrorUserNotAllowedByPolicy,
)
# The server validated the request and refused it: a request this server version does not know.
# exchangelib has already tried every older RequestServerVersion for the version errors.
REJECTED = (
    ews.ErrorSchemaValidation,
    ews.ErrorInvalidRequest,
    ews.ErrorInvalidServerVersion,
    ews.ErrorIncorrectSchemaVersion,
    ews.ErrorInvalidSchemaVersionForMailboxVersion,
)
# Errors that mean "try again later": after our retry budget they become ServerUnavailable.
TRANSIENT = (
    ews.ErrorServerBusy,
    ews.ErrorTimeoutExpired,
    ews.ErrorExceededConnectionCount,
    ews.ErrorInternalServerTransientError,
    ews.ErrorTooManyObjectsOpened,
    ews.ErrorMailboxStoreUnavailable,
    ews.ErrorMailboxMoveInProgress,
    ews.MalformedResponseError,
    ews.SOAPError,
)

# OAuth2 token endpoint refusals (wrong client secret/id, app not allowed): a credentials problem.
_OAUTH_DENIED = (
    oauth.InvalidClientError,
    oauth.InvalidGrantError,
    oauth.UnauthorizedClientError,
    oauth.AccessDeniedError,
    oauth.InvalidClientIdError,
)


def map_exception(exc: BaseException, *, server: str, mailbox: str | None, operation: str) -> SourceError:
    """Translate an exchangelib/requests exception into a SourceError with a precise message."""
    if isinstance(exc, SourceError):
        return exc
    where = f"{operation} for mailbox {mailbox}" if mailbox else operation
    name = type(exc).__name__
    if isinstance(exc, ews.UnauthorizedError):
        return InvalidCredentials(
            f"Exchange server {server} rejected the credentials (HTTP 401) during {where}: "
            "check connection.username/password (or the OAuth2 app) and that the account is not locked",
            mailbox=mailbox,
        )
    if isinstance(exc, _OAUTH_DENIED):
        return InvalidCredentials(
            f"the OAuth2 token endpoint refused the client credentials during {where} "
            f"({getattr(exc, 'error', name)}): check connection.tenant_id/client_id/client_secret and authority",
            mailbox=mailbox,
        )
    if isinstance(exc, _NOT_FOUND):
        return MailboxNotFound(
            f"mailbox {mailbox} was not found on {server} ({name}: {_server_text(exc)})", mailbox=mailbox
        )
    if isinstance(exc, _DENIED):
        return MailboxAccessDenied(
            f"access to mailbox {mailbox} denied on {server} ({name}: {_server_text(exc)}); the service account "
            "needs a delegate grant (access_type delegate) or the ApplicationImpersonation role (impersonation)",
            mailbox=mailbox,
        )
    if isinstance(exc, ews.ErrorInvalidSyncStateData):
        return InvalidSyncState(
            f"the stored sync state was rejected during {where} ({name}): the folder must be resynced",
            mailbox=mailbox,
        )
    if isinstance(exc, ews.ErrorFolderNotFound):
        return FolderNotFound(f"folder not found during {where} ({_server_text(exc)})", mailbox=mailbox)
    if isinstance(exc, REJECTED):
        return ServerRejectedRequest(
            f"{server} rejected {where} as invalid for this server ({name}: {_short(_server_text(exc))}); "
            "not retried: check connection.exchange_version, or report the request as a bug",
            mailbox=mailbox,
        )
    tls = tls_error_from(exc, server)
    if tls is not None:
        tls.mailbox = mailbox
        return tls
    if isinstance(exc, ews.RateLimitError):
        return ServerUnavailable(
            f"{server} kept asking to back off during {where} beyond connection.max_backoff_s "
            f"({_server_text(exc)}, requested wait {getattr(exc, 'wait', None)} s)",
            mailbox=mailbox,
        )
    if isinstance(exc, ews.RedirectError):
        return ServerUnavailable(
            f"{server} redirected {where} to {redact_url(str(getattr(exc, 'url', '')))}: check connection.server_url",
            mailbox=mailbox,
        )
    if isinstance(exc, TRANSIENT) or isinstance(exc, (ews.TransportError, ews.CASError, OSError)):
        return ServerUnavailable(
            f"{server} unavailable during {where} after retries: {name}: {_short(_server_text(exc))}",
            mailbox=mailbox,
        )
    if isinstance(exc, ews.EWSError):
        return SourceError(f"Exchange error during {where}: {name}: {_short(_server_text(exc))}", mailbox=mailbox)
    return SourceError(f"unexpected error during {where}: {name}: {_short(str(exc))}", mailbox=mailbox)
