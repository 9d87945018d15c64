"""`exchange-sync graph-server`: start the Microsoft Graph test server (Graph v1.0 mail + Entra ID token endpoint)."""

from __future__ import annotations

from typing import List, Optional

import typer

from exchange_sync.cli import app
from exchange_sync.cli.ews_server import not_installed


@app.command("graph-server")
def graph_server(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(0, help="TCP port (0: pick a free one; see the JSON line)."),
    app_spec: List[str] = typer.Option([], "--app", help="CLIENT_ID:SECRET or CLIENT_ID:cert=PEM (repeatable)."),
    mailbox: List[str] = typer.Option([], "--mailbox", help="ADDRESS=PATH (.eml folder, mbox), ADDRESS=generate:N or ADDRESS=."),
    policy: List[str] = typer.Option([], "--policy", help="CLIENT_ID=ADDRESS[,ADDRESS]: application access policy."),
    tenant_id: Optional[str] = typer.Option(None, "--tenant-id", help="Tenant id (default: a random GUID)."),
    seed: int = typer.Option(4711, help="Seed for generate:N (same mail as ews-server with the same seed)."),
    admin_token: Optional[str] = typer.Option(None, "--admin-token", help="Fixed admin bearer token (default: random)."),
    token_lifetime: int = typer.Option(3599, "--token-lifetime", help="Access token lifetime in seconds."),
    mailbox_concurrency: int = typer.Option(4, "--mailbox-concurrency", help="Concurrent requests per mailbox (0: no limit)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log requests to stderr."),
) -> None:
    """Serve Microsoft Graph mail (delta queries, immutable ids, $batch, $value) over HTTPS, plus an
    OAuth2 client-credentials token endpoint, for mailboxes loaded from .eml folders, mbox files or
    generated mail. Prints one JSON line (graph_url, authority, tenant_id, ca_file, admin_url,
    admin_token) when ready and serves until SIGTERM/SIGINT (exit status 0). Exit status 2: invalid
    options, or the test servers (./testservers, test infrastructure) are not installed.
    """
    try:
        from graph_testserver.server import GraphServer, GraphServerConfig
        from testserver_core.server import configure_logging, serve_until_signalled
    except ModuleNotFoundError as exc:
        not_installed(exc, "Graph")
        raise

    configure_logging(verbose)
    config = GraphServerConfig(
        host=host, port=port, apps=list(app_spec) or ["client:secret"],
        mailboxes=list(mailbox) or ["user@example.com=generate:100"], policies=list(policy), tenant_id=tenant_id,
        seed=seed, admin_token=admin_token, token_lifetime_s=token_lifetime, mailbox_concurrency=mailbox_concurrency,
    )
    try:
        server = GraphServer(config)
    except (ValueError, FileNotFoundError, OSError) as exc:
        typer.echo(f"graph-server: {exc}", err=True)
        raise typer.Exit(2) from exc
    serve_until_signalled(server)
