"""The usage ledger: counts and units per (integration, mailbox, day), accumulated atomically."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, select

from exchange_sync.store.comments import dialect_insert
from exchange_sync.store.models import SyncCounts, UsageKey, UsageRow
from exchange_sync.store.schema import usage

_COUNTED = ("new", "updated_properties_only", "updated_text_changed", "unchanged")


def add_usage(conn: Connection, key: UsageKey, counts: SyncCounts) -> None:
    values = {name: getattr(counts, name) for name in _COUNTED}
    statement = dialect_insert(conn, usage).values(
        integration=key.integration, mailbox=key.mailbox, day=key.day, **values
    )
    statement = statement.on_conflict_do_update(
        index_elements=["integration", "mailbox", "day"],
        set_={name: usage.c[name] + statement.excluded[name] for name in _COUNTED},
    )
    conn.execute(statement)


def usage_rows(conn: Connection, integration: str, since: date | None = None) -> list[UsageRow]:
    query = select(usage).where(usage.c.integration == integration)
    if since is not None:
        query = query.where(usage.c.day >= since)
    rows = conn.execute(query.order_by(usage.c.day, usage.c.mailbox))
    return [
        UsageRow(
            integration=row.integration,
            day=row.day,
            mailbox=row.mailbox,
            new=row.new,
            updated_properties_only=row.updated_properties_only,
            updated_text_changed=row.updated_text_changed,
            unchanged=row.unchanged,
            units=row.new + row.updated_text_changed,
        )
        for row in rows
    ]
