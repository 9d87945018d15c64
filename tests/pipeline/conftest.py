"""Fixtures for end-to-end pipeline tests: the EWS test server (HTTPS + NTLM) and configs for it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ews_testserver.testing import running_server

ACCOUNT = "svc-sync@example.com"
PASSWORD_ENV = "EXSYNC_E2E_PASSWORD"


@pytest.fixture
def password(monkeypatch) -> str:
    value = "pw-" + secrets.token_hex(8)
    monkeypatch.setenv(PASSWORD_ENV, value)
    return value


@pytest.fixture
def ews(password):
    """A factory: ``ews(mailboxes=[...], grants=[...])`` -> a running HTTPS + NTLM server."""
    servers = []

    def start(mailboxes: list[str], grants: list[str] | None = None, **kw: Any):
        if grants is None:
            grants = [f"{ACCOUNT}={m.split('=', 1)[0]}" for m in mailboxes]
        cm = running_server(accounts=[f"{ACCOUNT}:{password}"], mailboxes=mailboxes, grants=grants,
                            tls=True, auth="ntlm", **kw)
        srv = cm.__enter__()
        servers.append(cm)
        return srv

    yield start
    for cm in servers:
        cm.__exit__(None, None, None)


def make_config(srv, tmp_path: Path, mailboxes: list[str | dict], *, store_url: str | None = None,
                **extra: Any) -> dict:
    boxes = [m if isinstance(m, dict) else {"email": m} for m in mailboxes]
    data = {
        "name": "e2e",
        "connection": {
            "kind": "ews",
            "server_url": srv.url,
            "auth": "ntlm",
            "username": ACCOUNT,
            "password": {"env": PASSWORD_ENV},
            "access_type": "delegate",
            "tls": {"verify": True, "ca_bundle": srv.ca_file},
            "max_backoff_s": 5,
        },
        "mailboxes": boxes,
        "destination": {"kind": "store", "url": store_url or f"sqlite:///{tmp_path / 'comments.db'}"},
        "staging": {"url": str(tmp_path / "staging")},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
    }
    data.update(extra)
    return data


@pytest.fixture
def sync(prefect_api) -> Callable[..., tuple[dict | None, int]]:
    """Run the real flow (through the session's Prefect server); returns (run summary, exit code)."""
    from exchange_sync.cli.pipeline import run_flow
    from exchange_sync.config import parse_config

    def run(data: dict, **kw: Any):
        return run_flow(parse_config(data), **kw)

    return run


def store_of(data: dict):
    from exchange_sync.store import SqlStore

    return SqlStore(data["destination"]["url"])


def all_comments(data: dict) -> dict:
    store = store_of(data)
    out, after = {}, None
    while True:
        page, after = store.list_comments("exchange-sync/mail", after=after, limit=500)
        out.update({c.id: c for c in page})
        if not after or not page:
            return out


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The comment store's URL: SQLite, and PostgreSQL when configured (see exchange_sync.testing.db)."""
    from exchange_sync.testing.db import database_url

    with database_url(request.param, tmp_path) as url:
        yield url
