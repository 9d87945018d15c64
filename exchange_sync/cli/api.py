"""`exchange-sync api`: serve the comments API and the comments page."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from exchange_sync.cli import app

DEFAULT_STORE_URL = "sqlite:///./.exchange-sync/comments.db"  # the pipeline's default store
TOKEN_ENV = "EXCHANGE_SYNC_API_TOKEN"
EXIT_CONFIG = 2


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(EXIT_CONFIG)


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


def check_store_url(url: str) -> None:
    """Refuse, with one line, a store URL the API cannot open: not SQLite/PostgreSQL, or a SQLite file
    in a directory that does not exist (the API reads an existing store; it never creates directories)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - sqlalchemy's ArgumentError and friends: the URL is not one
        raise _fail(f"--store {url!r} is not a database URL (sqlite:///path/comments.db or "
                    "postgresql+psycopg://user@host/db)") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise _fail(f"--store: unsupported database {backend!r}: use sqlite:///path/comments.db or "
                    "postgresql+psycopg://user@host/db")
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        directory = Path(database).expanduser().parent
        if not directory.is_dir():
            raise _fail(f"--store: directory {str(directory)!r} does not exist (the API does not create it)")


@app.command("api")
def api_command(
    host: Annotated[str, typer.Option(help="Address to bind; loopback by default.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    store: Annotated[
        Optional[str],
        typer.Option(help=f"Store URL (SQLite or PostgreSQL). Default: $EXCHANGE_SYNC_STORE_URL or {DEFAULT_STORE_URL}"),
    ] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="No token (only allowed on a loopback host).")] = False,
    tls_cert: Annotated[Optional[Path], typer.Option("--tls-cert", help="Serve HTTPS with this certificate (PEM).")] = None,
    tls_key: Annotated[Optional[Path], typer.Option("--tls-key", help="The certificate's private key (PEM).")] = None,
    comment_quota: Annotated[Optional[int], typer.Option(
        "--comment-quota", min=0,
        help="Refuse syncs (bucket puts) past this many comments per source (emails per bucket) with 403 "
             "'Quota exceeded', as a tenant at its quota does (to try comment_quota_hit).")] = None,
    attachments: Annotated[Optional[str], typer.Option(
        "--attachments",
        help="Attachment store served at /api/v1/attachments/<sha256> (local folder or fsspec URL). Default: "
             "$EXCHANGE_SYNC_ATTACHMENTS_URL or <staging.url>/_attachments of the default staging folder.")] = None,
) -> None:
    """Serve the comments API (public Re:infer routes) and the read-only comments page at /.

    Clients send `Authorization: Bearer $EXCHANGE_SYNC_API_TOKEN`; the page asks for the token once
    (sign-in form) and keeps an HttpOnly cookie.
    """
    from exchange_sync.api.auth import is_loopback

    token = check_startup(host, os.environ.get(TOKEN_ENV) or None, no_auth)
    if (tls_cert is None) != (tls_key is None):
        raise _fail("--tls-cert and --tls-key go together")
    for option, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if path is not None and not path.is_file():
            raise _fail(f"{option}: no such file {str(path)!r}")
    url = store or os.environ.get("EXCHANGE_SYNC_STORE_URL") or DEFAULT_STORE_URL
    check_store_url(url)

    import uvicorn

    from exchange_sync.api import create_app
    from exchange_sync.store import SqlStore

    from exchange_sync.store.engine import StateUnavailable

    try:
        sql_store = SqlStore(url)
    except StateUnavailable as exc:  # e.g. PostgreSQL unreachable: one line, no traceback
        raise _fail(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - anything else about opening it: one line too
        raise _fail(f"cannot open the store {_safe_url(url)}: {type(exc).__name__}: {_first_line(exc)}") from None
    scheme = "https" if tls_cert else "http"
    if scheme == "http" and not is_loopback(host):
        typer.echo(f"warning: serving on {host} over plain HTTP: the bearer token, the sign-in form and the "
                   "comments cross the network unencrypted. Use --tls-cert/--tls-key, or a TLS-terminating proxy "
                   "in front of a loopback address.", err=True)
    typer.echo(f"comments API on {scheme}://{host}:{port} (store {sql_store!r}, "
               f"auth {'off' if token is None else 'bearer token'})")
    import logging

    access = logging.getLogger("exchange_sync.api.access")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("INFO:     %(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    try:
        from exchange_sync.attachments import attachments_url
        from exchange_sync.config import DEFAULT_STAGING_URL

        attachment_store = attachments or os.environ.get("EXCHANGE_SYNC_ATTACHMENTS_URL") or attachments_url(DEFAULT_STAGING_URL)
        uvicorn.run(create_app(sql_store, token=token, comment_quota=comment_quota, attachments_url=attachment_store), host=host, port=port, log_level="info", lifespan="off",
                    access_log=False,  # ApiGate logs method, path and status; never a query string
                    # Over TLS uvicorn's graceful shutdown waited for closed connections forever (SIGTERM
                    # did not stop the server): in-flight requests get this long, then it exits.
                    timeout_graceful_shutdown=5,
                    ssl_certfile=str(tls_cert) if tls_cert else None, ssl_keyfile=str(tls_key) if tls_key else None)
    finally:
        sql_store.close()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return "(unparsable URL)"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]
