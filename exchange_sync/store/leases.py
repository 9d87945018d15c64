"""Mailbox leases (never two writers on a mailbox) and the watcher's per-mailbox state.

A lease is one row of ``exsync_mailbox_leases`` per (integration, mailbox): ``owner`` and
``expires_at``. Taking it is one conditional UPDATE (free, expired, or held by a process of this host
that is gone) or one INSERT that loses to a concurrent one: atomic on SQLite (BEGIN IMMEDIATE) and
PostgreSQL alike. Every incremental mailbox sync holds it, whoever runs it (a scheduled run's
``sync_mailbox``, or ``exchange-sync watch`` through the same function); a process-wide renewer
thread pushes ``expires_at`` forward every ``ttl / 3`` while it is held, so a crashed holder's lease
lapses after at most ``ttl`` (at once when the holder was a process of this host that is gone).

Each hold has its own owner string (``host:pid:start:token:purpose``), so two threads of one process
exclude each other too. The watch columns of the same row are written by ``exchange_sync.watch``
and read by ``exchange-sync status``; lease writes never touch them and the other way round.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, and_, or_, select, update

from exchange_sync.processes import is_gone, process_start
from exchange_sync.store.comments import dialect_insert
from exchange_sync.store.engine import read_transaction, write_transaction
from exchange_sync.store.schema import mailbox_leases

log = logging.getLogger("exchange_sync.leases")

# A watched mailbox whose watcher has not written for this long is shown as stale (a watcher touches its
# rows every minute): a watch process on another host that died without stopping.
WATCH_STALE_S = 180.0
WATCH_COLUMNS = ("watch_mode", "watch_reason", "watch_owner", "last_event_at", "last_sync_at", "last_lag_ms")


class LeaseBusy(RuntimeError):
    """The mailbox is being synced by another writer (a watch process or a scheduled run)."""

    reason = "busy"

    def __init__(self, mailbox: str, holder: str | None) -> None:
        self.mailbox, self.holder = mailbox, holder
        super().__init__(f"mailbox {mailbox} is being synced by another writer ({describe_owner(holder)})")


class MailboxLeaseRow(BaseModel):
    """One row as `exchange-sync status` shows it."""

    integration: str
    mailbox: str
    owner: str | None = None
    acquired_at: datetime | None = None
    expires_at: datetime | None = None
    watch_mode: str | None = None
    watch_reason: str | None = None
    watch_owner: str | None = None
    last_event_at: datetime | None = None
    last_sync_at: datetime | None = None
    last_lag_ms: int | None = None
    watch_updated_at: datetime | None = None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def new_owner(purpose: str) -> str:
    """A unique owner string for one hold: host:pid:process-start:token:purpose."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start(pid) or '-'}:{uuid.uuid4().hex[:12]}:{purpose}"


def describe_owner(owner: str | None) -> str:
    if not owner:
        return "nobody"
    parts = owner.split(":")
    if len(parts) >= 5:
        return f"{parts[4]} on {parts[0]} pid {parts[1]}"
    return owner


def owner_is_gone(owner: str | None) -> bool:
    """True only for an owner of this host whose process no longer exists (or whose pid was reused);
    other hosts' owners are judged by expiry alone."""
    if not owner:
        return False
    parts = owner.split(":")
    if len(parts) < 5 or not parts[1].isdigit():
        return False
    return is_gone(parts[0], int(parts[1]), None if parts[2] == "-" else parts[2])


def _key(integration: str, mailbox: str):
    return and_(mailbox_leases.c.integration == integration, mailbox_leases.c.mailbox == mailbox)


def try_take(conn: Connection, integration: str, mailbox: str, owner: str, ttl_s: float) -> str | None:
    """Take the lease for ``owner``; returns None when taken, else the current holder."""
    now = _now()
    values = {"owner": owner, "acquired_at": now, "expires_at": now + timedelta(seconds=ttl_s)}
    taken = conn.execute(update(mailbox_leases).where(
        _key(integration, mailbox),
        or_(mailbox_leases.c.owner.is_(None), mailbox_leases.c.owner == owner, mailbox_leases.c.expires_at <= now),
    ).values(**values)).rowcount
    if taken:
        return None
    inserted = conn.execute(dialect_insert(conn, mailbox_leases).values(
        integration=integration, mailbox=mailbox, **values).on_conflict_do_nothing(
        index_elements=["integration", "mailbox"])).rowcount
    if inserted:
        return None
    holder = conn.execute(select(mailbox_leases.c.owner).where(_key(integration, mailbox))).scalar()
    if owner_is_gone(holder):
        log.warning("the lease of %s was held by a process that is gone (%s): taken over", mailbox,
                    describe_owner(holder))
        conn.execute(update(mailbox_leases).where(_key(integration, mailbox), mailbox_leases.c.owner == holder)
                     .values(**values))
        return None
    return holder


def renew(conn: Connection, integration: str, mailbox: str, owner: str, ttl_s: float) -> bool:
    """Push the expiry forward; False when ``owner`` no longer holds the lease."""
    return bool(conn.execute(update(mailbox_leases).where(
        _key(integration, mailbox), mailbox_leases.c.owner == owner).values(
        expires_at=_now() + timedelta(seconds=ttl_s))).rowcount)


