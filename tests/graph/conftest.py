"""Fixtures for the Graph tests: the Graph test server (HTTPS, client credentials) and pipeline configs for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.pipeline import all_comments, store_of
from graph_testserver.testing import running_graph_server

__all__ = ["all_comments", "graph_config", "hexid", "store_of"]


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


def hexid(message_id: str) -> str:
    return message_id.strip().encode().hex()
