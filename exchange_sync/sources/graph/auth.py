"""OAuth2 client credentials through msal (client secret or certificate), with a custom authority.

msal validates the authority by asking Microsoft's instance discovery about unknown hosts; a sovereign
cloud or the test server is neither, so ``instance_discovery=False`` (and ``validate_authority=False``)
make msal go straight to ``{authority}/{tenant}/v2.0/.well-known/openid-configuration``. TLS for those
requests comes from our ``http_client`` session (the CA bundle of ``connection.tls``).
The ``ConfidentialClientApplication`` is built lazily: its constructor already talks to the authority.
"""

from __future__ import annotations

import threading
from typing import Any

import requests
from pydantic import SecretStr

from ...config import GraphConnection
from ..errors import InvalidCredentials, ServerUnavailable, SourceError, tls_error_from

SCOPE = "https://graph.microsoft.com/.default"

# Entra ID error codes that mean "your app credentials / tenant are wrong" (never retried).
_CREDENTIAL_ERRORS = {"invalid_client", "unauthorized_client", "invalid_request", "invalid_grant", "invalid_scope",
                      "invalid_tenant", "access_denied"}


def graph_scope(graph_url: str) -> str:
    """``https://graph.microsoft.com/.default`` for the public cloud, ``{host}/.default`` elsewhere."""
    from urllib.parse import urlsplit

    parts = urlsplit(graph_url)
    return f"{parts.scheme}://{parts.netloc}/.default"


class TokenProvider:
    def __init__(self, conn: GraphConnection, credential: SecretStr | dict[str, str], session: requests.Session) -> None:
        self.conn = conn
        self._credential = credential
        self._session = session
        self._app: Any = None
        self._lock = threading.Lock()
        self.acquired = 0  # tokens fetched from the identity provider (not from msal's cache)

    def _build(self) -> Any:
        import msal

        cred: Any = self._credential.get_secret_value() if isinstance(self._credential, SecretStr) else self._credential
        authority = f"{self.conn.authority}/{self.conn.tenant_id}"
        try:
            return msal.ConfidentialClientApplication(
                self.conn.client_id, client_credential=cred, authority=authority, http_client=self._session,
                validate_authority=False, instance_discovery=False, timeout=self.conn.timeout_s,
            )
        except ValueError as exc:
            # Tenant discovery answered 4xx: an unknown tenant (or a wrong authority URL).
            raise InvalidCredentials(
                f"the authority {self.conn.authority} does not know tenant {self.conn.tenant_id} "
                "(check connection.tenant_id and connection.authority)") from _plain(exc)
        except requests.RequestException as exc:
            raise _transport_error(exc, self.conn.authority) from None

    def token(self) -> str:
        with self._lock:
            if self._app is None:
                self._app = self._build()
            try:
                result = self._app.acquire_token_for_client(scopes=[graph_scope(self.conn.graph_url)])
            except requests.RequestException as exc:
                raise _transport_error(exc, self.conn.authority) from None
        if "access_token" in result:
            if result.get("token_source") == "identity_provider":
                self.acquired += 1
            return result["access_token"]
        error = str(result.get("error", "unknown_error"))
        desc = str(result.get("error_description", "")).split("\n")[0][:300]
        if error in _CREDENTIAL_ERRORS:
            raise InvalidCredentials(
                f"the OAuth2 token endpoint refused the client credentials ({error}: {desc}): check "
                "connection.tenant_id/client_id/client_secret (or certificate) and the authority")
        raise ServerUnavailable(f"the OAuth2 token endpoint failed ({error}: {desc})")

    def invalidate(self, token: str) -> None:
        """Forget a token Graph rejected (revoked, or expired early), so the next ``token()`` fetches a new one."""
        with self._lock:
            if self._app is None:
                return
            cache = self._app.token_cache
            for item in list(cache.search(cache.CredentialType.ACCESS_TOKEN)):
                if item.get("secret") == token:
                    cache.remove_at(item)


def _plain(exc: BaseException) -> SourceError:
    # msal's message can quote the discovery response; keep only the class name in the chain.
    return SourceError(type(exc).__name__)


def _transport_error(exc: BaseException, server: str) -> SourceError:
    tls = tls_error_from(exc, server)
    if tls is not None:
        return tls
    return ServerUnavailable(f"cannot reach {server}: {type(exc).__name__}")
