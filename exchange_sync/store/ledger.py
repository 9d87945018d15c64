"""The destination ledger: what a remote destination has accepted, per (destination, comment id).

It holds the text fingerprint and timestamp of the comment as first synced, never the text itself:
enough to know whether incoming text still equals the frozen text without asking the remote API.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from pydantic import BaseModel
from sqlalchemy import Connection, select

from exchange_sync.store.comments import CHUNK, dialect_insert
from exchange_sync.store.schema import destination_ledger


class LedgerEntry(BaseModel):
    id: str
    text_hash: str
    timestamp: datetime


def get_entries(conn: Connection, destination: str, ids: Sequence[str]) -> dict[str, LedgerEntry]:
    found: dict[str, LedgerEntry] = {}
    unique = sorted(set(ids))
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        rows = conn.execute(
            select(destination_ledger.c.id, destination_ledger.c.text_hash, destination_ledger.c.timestamp).where(
                destination_ledger.c.destination == destination, destination_ledger.c.id.in_(chunk)
            )
        )
        for row in rows:
            found[row.id] = LedgerEntry(id=row.id, text_hash=row.text_hash, timestamp=row.timestamp)
    return found


def put_entries(conn: Connection, destination: str, entries: Sequence[LedgerEntry]) -> None:
    if not entries:
        return
    now = datetime.now(timezone.utc)
    rows = [
        {"destination": destination, "id": e.id, "text_hash": e.text_hash, "timestamp": e.timestamp, "synced_at": now}
        for e in sorted(entries, key=lambda e: e.id)
    ]
    for start in range(0, len(rows), 200):
        statement = dialect_insert(conn, destination_ledger)
        statement = statement.on_conflict_do_update(
            index_elements=["destination", "id"],
            set_={
                "text_hash": statement.excluded.text_hash,
                "timestamp": statement.excluded.timestamp,
                "synced_at": statement.excluded.synced_at,
            },
        )
        conn.execute(statement, rows[start : start + 200])


def delete_entries(conn: Connection, destination: str, ids: Sequence[str]) -> None:
    unique = sorted(set(ids))
    for start in range(0, len(unique), CHUNK):
        conn.execute(
            destination_ledger.delete().where(
                destination_ledger.c.destination == destination,
                destination_ledger.c.id.in_(unique[start : start + CHUNK]),
            )
        )
