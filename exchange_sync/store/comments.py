"""Comment rows: the sync upsert with its counts, reads, keyset pagination, search and delete.

Concurrency of ``sync_rows`` (called inside one write transaction):

* SQLite: the transaction is ``BEGIN IMMEDIATE`` under a per-file process lock, so writers are
  serialised and a read-compare-write is safe as is.
* PostgreSQL: one ``INSERT ... ON CONFLICT DO UPDATE`` pass in id order inserts the unknown ids
  and row-locks the known ones (see ``_claim``); a concurrent writer of the same id waits for the
  first to commit and then sees the row as existing, so a comment is never counted ``new`` twice,
  and since all writers lock in id order they queue rather than deadlock. SqlStore still replays a
  transaction on deadlock/serialisation failure as a safety net (other statements may be added).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, and_, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from exchange_sync.comment import ApiComment, Comment, api_form
from exchange_sync.store import textpolicy
from exchange_sync.store.models import SyncCounts
from exchange_sync.store.schema import comments

# Bound parameters per statement stay well below SQLite's 32,766 and PostgreSQL's 65,535.
CHUNK = 500


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def dialect_insert(conn: Connection, table: Any) -> Any:
    """The dialect's INSERT (both have ``on_conflict_do_nothing/do_update``)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _allocate_seq(conn: Connection, count: int) -> list[int]:
    if count == 0:
        return []
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT nextval('exsync_comment_seq') FROM generate_series(1, :n)"), {"n": count}
        ).scalars()
        return sorted(rows)
    # SQLite: this runs inside the serialised write transaction, so max+1 cannot race.
    start = conn.execute(select(func.coalesce(func.max(comments.c.seq), 0))).scalar_one()
    return list(range(start + 1, start + 1 + count))


def _column_text(value: str | None) -> str | None:
    """Text for an indexed column: PostgreSQL rejects NUL in text, and neither backend can
    encode a lone surrogate, so both are replaced (these columns are for filtering only; the
    comment itself is kept exactly in ``data``)."""
    if value is None:
        return None
    cleaned = value.replace("\x00", "\ufffd")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:
        cleaned = cleaned.encode("utf-8", "replace").decode("utf-8")
    return cleaned


def _stored_json(data: dict[str, Any]) -> str:
    text = textpolicy.canonical_json(data)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: JSON's \uXXXX escape keeps it exactly and is plain ASCII.
        text = textpolicy.canonical_json(data, ensure_ascii=True)
    return text


def _row_values(source: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": source,
        "id": data["id"],
        "timestamp": _parse_ts(data["timestamp"]),
        "mailbox": _column_text(textpolicy.mailbox_of(data)),
        "folder": _column_text(textpolicy.folder_of(data)),
        "sender_domain": _column_text(textpolicy.sender_domain_of(data)),
        "text_hash": textpolicy.text_fingerprint(data),
        "search_text": _column_text(textpolicy.search_text(data)),
        "data": _stored_json(data),
    }


