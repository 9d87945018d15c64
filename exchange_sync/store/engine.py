"""Engine creation: SQLite (file by default) and PostgreSQL, tuned for many writer threads.

SQLite: WAL (readers never block the writer), ``busy_timeout`` (wait rather than fail),
``foreign_keys=ON``, and write transactions opened with ``BEGIN IMMEDIATE``: a deferred
transaction that reads first and writes later can hit "database is locked" *without* waiting
(SQLite cannot upgrade a read lock while another writer holds the reserved lock), so every write
transaction takes the write lock up front. On top of that, writers inside one process queue on a
``threading.Lock`` per database file, so threads wait in a fair queue instead of busy-polling.

PostgreSQL: a bounded pool with pre-ping (the pipeline's mailbox threads share it).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.pool import StaticPool

from exchange_sync.store.schema import metadata

SQLITE_BUSY_TIMEOUT_MS = 60_000
_WRITE_OPTION = "exsync_write"

_sqlite_locks: dict[str, threading.Lock] = {}
_sqlite_locks_guard = threading.Lock()


def _sqlite_lock(key: str) -> threading.Lock:
    with _sqlite_locks_guard:
        return _sqlite_locks.setdefault(key, threading.Lock())


def _sqlite_file(url_text: str) -> str | None:
    url = make_url(url_text)
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


class StateUnavailable(ConnectionError):
    """The database cannot be reached or opened (``state_unavailable``). The message names the URL
    without its password and the driver's first line of explanation."""

    reason = "state_unavailable"


def _describe(url_text: str, exc: BaseException) -> str:
    try:
        shown = make_url(str(url_text)).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        shown = "(the configured URL)"
    detail = getattr(exc, "orig", None) or exc
    first = (str(detail).strip().splitlines() or [""])[0][:300]
    return f"state_unavailable: cannot open the database {shown}: {type(detail).__name__}: {first}"


def create_store_engine(url_text: str, *, create_tables: bool = True) -> Engine:
    """An engine for ``url_text`` with the settings above; creates the tables unless told not to.

    ``url_text`` may be a ``config.DatabaseUrl`` carrying a password reference: it is resolved here,
    into the engine's URL object only. A database that cannot be reached raises ``StateUnavailable``."""
    url = make_url(str(url_text))
    password_ref = getattr(url_text, "password_ref", None)
    if password_ref is not None:
        url = url.set(password=password_ref.resolve().get_secret_value())
    if url.get_backend_name() == "sqlite":
        engine = _sqlite_engine(str(url_text))
    elif url.get_backend_name() == "postgresql":
        engine = create_engine(
            url,
            pool_size=int(os.environ.get("EXCHANGE_SYNC_DB_POOL_SIZE", "8")),
            max_overflow=8,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    else:
        raise ValueError(f"unsupported database URL scheme {url.drivername!r}: use sqlite:/// or postgresql+psycopg://")
    if create_tables:
        try:
            with write_transaction(engine) as conn:
                metadata.create_all(conn)
        except (OperationalError, InterfaceError) as exc:
            engine.dispose()
            raise StateUnavailable(_describe(url_text, exc)) from None
    return engine


def _sqlite_engine(url_text: str) -> Engine:
    database = _sqlite_file(url_text)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}}
    if database is None:
        # One shared in-memory database for all threads (a new connection would see an empty one).
        kwargs["poolclass"] = StaticPool
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url_text, **kwargs)
    lock_key = str(Path(database).expanduser().resolve()) if database else f"memory:{id(engine)}"
    engine.info_lock = _sqlite_lock(lock_key)  # type: ignore[attr-defined]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would BEGIN DEFERRED lazily).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if database is not None:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed on success, rolled back on any exception.

    On SQLite it holds the per-file process lock and starts with ``BEGIN IMMEDIATE``.
    """
    lock: threading.Lock | None = getattr(engine, "info_lock", None)
    if lock is not None:
        lock.acquire()
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn
    finally:
        if lock is not None:
            lock.release()


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (a consistent snapshot for multi-statement reads)."""
    with engine.connect() as conn:
        with conn.begin():
            yield conn
