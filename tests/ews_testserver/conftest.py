"""Fixtures for the EWS test server tests: real server subprocesses, real exchangelib clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ews_testserver.testing import RunningServer, exchangelib_account, running_server

ACCOUNTS = [
    "user@example.com:secret",
    "EXAMPLE\\svc:svc:pw:impersonation",  # password "svc:pw" (contains ':'), impersonation role
    "delegate@example.com:dpass",
    "nobody@example.com:npass",
]
GRANTS = ["delegate@example.com=shared@example.com"]
MAILBOXES = [
    "user@example.com=generate:120",
    "shared@example.com=generate:40",
    "paging@example.com=",
    "moves@example.com=",
]


@pytest.fixture(autouse=True)
def _fresh_exchangelib() -> Iterator[None]:
    """exchangelib caches Protocol objects (and their failures) per endpoint+credentials."""
    from exchangelib import close_connections

    close_connections()
    yield
    close_connections()


@pytest.fixture(scope="session")
def srv() -> Iterator[RunningServer]:
    with running_server(accounts=ACCOUNTS, mailboxes=MAILBOXES, grants=GRANTS) as server:
        yield server
    assert server.returncode == 0


@pytest.fixture()
def user_account(srv: RunningServer):
    return exchangelib_account(srv, "user@example.com", "secret", "user@example.com")
