"""Buckets of raw emails: what the comments API's bucket route stores (``exsync_bucket_emails``) and
what the bucket destination has sent (``exsync_bucket_ledger``, fingerprints only).

An email is keyed by (bucket, id): putting an id again replaces it (the platform's semantics of
``PUT /api/_private/buckets/<owner>/<bucket>/emails``), so a re-sent email never duplicates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select

from exchange_sync.store.comments import CHUNK, dialect_insert
from exchange_sync.store.engine import read_transaction, write_transaction
from exchange_sync.store.schema import bucket_emails, bucket_ledger
from exchange_sync.store.database import Database


def canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _existing(conn, bucket: str, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    unique = sorted(set(ids))
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        found.update(conn.execute(select(bucket_emails.c.id).where(bucket_emails.c.bucket == bucket,
                                                                   bucket_emails.c.id.in_(chunk))).scalars())
    return found


def put_emails(store: Database, bucket: str, emails: Sequence[dict[str, Any]], *, quota: int | None = None) -> int:
    """Insert or replace ``emails`` (the last occurrence of an id wins); returns how many were new.
    With ``quota``, a put that would take the bucket past ``quota`` emails raises ``QuotaExceeded``
    and stores nothing."""
    latest = {e["id"]: e for e in emails}
    now = datetime.now(timezone.utc)
    with write_transaction(store.engine) as conn:
        new = len(latest) - len(_existing(conn, bucket, list(latest)))
        if quota is not None and new:
            held = conn.execute(select(func.count()).select_from(bucket_emails)
                                .where(bucket_emails.c.bucket == bucket)).scalar_one()
            if held + new > quota:
                raise QuotaExceeded(held, new, quota)
        rows = [{"bucket": bucket, "id": i, "data": canonical(e), "created_at": now, "updated_at": now}
                for i, e in sorted(latest.items())]
        for start in range(0, len(rows), 200):
            statement = dialect_insert(conn, bucket_emails)
            statement = statement.on_conflict_do_update(
                index_elements=["bucket", "id"],
                set_={"data": statement.excluded.data, "updated_at": statement.excluded.updated_at})
            conn.execute(statement, rows[start : start + 200])
    return new


class QuotaExceeded(Exception):
    def __init__(self, held: int, new: int, quota: int) -> None:
        super().__init__(f"{held} held + {new} new > {quota}")
        self.held, self.new, self.quota = held, new, quota


def list_emails(store: Database, bucket: str, *, ids: Sequence[str] | None = None, after: str | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
    """Emails of a bucket ordered by id (``after``: the last id of the previous page), or the given ids."""
    t = bucket_emails
    query = select(t.c.data).where(t.c.bucket == bucket)
    if ids is not None:
        query = query.where(t.c.id.in_(list(ids)[:CHUNK]))
    if after is not None:
        query = query.where(t.c.id > after)
    with read_transaction(store.engine) as conn:
        rows = conn.execute(query.order_by(t.c.id).limit(limit)).scalars().all()
    return [json.loads(row) for row in rows]


def count_emails(store: Database, bucket: str) -> int:
    with read_transaction(store.engine) as conn:
        return conn.execute(select(func.count()).select_from(bucket_emails)
                            .where(bucket_emails.c.bucket == bucket)).scalar_one()


# --- the destination's ledger --------------------------------------------------------------------

@dataclass(frozen=True)
class SentEmail:
    id: str
    text_hash: str
    payload_hash: str


def ledger_get(store: Database, destination: str, ids: Sequence[str]) -> dict[str, SentEmail]:
    t = bucket_ledger
    found: dict[str, SentEmail] = {}
    unique = sorted(set(ids))
    with read_transaction(store.engine) as conn:
        for start in range(0, len(unique), CHUNK):
            rows = conn.execute(select(t.c.id, t.c.text_hash, t.c.payload_hash)
                                .where(t.c.destination == destination, t.c.id.in_(unique[start : start + CHUNK])))
            found.update({r.id: SentEmail(r.id, r.text_hash, r.payload_hash) for r in rows})
    return found


def ledger_put(store: Database, destination: str, sent: Sequence[SentEmail]) -> None:
    if not sent:
        return
    now = datetime.now(timezone.utc)
    rows = [{"destination": destination, "id": s.id, "text_hash": s.text_hash, "payload_hash": s.payload_hash,
             "sent_at": now} for s in sorted(sent, key=lambda s: s.id)]
    with write_transaction(store.engine) as conn:
        for start in range(0, len(rows), 200):
            statement = dialect_insert(conn, bucket_ledger)
            statement = statement.on_conflict_do_update(
                index_elements=["destination", "id"],
                set_={"text_hash": statement.excluded.text_hash, "payload_hash": statement.excluded.payload_hash,
                      "sent_at": statement.excluded.sent_at})
            conn.execute(statement, rows[start : start + 200])
