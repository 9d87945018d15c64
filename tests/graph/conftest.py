"""Fixtures for the Graph tests: the Graph test server (HTTPS, client credentials) and pipeline configs for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graph_testserver.testing import running_graph_server


@pytest.fixture
def graph():
    """A factory: ``graph(mailboxes=[...], **kw)`` -> a running Graph test server (stopped after the test)."""
    servers = []

    def start(mailboxes: list[str], **kw: Any):
        cm = running_graph_server(mailboxes=mailboxes, **kw)
        srv = cm.__enter__()
        servers.append(cm)
        return srv

    yield start
    for cm in servers:
        cm.__exit__(None, None, None)


def graph_config(srv, tmp_path: Path, mailboxes: list[str | dict], name: str = "graph-e2e", **extra: Any) -> dict:
    boxes = [m if isinstance(m, dict) else {"email": m} for m in mailboxes]
    data = {
        "name": name,
        "connection": srv.connection(max_backoff_s=10),
        "mailboxes": boxes,
        "destination": {"kind": "store", "url": f"sqlite:///{tmp_path / 'comments.db'}"},
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


def hexid(message_id: str) -> str:
    return message_id.strip().encode().hex()