def _parse_ts(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def dedupe_last_wins(batch: Iterable[Comment | ApiComment]) -> dict[str, dict[str, Any]]:
    """Comments (API form) by id, the last occurrence of an id winning (each id is then counted once)."""
    by_id: dict[str, dict[str, Any]] = {}
    for comment in batch:
        data = api_form(comment)
        by_id[data["id"]] = data
    return by_id


def _claim(conn: Connection, source: str, ids: Sequence[str], incoming: dict[str, dict[str, Any]], now: datetime) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """Insert the unknown ids and lock the known ones, in ONE pass in id order.

    ``INSERT ... ON CONFLICT DO UPDATE SET seq = <table>.seq RETURNING`` either inserts a row or
    locks the existing one (a no-op update) and returns its stored data. Every writer takes its
    row locks in the same (id) order, so writers of overlapping batches queue instead of
    deadlocking. A row came back with the seq we allocated iff this statement inserted it (seqs
    are unique and only ever grow), which tells new from existing without a second query.
    """
    seqs = _allocate_seq(conn, len(ids))
    rows = []
    for comment_id, seq in zip(ids, seqs):
        values = _row_values(source, incoming[comment_id])
        values.update(seq=seq, created_at=now, updated_at=now)
        rows.append(values)
    inserted: set[str] = set()
    stored: dict[str, dict[str, Any]] = {}
    allocated = dict(zip(ids, seqs))
    for chunk in _chunks(rows, 200):
        statement = dialect_insert(conn, comments)
        statement = statement.on_conflict_do_update(
            index_elements=["source", "id"], set_={"seq": comments.c.seq}
        ).returning(comments.c.id, comments.c.seq, comments.c.data)
        for row in conn.execute(statement, list(chunk)):
            if row.seq == allocated[row.id]:
                inserted.add(row.id)
            else:
                stored[row.id] = json.loads(row.data)
    return inserted, stored


def sync_rows(conn: Connection, source: str, incoming: dict[str, dict[str, Any]], *, freeze: bool) -> SyncCounts:
    ids = sorted(incoming)
    now = datetime.now(timezone.utc)
    outcomes: Counter[str] = Counter()
    inserted, stored = _claim(conn, source, ids, incoming, now)
    outcomes["new"] = len(inserted)

    changes: list[dict[str, Any]] = []
    for comment_id in ids:
        if comment_id in inserted:
            continue
        outcome, result = textpolicy.decide(stored[comment_id], incoming[comment_id], freeze=freeze)
        outcomes[outcome] += 1
        if outcome != "unchanged":
            values = _row_values(source, result)
            values["updated_at"] = now
            changes.append(values)
    if changes:
        for values, seq in zip(changes, _allocate_seq(conn, len(changes))):
            values["seq"] = seq
        statement = (
            update(comments)
            .where(comments.c.source == bindparam("b_source"), comments.c.id == bindparam("b_id"))
            .values(
                {
                    column: bindparam(f"v_{column}")
                    for column in (
                        "seq", "timestamp", "mailbox", "folder", "sender_domain",
                        "text_hash", "search_text", "data", "updated_at",
                    )
                }
            )
        )
        params = [
            {"b_source": v["source"], "b_id": v["id"], **{f"v_{k}": val for k, val in v.items() if k not in ("source", "id")}}
            for v in changes
        ]
        for chunk in _chunks(params, 200):
            conn.execute(statement, list(chunk))

    return SyncCounts(
        new=outcomes["new"],
        updated=outcomes["updated_properties_only"] + outcomes["updated_text_changed"],
        updated_properties_only=outcomes["updated_properties_only"],
        updated_text_changed=outcomes["updated_text_changed"],
        unchanged=outcomes["unchanged"],
    )


# --- reads -------------------------------------------------------------------------------------


def to_comment(data: str) -> Comment:
    return Comment.model_validate(json.loads(data))


def get(conn: Connection, source: str, comment_id: str) -> Comment | None:
    row = conn.execute(
        select(comments.c.data).where(comments.c.source == source, comments.c.id == comment_id)
    ).first()
    return to_comment(row.data) if row else None


class InvalidContinuation(ValueError):
    """The continuation token is not one this store issued."""


@dataclass(frozen=True)
class Cursor:
    timestamp: datetime
    id: str

    def encode(self) -> str:
        raw = json.dumps([self.timestamp.isoformat(), self.id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            stamp, comment_id = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
            parsed = datetime.fromisoformat(stamp)
            if not isinstance(comment_id, str) or parsed.tzinfo is None:
                raise ValueError("bad cursor")
            return cls(parsed.astimezone(timezone.utc), comment_id)
        except (ValueError, TypeError, UnicodeError, binascii.Error) as exc:
            raise InvalidContinuation("invalid continuation token") from exc


def list_page(
    conn: Connection,
    source: str,
    *,
    from_timestamp: datetime | None,
    to_timestamp: datetime | None,
    after: str | None,
    limit: int,
) -> tuple[list[Comment], str | None]:
    """Comments ordered by (timestamp, id), from_timestamp inclusive, to_timestamp exclusive.

    Keyset pagination: the continuation is the last returned (timestamp, id), and the next page
    starts strictly after it. Rows inserted or deleted while a client pages never shift other
    rows (no offsets), so every comment that exists for the whole walk and keeps its timestamp is
    returned exactly once; a new comment appears iff it sorts after the cursor.
    """
    query = select(comments.c.timestamp, comments.c.id, comments.c.data).where(comments.c.source == source)
    if from_timestamp is not None:
        query = query.where(comments.c.timestamp >= from_timestamp)
    if to_timestamp is not None:
        query = query.where(comments.c.timestamp < to_timestamp)
    if after:
        cursor = Cursor.decode(after)
        query = query.where(
            or_(
                comments.c.timestamp > cursor.timestamp,
                and_(comments.c.timestamp == cursor.timestamp, comments.c.id > cursor.id),
            )
        )
    rows = conn.execute(query.order_by(comments.c.timestamp, comments.c.id).limit(limit + 1)).all()
    page = rows[:limit]
    continuation = Cursor(page[-1].timestamp, page[-1].id).encode() if len(rows) > limit else None
    return [to_comment(row.data) for row in page], continuation


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filters(
    source: str,
    *,
    mailbox: str | None = None,
    folder: str | None = None,
    sender_domain: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    text: str | None = None,
) -> list[ColumnElement[bool]]:
    """WHERE clauses of the search: exact mailbox / sender domain (case-insensitive), a folder
    and its subfolders, [since, until) on the timestamp, and a case-insensitive substring over
    subject, body and signature (``LIKE`` on a lower-cased copy: no index, fine for a page that
    also filters by the indexed columns; FTS would need per-backend DDL)."""
    clauses: list[ColumnElement[bool]] = [comments.c.source == source]
    if mailbox:
        clauses.append(comments.c.mailbox == mailbox.strip().lower())
    if folder:
        folder = folder.strip("/")
        clauses.append(
            or_(comments.c.folder == folder, comments.c.folder.like(_escape_like(folder) + "/%", escape="\\"))
        )
    if sender_domain:
        clauses.append(comments.c.sender_domain == sender_domain.strip().lower().lstrip("@"))
    if since is not None:
        clauses.append(comments.c.timestamp >= since)
    if until is not None:
        clauses.append(comments.c.timestamp < until)
    if text:
        clauses.append(comments.c.search_text.like("%" + _escape_like(text.lower()) + "%", escape="\\"))
    return clauses


def search(conn: Connection, clauses: list[ColumnElement[bool]], *, limit: int, offset: int) -> list[Comment]:
    """Newest first (the comments page); offset paging is fine for a human-driven page."""
    query = (
        select(comments.c.data)
        .where(*clauses)
        .order_by(comments.c.timestamp.desc(), comments.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [to_comment(row.data) for row in conn.execute(query)]


def count(conn: Connection, clauses: list[ColumnElement[bool]]) -> int:
    return conn.execute(select(func.count()).select_from(comments).where(*clauses)).scalar_one()


def delete(conn: Connection, source: str, ids: Sequence[str]) -> int:
    removed = 0
    unique = sorted(set(ids))
    for chunk in _chunks(unique):
        result = conn.execute(comments.delete().where(comments.c.source == source, comments.c.id.in_(chunk)))
        removed += result.rowcount or 0
    return removed


def sources(conn: Connection) -> list[str]:
    return list(conn.execute(select(comments.c.source).distinct().order_by(comments.c.source)).scalars())
