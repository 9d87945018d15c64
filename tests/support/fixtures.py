"""Fixtures shared by several test folders (registered for the whole suite by tests/conftest.py)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ews_testserver.testing import running_server
from tests.support.api import ApiUnderTest, running_api
from tests.support.db import DB_BACKENDS, database_url
from tests.support.pipeline import ACCOUNT, PASSWORD_ENV, flow_runner


@pytest.fixture
def password(monkeypatch) -> str:
    """The service account's password, in the environment variable the configs reference."""
    value = "pw-" + secrets.token_hex(8)
    monkeypatch.setenv(PASSWORD_ENV, value)
    return value


@pytest.fixture
def ews(password) -> Iterator[Callable[..., Any]]:
    """A factory: ``ews(mailboxes=[...], grants=None, impersonation=False, **server_kw)`` -> a running
    HTTPS + NTLM EWS test server. Without ``grants`` the service account is a delegate of every mailbox;
    ``impersonation``: it has the ApplicationImpersonation role instead."""
    servers = []

    def start(mailboxes: list[str], grants: list[str] | None = None, impersonation: bool = False, **kw: Any):
        if grants is None:
            grants = [] if impersonation else [f"{ACCOUNT}={m.split('=', 1)[0]}" for m in mailboxes]
        account = f"{ACCOUNT}:{password}" + (":impersonation" if impersonation else "")
        cm = running_server(accounts=[account], mailboxes=mailboxes, grants=grants, tls=True, auth="ntlm", **kw)
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


@pytest.fixture(params=DB_BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: SQLite, and PostgreSQL when configured (see tests.support.db)."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def api(db_url: str) -> Iterator[ApiUnderTest]:
    """The comments API over HTTP (uvicorn in a thread) on ``db_url``."""
    with running_api(db_url) as server:
        yield server
