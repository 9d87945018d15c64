"""Database URLs for tests: SQLite always, PostgreSQL when the environment provides a server.

Environment:

* ``EXCHANGE_SYNC_TEST_POSTGRES_URL``: a superuser-ish URL (``postgresql+psycopg://u:p@host/db``)
  on which this helper creates a fresh database per test session and a fresh schema per test
  (``search_path`` set through the URL's ``options``), dropped afterwards.
* ``EXCHANGE_SYNC_REQUIRE_POSTGRES=1``: a missing URL fails the PostgreSQL tests instead of
  skipping them (CI sets it so PostgreSQL cannot silently drop out).

Use from a conftest::

    from exchange_sync.testing.db import DB_BACKENDS, database_url
    @pytest.fixture(params=DB_BACKENDS)
    def db_url(request, tmp_path):
        with database_url(request.param, tmp_path) as url:
            yield url
"""

from __future__ import annotations

import atexit
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

POSTGRES_URL_ENV = "EXCHANGE_SYNC_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "EXCHANGE_SYNC_REQUIRE_POSTGRES"
DB_BACKENDS = ("sqlite", "postgresql")

_session_db: dict[str, str] = {}
_session_lock = threading.Lock()


def postgres_base_url() -> str | None:
    return os.environ.get(POSTGRES_URL_ENV) or None


def postgres_required() -> bool:
    return os.environ.get(REQUIRE_POSTGRES_ENV, "") not in ("", "0", "false", "no")


def _psycopg_dsn(sqlalchemy_url: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _admin_execute(base_url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(_psycopg_dsn(base_url), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def _session_database(base_url: str) -> str:
    """A database created once per process and dropped at exit; returns its SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    with _session_lock:
        if base_url not in _session_db:
            name = f"exsync_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            _admin_execute(base_url, f'CREATE DATABASE "{name}"')
            atexit.register(_admin_execute, base_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _session_db[base_url] = make_url(base_url).set(database=name).render_as_string(hide_password=False)
        return _session_db[base_url]


@contextmanager
def postgres_schema_url(base_url: str) -> Iterator[str]:
    """A URL whose connections use a brand-new schema (dropped with everything in it afterwards)."""
    database_url = _session_database(base_url)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _admin_execute(database_url, f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in database_url else "?"
    url = f"{database_url}{separator}options={quote(f'-csearch_path={schema}')}"
    try:
        yield url
    finally:
        _admin_execute(database_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of ``backend`` ("sqlite" or "postgresql").

    Skips (or fails, when PostgreSQL is required) if PostgreSQL is not configured.
    """
    import pytest

    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store' / 'exchange-sync.db'}"
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    base_url = postgres_base_url()
    if base_url is None:
        message = (
            f"PostgreSQL tests need {POSTGRES_URL_ENV} (e.g. postgresql+psycopg://exsync:exsync@127.0.0.1:5432/postgres;"
            " `.ci/postgres.sh` starts a server and prints one)"
        )
        if postgres_required():
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {message}")
        pytest.skip(message)
    with postgres_schema_url(base_url) as url:
        yield url
