"""Integration errors as records: append and list (table ``exsync_integration_errors``).

What a row means (kinds, actions) is decided in ``exchange_sync.pipeline.outcome``; this module only
stores it. Messages are the pipeline's own error texts, which never carry a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import func, select

from exchange_sync.store.engine import read_transaction, write_transaction
from exchange_sync.store.schema import integration_errors
from exchange_sync.store.database import Database

Action = Literal["mailbox_disabled", "integration_disabled", "none"]
MAX_MESSAGE_CHARS = 2000


class IntegrationError(BaseModel):
    """One error of a run: the hosted product's ``kind``, the mailbox (None: the whole integration),
    the ``action`` taken, our own ``reason`` it was mapped from, the message and when."""

    kind: str
    mailbox: str | None = None
    action: Action = "none"
    reason: str
    message: str
    occurred_at: datetime
    run_id: int | None = None
    integration: str = ""

    def row(self) -> dict:
        """For tables (CLI, Prefect artifact): strings only."""
        return {"time": self.occurred_at.isoformat(timespec="seconds"), "kind": self.kind,
                "mailbox": self.mailbox or "(integration)", "action": self.action, "message": self.message}


def record_errors(store: Database, integration: str, errors: Sequence[IntegrationError], run_id: int | None = None) -> None:
    if not errors:
        return
    rows = [{"integration": integration, "run_id": run_id, "kind": e.kind, "mailbox": e.mailbox, "action": e.action,
             "reason": e.reason, "message": e.message[:MAX_MESSAGE_CHARS], "occurred_at": e.occurred_at}
            for e in errors]
    with write_transaction(store.engine) as conn:
        conn.execute(integration_errors.insert(), rows)


def list_errors(store: Database, integration: str, limit: int = 50) -> list[IntegrationError]:
    """The integration's latest errors, newest first."""
    t = integration_errors
    query = (select(t).where(t.c.integration == integration)
             .order_by(t.c.occurred_at.desc(), t.c.id.desc()).limit(limit))
    with read_transaction(store.engine) as conn:
        rows = conn.execute(query).all()
    return [IntegrationError(kind=r.kind, mailbox=r.mailbox, action=r.action, reason=r.reason, message=r.message,
                             occurred_at=r.occurred_at, run_id=r.run_id, integration=r.integration) for r in rows]


def count_errors(store: Database, integration: str) -> int:
    t = integration_errors
    with read_transaction(store.engine) as conn:
        return conn.execute(select(func.count()).select_from(t).where(t.c.integration == integration)).scalar_one()
