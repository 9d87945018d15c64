"""``GraphSource``: Exchange Online through Microsoft Graph (implements ``sources.base.Source``)."""

from __future__ import annotations

import logging
from pathlib import Path

import requests
import requests.adapters
from pydantic import SecretStr

from ...config import GraphConnection, IntegrationConfig
from ..base import ServerInfoStore
from ..errors import SourceConfigError
from ..tls import build_ssl_context, make_adapter_class, pin_verify, requests_verify, warn_unverified

from .auth import TokenProvider
from .http import MAX_BATCH, GraphHttp
from .session import GraphMailboxSession


def credential_for(conn: GraphConnection, secret: SecretStr | None) -> SecretStr | dict[str, str]:
    """The msal client credential: the client secret, or {private_key, thumbprint} for a certificate."""
    if conn.certificate is None:
        if secret is not None:
            return secret
        assert conn.client_secret is not None  # the config validator guarantees one of the two
        return conn.client_secret.resolve()
    cert = conn.certificate
    if cert.path is not None:
        try:
            pem = Path(cert.path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SourceConfigError(f"connection.certificate.path {cert.path}: cannot read ({exc.strerror})") from None
    else:
        assert cert.private_key is not None
        pem = cert.private_key.resolve().get_secret_value()
    return {"private_key": pem, "thumbprint": cert.thumbprint.replace(":", "").upper()}


class GraphSource:
    """One Graph endpoint + app credentials; thread-safe; ``open_mailbox`` sends nothing."""

    def __init__(self, connection: GraphConnection, secret: SecretStr | None = None, *, max_connections: int = 4,
                 fetch_chunk_size: int = MAX_BATCH) -> None:
        self.connection = connection
        # The configured trust wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, for msal's token requests too.
        self.session = pin_verify(requests.Session(), requests_verify(connection.tls))
        if not connection.tls.verify:
            warn_unverified(connection.graph_url, logging.getLogger(__name__))
        adapter_cls = make_adapter_class(build_ssl_context(connection.tls))
        # Pool: several mailboxes in parallel, each with up to 4 requests in flight.
        adapter = adapter_cls(pool_connections=4, pool_maxsize=max(16, 4 * max_connections))
        self.session.mount("https://", adapter)
        self.tokens = TokenProvider(connection, credential_for(connection, secret), self.session)
        self.http = GraphHttp(self.session, self.tokens, graph_url=connection.graph_url,
                              timeout_s=connection.timeout_s, max_backoff_s=connection.max_backoff_s,
                              retry_attempts=connection.retry_attempts)
        self.fetch_chunk_size = max(1, min(MAX_BATCH, fetch_chunk_size))

    @classmethod
    def from_config(cls, config: IntegrationConfig, server_info: ServerInfoStore | None = None) -> GraphSource:
        """``server_info`` is unused: Graph has one API version and nothing to learn between runs."""
        conn = config.connection
        assert isinstance(conn, GraphConnection)
        return cls(conn, None, max_connections=config.concurrency.connections_per_server,
                   fetch_chunk_size=config.fetch_chunk_size)

    def open_mailbox(self, email: str, *, with_participants: bool = False) -> GraphMailboxSession:
        return GraphMailboxSession(self.http, email, self.fetch_chunk_size, select_participants=with_participants)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> GraphSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
