"""``exchange-sync check`` for Microsoft Graph: the token request, TLS, and every mailbox's folder listing
(see ``exchange_sync.check`` for the report and its exit codes)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ...check import CheckConfigError, CheckReport, Scrubber, ServerCheck, reach
from ...config import GraphConnection, IntegrationConfig, SecretResolutionError
from ..errors import SourceError
from ..tls import build_ssl_context
from .source import GraphSource, credential_for


def graph_version(graph_url: str) -> str:
    segment = urlsplit(graph_url).path.rstrip("/").rsplit("/", 1)[-1]
    return f"Microsoft Graph {segment}" if re.fullmatch(r"v\d+(\.\d+)?|beta", segment) else "Microsoft Graph"


def check(config: IntegrationConfig) -> CheckReport:
    conn = config.connection
    assert isinstance(conn, GraphConnection)
    try:
        credential = credential_for(conn, None)
    except SecretResolutionError as exc:
        raise CheckConfigError(f"connection: {exc}") from None
    except SourceError as exc:  # an unreadable certificate file
        raise CheckConfigError(f"{exc.reason}: {exc.message}") from None
    secret_value = credential.get_secret_value() if hasattr(credential, "get_secret_value") else None
    scrub = Scrubber(secret_value)
    server = ServerCheck(url=conn.graph_url, kind="graph",
                         auth="client_secret" if conn.certificate is None else "certificate")
    try:
        ctx = build_ssl_context(conn.tls)
        source = GraphSource(conn, credential if conn.certificate is None else None,
                             max_connections=config.concurrency.connections_per_server,
                             fetch_chunk_size=config.fetch_chunk_size)
    except SourceError as exc:
        raise CheckConfigError(f"{exc.reason}: {scrub(exc.message)}") from None
    except SecretResolutionError as exc:
        raise CheckConfigError(f"connection: {exc}") from None
    with source:
        report, outcomes = reach(config, server, source, conn.graph_url, ctx, scrub)
    if outcomes and server.auth_accepted:  # Graph answered (a refused token never reached it)
        server.version = graph_version(conn.graph_url)
    return report
