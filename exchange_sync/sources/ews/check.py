"""``exchange-sync check`` for EWS: the server's version from its answers (ServerVersionInfo), auth, TLS,
and every mailbox's folder discovery (see ``exchange_sync.check`` for the report and its exit codes)."""

from __future__ import annotations

from ...check import (CREDENTIALS, NOT_CHECKED, SERVER_REASONS, CheckConfigError, CheckReport, Outcome, Scrubber,
                       ServerCheck, reach)
from ...config import EwsConnection, IntegrationConfig, SecretResolutionError
from ..errors import SourceError, redact_url
from ..tls import build_ssl_context
from .source import EwsSource


def _ews_version(outcomes: list[Outcome]) -> tuple[str | None, str | None]:
    """(api_version, build) from the ServerVersionInfo header of a mailbox's answer: exchangelib keeps it on
    the account. Never the configured ``exchange_version`` or a failed probe's guess: only what the server said."""
    for o in outcomes:
        if o.check.status in SERVER_REASONS or o.check.status in (CREDENTIALS, NOT_CHECKED) or o.session is None:
            continue
        account = getattr(o.session, "account", None)
        version = getattr(account, "_version", None)  # set by the answers; reading .version could probe
        if version is not None and getattr(version, "build", None):
            return version.api_version, str(version.build)
    return None, None


def check(config: IntegrationConfig) -> CheckReport:
    conn = config.connection
    assert isinstance(conn, EwsConnection)
    ref = conn.client_secret if conn.auth == "oauth2" else conn.password
    if ref is None:
        raise CheckConfigError(f"connection: auth {conn.auth} needs a secret")
    try:
        secret = ref.resolve()
    except SecretResolutionError as exc:
        raise CheckConfigError(f"connection: {exc}") from None
    scrub = Scrubber(secret.get_secret_value())
    server = ServerCheck(url=redact_url(conn.server_url), kind="ews", auth=conn.auth)
    try:
        ctx = build_ssl_context(conn.tls)
        source = EwsSource(conn, secret, max_connections=config.concurrency.connections_per_server,
                           fetch_chunk_size=config.fetch_chunk_size)
    except SourceError as exc:  # invalid_tls_config, invalid_source_config (e.g. exchange_version)
        raise CheckConfigError(f"{exc.reason}: {scrub(exc.message)}") from None
    with source:
        report, outcomes = reach(config, server, source, conn.server_url, ctx, scrub)
    if outcomes and report.server.reachable:
        server.version, server.build = _ews_version(outcomes)
    return report
