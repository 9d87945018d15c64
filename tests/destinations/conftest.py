from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exchange_sync.testing.api import ApiUnderTest, running_api
from exchange_sync.testing.db import DB_BACKENDS, database_url


@pytest.fixture(params=DB_BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def api(db_url: str) -> Iterator[ApiUnderTest]:
    with running_api(db_url) as server:
        yield server
