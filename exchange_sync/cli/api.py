"""`exchange-sync api`: serve the comments API and the comments page."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from exchange_sync.cli import app

DEFAULT_STORE_URL = "sqlite:///./.exchange-sync/comments.db"  # the pipeline's default store
TOKEN_ENV = "EXCHANGE_SYNC_API_TOKEN"


def check_startup(host: str, token: str | None, no_auth: bool) -> str | None:
    """The token to require, or raise ``typer.BadParameter`` for a configuration that would
    expose the API: no token without --no-auth, or --no-auth on a non-loopback address."""
    from exchange_sync.api.auth import is_loopback

    if no_auth:
        if not is_loopback(host):
            raise typer.BadParameter(
                f"--no-auth is allowed only on a loopback address (127.0.0.1, ::1, localhost), not {host!r}",
                param_hint="--no-auth",
            )
        return None
    if not token:
        raise typer.BadParameter(
            f"set the bearer token in the environment variable {TOKEN_ENV}, or pass --no-auth on a loopback host",
            param_hint=TOKEN_ENV,
        )
    return token


@app.command("api")
def api_command(
    host: Annotated[str, typer.Option(help="Address to bind; loopback by default.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    store: Annotated[
        str | None,
        typer.Option(help=f"Store URL (SQLite or PostgreSQL). Default: $EXCHANGE_SYNC_STORE_URL or {DEFAULT_STORE_URL}"),
    ] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="No token (only allowed on a loopback host).")] = False,
) -> None:
    """Serve the comments API (public Re:infer routes) and the read-only comments page at /.

    Clients send `Authorization: Bearer $EXCHANGE_SYNC_API_TOKEN`; the page asks for the token once
    (login form, or open /?token=...) and keeps an HttpOnly cookie.
    """
    token = check_startup(host, os.environ.get(TOKEN_ENV) or None, no_auth)

    import uvicorn

    from exchange_sync.api import create_app
    from exchange_sync.store import SqlStore

    url = store or os.environ.get("EXCHANGE_SYNC_STORE_URL") or DEFAULT_STORE_URL
    sql_store = SqlStore(url)
    typer.echo(f"comments API on http://{host}:{port} (store {sql_store!r}, auth {'off' if token is None else 'bearer token'})")
    try:
        uvicorn.run(create_app(sql_store, token=token), host=host, port=port, log_level="info", lifespan="off")
    finally:
        sql_store.close()