def release(conn: Connection, integration: str, mailbox: str, owner: str) -> None:
    conn.execute(update(mailbox_leases).where(_key(integration, mailbox), mailbox_leases.c.owner == owner)
                 .values(owner=None, acquired_at=None, expires_at=None))


def put_watch_state(conn: Connection, integration: str, mailbox: str, **values: Any) -> None:
    """Set some of the watch columns (``WATCH_COLUMNS``) of a mailbox's row, creating it if needed."""
    unknown = set(values) - set(WATCH_COLUMNS)
    if unknown:
        raise ValueError(f"not watch columns: {sorted(unknown)}")
    values = {**values, "watch_updated_at": _now()}
    statement = dialect_insert(conn, mailbox_leases).values(integration=integration, mailbox=mailbox, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["integration", "mailbox"],
                                                 set_={k: statement.excluded[k] for k in values}))


def touch_watch_rows(conn: Connection, integration: str, watch_owner: str) -> int:
    """The watcher's heartbeat: ``watch_updated_at`` of every row it owns is now (``WATCH_STALE_S``)."""
    return conn.execute(update(mailbox_leases).where(mailbox_leases.c.integration == integration,
                                                     mailbox_leases.c.watch_owner == watch_owner)
                        .values(watch_updated_at=_now())).rowcount


def list_rows(conn: Connection, integration: str) -> list[MailboxLeaseRow]:
    rows = conn.execute(select(mailbox_leases).where(mailbox_leases.c.integration == integration)
                        .order_by(mailbox_leases.c.mailbox))
    return [MailboxLeaseRow.model_validate(dict(r._mapping)) for r in rows]


# ---- the API the pipeline and the watcher use ----------------------------------------------------
def _write(store: Any, work):
    with write_transaction(store.engine) as conn:
        return work(conn)


def watch_state(store: Any, integration: str, mailbox: str, **values: Any) -> None:
    _write(store, lambda conn: put_watch_state(conn, integration, mailbox, **values))


def touch_watch(store: Any, integration: str, watch_owner: str) -> int:
    return _write(store, lambda conn: touch_watch_rows(conn, integration, watch_owner))


def lease_rows(store: Any, integration: str) -> list[MailboxLeaseRow]:
    with read_transaction(store.engine) as conn:
        return list_rows(conn, integration)


class _Renewer:
    """One daemon thread per process renewing every lease held in it."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[Any, str, str, float]] = {}  # owner -> (store, integration, mailbox, ttl)
        self._lost: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, owner: str, store: Any, integration: str, mailbox: str, ttl_s: float) -> None:
        with self._lock:
            self._held[owner] = (store, integration, mailbox, ttl_s)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lease-renewer", daemon=True)
                self._thread.start()
        self._wake.set()

    def remove(self, owner: str) -> bool:
        """Stop renewing; True if the lease was lost while held (another writer took it after expiry)."""
        with self._lock:
            self._held.pop(owner, None)
            lost = owner in self._lost
            self._lost.discard(owner)
            return lost

    def _run(self) -> None:
        while True:
            with self._lock:
                held = dict(self._held)
            if not held:
                self._wake.wait(5.0)
                self._wake.clear()
                continue
            period = min(ttl for *_, ttl in held.values()) / 3
            self._wake.wait(period)
            self._wake.clear()
            for owner, (store, integration, mailbox, ttl) in held.items():
                with self._lock:
                    if owner not in self._held:
                        continue
                try:
                    if not _write(store, lambda conn, i=integration, m=mailbox, o=owner, t=ttl: renew(conn, i, m, o, t)):
                        with self._lock:
                            if owner not in self._held:
                                continue  # released meanwhile
                            self._lost.add(owner)
                        log.error("lost the lease of mailbox %s (%s): another writer took it after it expired",
                                  mailbox, describe_owner(owner))
                except Exception:  # noqa: BLE001 - retried at the next period; expiry is the safety net
                    log.warning("could not renew the lease of mailbox %s", mailbox, exc_info=True)


_RENEWER = _Renewer()


@contextmanager
def hold_mailbox(store: Any, integration: str, mailbox: str, *, purpose: str, ttl_s: float, wait_s: float = 0.0,
                 poll_s: float = 0.5) -> Iterator[str]:
    """Hold the mailbox's lease for the block (renewed in the background); yields the owner string.
    Waits up to ``wait_s`` for another writer to finish, then raises ``LeaseBusy``."""
    owner = new_owner(purpose)
    deadline = time.monotonic() + wait_s
    while True:
        holder = _write(store, lambda conn: try_take(conn, integration, mailbox, owner, ttl_s))
        if holder is None:
            break
        if time.monotonic() >= deadline:
            raise LeaseBusy(mailbox, holder)
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())) or poll_s)
    _RENEWER.add(owner, store, integration, mailbox, ttl_s)
    try:
        yield owner
    finally:
        _RENEWER.remove(owner)
        try:
            _write(store, lambda conn: release(conn, integration, mailbox, owner))
        except Exception:  # noqa: BLE001 - the lease expires on its own
            log.warning("could not release the lease of mailbox %s; it expires in %g s", mailbox, ttl_s)
