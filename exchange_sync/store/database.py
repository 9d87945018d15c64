"""``Database``: one engine (a connection pool) and the transactions over it, shared by the store's facades.

Thread-safe: it holds only the engine; every call takes its own connection. Every write is one
transaction (see engine.write_transaction), replayed whole on a PostgreSQL deadlock or serialisation
failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Self, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from exchange_sync.store.engine import create_store_engine, read_transaction, write_transaction

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATEs worth replaying the whole transaction for: serialization_failure, deadlock_detected.
_RETRY_SQLSTATES = {"40001", "40P01"}
_MAX_ATTEMPTS = 6


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


class Database:
    """``url`` is a SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://``)."""

    def __init__(self, url: str, *, create_tables: bool = True) -> None:
        self.url = url
        self.engine = create_store_engine(url, create_tables=create_tables)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({make_url(self.url).render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- transactions ------------------------------------------------------------------------

    def _write(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one write transaction, replaying it on a PostgreSQL deadlock/serialisation
        failure (the transaction rolled back entirely, so a replay is safe)."""
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                with write_transaction(self.engine) as conn:
                    return work(conn)
            except DBAPIError as exc:
                if _sqlstate(exc) not in _RETRY_SQLSTATES or attempt == _MAX_ATTEMPTS:
                    raise
                log.info("store transaction retried after %s (attempt %d)", _sqlstate(exc), attempt)
                time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    def _read(self, work: Callable[[Connection], T]) -> T:
        with read_transaction(self.engine) as conn:
            return work(conn)
