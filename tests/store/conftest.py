from __future__ import annotations

from collections.abc import Iterator

import pytest

from exchange_sync.store import SqlStore


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    with SqlStore(db_url) as opened:
        yield opened
