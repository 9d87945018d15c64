"""Start the comments API on a free loopback port for tests (real HTTP, uvicorn in a thread)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from starlette.types import ASGIApp

from exchange_sync.api import create_app
from exchange_sync.api.server import start_in_thread
from exchange_sync.store import SqlStore



@dataclass
class ApiUnderTest:
    url: str
    token: str | None
    store: SqlStore

    def headers(self, token: str | None = None) -> dict[str, str]:
        chosen = token if token is not None else self.token
        return {"Authorization": f"Bearer {chosen}"} if chosen else {}


@contextmanager
def running_api(
    db_url: str,
    *,
    token: str | None = "test-token-0123456789abcdef",
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    comment_quota: int | None = None,
    attachments_url: str | None = None,
) -> Iterator[ApiUnderTest]:
    """The API over a fresh ``SqlStore(db_url)``; ``wrap`` may put a fault-injecting middleware around it."""
    store = SqlStore(db_url)
    app: ASGIApp = create_app(store, token=token, comment_quota=comment_quota, attachments_url=attachments_url)
    if wrap is not None:
        app = wrap(app)
    try:
        with start_in_thread(app) as server:
            yield ApiUnderTest(url=server.url, token=token, store=store)
    finally:
        store.close()
