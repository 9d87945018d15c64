"""Items left out by participant filters, per (integration, mailbox, day): never billed, shown by
`exchange-sync usage` next to the usage ledger (table ``exsync_usage_filtered``, its own table so the
ledger's columns and existing databases stay as they are).

Written once per run, at its end, from the run's mailbox reports: a run killed mid-way does not count
its filtered items (under-counted, never counted twice). Like the ledger's ``unchanged``, a backfill
that reads mail again counts its filtered items again: these are counts of work, not of mail.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy import select

from exchange_sync.store.comments import dialect_insert
from exchange_sync.store.engine import read_transaction, write_transaction
from exchange_sync.store.schema import usage_filtered
from exchange_sync.store.database import Database


def add_filtered(store: Database, integration: str, day: date, per_mailbox: Mapping[str, int]) -> None:
    rows = [{"integration": integration, "mailbox": m, "day": day, "filtered": n} for m, n in sorted(per_mailbox.items())
            if n > 0]
    if not rows:
        return
    with write_transaction(store.engine) as conn:
        statement = dialect_insert(conn, usage_filtered)
        statement = statement.on_conflict_do_update(
            index_elements=["integration", "mailbox", "day"],
            set_={"filtered": usage_filtered.c.filtered + statement.excluded.filtered})
        conn.execute(statement, rows)


def filtered_by_day(store: Database, integration: str, since: date | None = None) -> dict[tuple[date, str], int]:
    """(day, mailbox) -> items filtered."""
    t = usage_filtered
    query = select(t.c.day, t.c.mailbox, t.c.filtered).where(t.c.integration == integration)
    if since is not None:
        query = query.where(t.c.day >= since)
    with read_transaction(store.engine) as conn:
        return {(r.day, r.mailbox): r.filtered for r in conn.execute(query)}
