"""Pipeline state: folder watermarks, recorded deletions, rejections, runs, mailbox statuses."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Sequence

from sqlalchemy import Connection, select

from exchange_sync.store.comments import dialect_insert
from exchange_sync.store.models import Deletion, FolderState, MailboxHealth, MailboxStatus, Rejected, RunRecord
from exchange_sync.store.schema import deletions, folder_states, mailbox_health, mailbox_statuses, rejections, runs


def _upsert(conn: Connection, table: Any, keys: Sequence[str], values: dict[str, Any]) -> None:
    """INSERT the row, or on a key conflict set every other column to the new values."""
    statement = dialect_insert(conn, table).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={key: statement.excluded[key] for key in values if key not in keys}
    )
    conn.execute(statement)


def upsert_folder_state(conn: Connection, state: FolderState) -> None:
    _upsert(conn, folder_states, ("integration", "mailbox", "folder_id"), state.model_dump())


def _folder_state(row: Any) -> FolderState:
    return FolderState.model_validate(dict(row._mapping))


def get_folder_state(conn: Connection, integration: str, mailbox: str, folder_id: str) -> FolderState | None:
    row = conn.execute(
        select(folder_states).where(
            folder_states.c.integration == integration,
            folder_states.c.mailbox == mailbox,
            folder_states.c.folder_id == folder_id,
        )
    ).first()
    return _folder_state(row) if row else None


def list_folder_states(conn: Connection, integration: str) -> list[FolderState]:
    rows = conn.execute(
        select(folder_states)
        .where(folder_states.c.integration == integration)
        .order_by(folder_states.c.mailbox, folder_states.c.folder_path, folder_states.c.folder_id)
    )
    return [_folder_state(row) for row in rows]


def record_deletions(conn: Connection, integration: str, mailbox: str, items: Sequence[Deletion]) -> None:
    if not items:
        return
    rows = [{"integration": integration, "mailbox": mailbox, **item.model_dump()} for item in items]
    statement = dialect_insert(conn, deletions).on_conflict_do_nothing(
        index_elements=["integration", "mailbox", "folder_id", "item_id"]
    )
    conn.execute(statement, rows)


def count_deletions(conn: Connection, integration: str, mailbox: str | None = None) -> int:
    from sqlalchemy import func

    query = select(func.count()).select_from(deletions).where(deletions.c.integration == integration)
    if mailbox is not None:
        query = query.where(deletions.c.mailbox == mailbox)
    return conn.execute(query).scalar_one()


def record_rejections(conn: Connection, integration: str, items: Sequence[Rejected]) -> None:
    if not items:
        return
    # One row per item: the last occurrence of an item in the batch wins (as in the database).
    latest = {(item.mailbox, item.item_id): item for item in items}
    rows = [{"integration": integration, **item.model_dump()} for item in latest.values()]
    statement = dialect_insert(conn, rejections)
    statement = statement.on_conflict_do_update(
        index_elements=["integration", "mailbox", "item_id"],
        set_={key: statement.excluded[key] for key in ("folder_path", "message_id", "reason", "rejected_at")},
    )
    conn.execute(statement, rows)


def list_rejections(conn: Connection, integration: str) -> list[Rejected]:
    rows = conn.execute(
        select(rejections)
        .where(rejections.c.integration == integration)
        .order_by(rejections.c.mailbox, rejections.c.folder_path, rejections.c.item_id)
    )
    return [Rejected.model_validate({k: v for k, v in row._mapping.items() if k != "integration"}) for row in rows]


def start_run(conn: Connection, integration: str, mode: str, owner: dict[str, Any] | None = None) -> int:
    """A run in status ``running``; ``owner`` (host, pid, process start time) is kept in its summary
    until it finishes, so that a later run can tell that its process died (``mark_stale_runs``)."""
    result = conn.execute(
        runs.insert()
        .values(integration=integration, mode=mode, status="running", started_at=datetime.now(timezone.utc),
                summary=json.dumps({"owner": owner}) if owner else None)
        .returning(runs.c.id)
    )
    return int(result.scalar_one())


def mark_stale_runs(conn: Connection, integration: str, is_dead: Any) -> list[int]:
    """Mark ``crashed`` every ``running`` run of the integration whose owner ``is_dead(owner)`` says
    is gone (a run killed with kill -9 never finished). Returns their ids."""
    rows = conn.execute(
        select(runs.c.id, runs.c.summary).where(runs.c.integration == integration, runs.c.status == "running")
    ).all()
    crashed = []
    for row in rows:
        try:
            owner = (json.loads(row.summary) or {}).get("owner") if row.summary else None
        except (ValueError, AttributeError):
            owner = None
        if owner and is_dead(owner):
            summary = {"owner": owner, "notes": ["the run's process ended without finishing it (killed or crashed)"]}
            conn.execute(runs.update().where(runs.c.id == row.id, runs.c.status == "running").values(
                status="crashed", finished_at=datetime.now(timezone.utc), summary=json.dumps(summary)))
            crashed.append(int(row.id))
    return crashed


def finish_run(conn: Connection, run_id: int, status: str, summary: dict[str, Any]) -> None:
    result = conn.execute(
        runs.update()
        .where(runs.c.id == run_id)
        .values(status=status, finished_at=datetime.now(timezone.utc), summary=json.dumps(summary, default=str))
    )
    if result.rowcount == 0:
        raise KeyError(f"no run with id {run_id}")


def list_runs(conn: Connection, integration: str, limit: int) -> list[RunRecord]:
    rows = conn.execute(
        select(runs).where(runs.c.integration == integration).order_by(runs.c.id.desc()).limit(limit)
    )
    records = []
    for row in rows:
        values = dict(row._mapping)
        values["summary"] = json.loads(values["summary"]) if values["summary"] else None
        records.append(RunRecord.model_validate(values))
    return records


def set_mailbox_status(
    conn: Connection, integration: str, mailbox: str, status: str, reason: str | None, error_count_delta: int
) -> None:
    now = datetime.now(timezone.utc)
    statement = dialect_insert(conn, mailbox_statuses).values(
        integration=integration,
        mailbox=mailbox,
        status=status,
        reason=reason,
        error_count=max(error_count_delta, 0),
        updated_at=now,
    )
    statement = statement.on_conflict_do_update(
        index_elements=["integration", "mailbox"],
        set_={
            "status": statement.excluded.status,
            "reason": statement.excluded.reason,
            "updated_at": statement.excluded.updated_at,
            # Atomic increment: two threads reporting errors for one mailbox both count.
            "error_count": mailbox_statuses.c.error_count + error_count_delta,
        },
    )
    conn.execute(statement)


def mailbox_statuses_of(conn: Connection, integration: str) -> list[MailboxStatus]:
    rows = conn.execute(
        select(mailbox_statuses)
        .where(mailbox_statuses.c.integration == integration)
        .order_by(mailbox_statuses.c.mailbox)
    )
    return [MailboxStatus.model_validate(dict(row._mapping)) for row in rows]


def _health(row: Any) -> MailboxHealth:
    values = dict(row._mapping)
    values["disabled"] = bool(values["disabled"])
    return MailboxHealth.model_validate(values)


def get_mailbox_health(conn: Connection, integration: str, mailbox: str) -> MailboxHealth | None:
    row = conn.execute(
        select(mailbox_health).where(mailbox_health.c.integration == integration, mailbox_health.c.mailbox == mailbox)
    ).first()
    return _health(row) if row else None


def put_mailbox_health(conn: Connection, health: MailboxHealth) -> None:
    values = health.model_dump()
    values["disabled"] = int(health.disabled)
    statement = dialect_insert(conn, mailbox_health).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["integration", "mailbox"],
        set_={key: statement.excluded[key] for key in values if key not in ("integration", "mailbox")},
    )
    conn.execute(statement)


# Failures that say nothing about one mailbox: the server, the network, the credentials, the
# destination or this worker are at fault, and every mailbox would fail the same way. They never
# count toward disabling a mailbox (a 15-minute outage must not disable every mailbox); the run fails
# with the reason instead (docs/operations.md: alert on it). server_rejected_request is per request,
# so it stays mailbox-level.
INTEGRATION_WIDE_REASONS = frozenset({
    "invalid_exchange_credentials",
    "server_unavailable",
    "tls_error",
    "invalid_tls_config",
    "secret_unavailable",
    "state_unavailable",
    "destination_unauthorized",
    "destination_unavailable",
    "server_limit_missing",
})


def record_mailbox_outcome(
    conn: Connection, integration: str, mailbox: str, failure_reason: str | None, disable_after: int
) -> MailboxHealth:
    """One run's outcome for a mailbox: ``failure_reason`` None = it synced.

    The streak counts runs that failed for the *same* reason: a different reason starts a new
    streak at 1 (a flapping server must not add up to disabling a mailbox that is merely unlucky),
    a success resets it. Reaching ``disable_after`` (> 0) disables the mailbox with that reason.
    Read and write happen in the caller's one write transaction, so concurrent runs cannot lose a count.
    """
    now = datetime.now(timezone.utc)
    current = get_mailbox_health(conn, integration, mailbox) or MailboxHealth(integration=integration, mailbox=mailbox)
    if failure_reason in INTEGRATION_WIDE_REASONS:
        return current  # neither a failure of this mailbox nor a success: the streak stays as it was
    if failure_reason is None:
        streak, reason = 0, None
    elif current.failure_reason == failure_reason:
        streak, reason = current.consecutive_failures + 1, failure_reason
    else:
        streak, reason = 1, failure_reason
    updated = current.model_copy(update={"failure_reason": reason, "consecutive_failures": streak, "updated_at": now})
    if not current.disabled and reason is not None and disable_after > 0 and streak >= disable_after:
        updated = updated.model_copy(update={
            "disabled": True,
            "disabled_reason": f"{reason}: failed {streak} runs in a row",
            "disabled_at": now,
        })
    put_mailbox_health(conn, updated)
    return updated


def set_mailbox_enabled(conn: Connection, integration: str, mailbox: str) -> MailboxHealth:
    """Re-enable a mailbox: clears the disabled flag and the failure streak."""
    health = MailboxHealth(integration=integration, mailbox=mailbox, updated_at=datetime.now(timezone.utc))
    put_mailbox_health(conn, health)
    return health


def list_mailbox_health(conn: Connection, integration: str) -> list[MailboxHealth]:
    rows = conn.execute(
        select(mailbox_health).where(mailbox_health.c.integration == integration).order_by(mailbox_health.c.mailbox)
    )
    return [_health(row) for row in rows]


# --- folder-list cache and server info (see schema.folder_lists / schema.server_info) ------------

def put_folder_list(conn: Connection, integration: str, mailbox: str, folders_json: str, refreshed_at: datetime) -> None:
    from exchange_sync.store.schema import folder_lists

    _upsert(conn, folder_lists, ("integration", "mailbox"),
            {"integration": integration, "mailbox": mailbox, "folders": folders_json, "refreshed_at": refreshed_at})


def get_folder_list(conn: Connection, integration: str, mailbox: str) -> tuple[str, datetime] | None:
    from exchange_sync.store.schema import folder_lists

    row = conn.execute(
        select(folder_lists.c.folders, folder_lists.c.refreshed_at).where(
            folder_lists.c.integration == integration, folder_lists.c.mailbox == mailbox
        )
    ).first()
    return (row.folders, row.refreshed_at) if row else None


def delete_folder_lists(conn: Connection, integration: str, mailbox: str | None) -> int:
    from exchange_sync.store.schema import folder_lists

    statement = folder_lists.delete().where(folder_lists.c.integration == integration)
    if mailbox is not None:
        statement = statement.where(folder_lists.c.mailbox == mailbox)
    return conn.execute(statement).rowcount


def put_server_info(conn: Connection, integration: str, endpoint: str, info_json: str, learned_at: datetime) -> None:
    from exchange_sync.store.schema import server_info

    _upsert(conn, server_info, ("integration", "endpoint"),
            {"integration": integration, "endpoint": endpoint, "info": info_json, "learned_at": learned_at})


def get_server_info(conn: Connection, integration: str, endpoint: str) -> tuple[str, datetime] | None:
    from exchange_sync.store.schema import server_info

    row = conn.execute(
        select(server_info.c.info, server_info.c.learned_at).where(
            server_info.c.integration == integration, server_info.c.endpoint == endpoint
        )
    ).first()
    return (row.info, row.learned_at) if row else None
