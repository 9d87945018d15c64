"""Fixtures for end-to-end pipeline tests: the EWS test server (HTTPS + NTLM) and configs for it.

Configs and store helpers are ``exchange_sync.testing.pipeline``'s (shared with the Graph and reliability tests).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest

from ews_testserver.testing import running_server
from exchange_sync.testing.pipeline import ACCOUNT, PASSWORD_ENV, all_comments, flow_runner, make_config, store_of

__all__ = ["ACCOUNT", "PASSWORD_ENV", "all_comments", "make_config", "store_of"]


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


@pytest.fixture
def sync(prefect_api) -> Callable[..., tuple[dict | None, int]]:
    """Run the real flow (through the session's Prefect server); returns (run summary, exit code)."""
    return flow_runner()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The comment store's URL: SQLite, and PostgreSQL when configured (see exchange_sync.testing.db)."""
    from exchange_sync.testing.db import database_url

    with database_url(request.param, tmp_path) as url:
        yield url
