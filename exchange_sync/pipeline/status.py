"""What `exchange-sync status` shows: mailboxes, folders, watermarks, last runs (read-only)."""

from __future__ import annotations

from exchange_sync.config import IntegrationConfig
from exchange_sync.pipeline.runtime import checkpoint_store
from exchange_sync.store import SqlStore
from exchange_sync.store.leases import (WATCH_STALE_S, MailboxLeaseRow, describe_owner, lease_rows,
                                        owner_is_gone)


def _watch(row: MailboxLeaseRow | None) -> dict | None:
    """How `exchange-sync watch` follows the mailbox (None: never watched), and who syncs it now."""
    if row is None:
        return None
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    mode = row.watch_mode
    silent = row.watch_updated_at is not None and (now - row.watch_updated_at).total_seconds() > WATCH_STALE_S
    if mode not in (None, "stopped", "skipped") and (owner_is_gone(row.watch_owner) or silent):
        mode = "stale"  # the watch process died without stopping (kill -9, crash, a lost host)
    syncing = row.owner is not None and row.expires_at is not None and row.expires_at > now
    return {
        "mode": mode,  # streaming | pull | polling (fallback, see reason) | graph_polling | skipped | stopped | stale
        "reason": row.watch_reason,
        "last_event_at": row.last_event_at,
        "last_sync_at": row.last_sync_at,
        "lag_s": None if row.last_lag_ms is None else round(row.last_lag_ms / 1000, 3),
        "syncing_now": describe_owner(row.owner) if syncing else None,
        "watcher": describe_owner(row.watch_owner) if row.watch_owner else None,
    }


def integration_status(config: IntegrationConfig, *, runs: int = 5) -> dict:
    state = SqlStore(config.state.url)
    checkpoints = checkpoint_store(config)
    statuses = {s.mailbox: s for s in state.mailbox_statuses(config.name)}
    health = {h.mailbox: h for h in state.mailbox_health(config.name)}
    watching = {w.mailbox: w for w in lease_rows(state, config.name)}
    folders: dict[str, list[dict]] = {}
    for f in checkpoints.list_folder_states(config.name):
        folders.setdefault(f.mailbox, []).append(
            {
                "path": f.folder_path,
                "folder_id": f.folder_id,
                "has_watermark": f.sync_state is not None,
                "last_synced_at": f.last_synced_at,
                "items_synced": f.items_synced,
                "error": f.last_error,
            }
        )
    mailboxes = []
    for mb in config.mailboxes:
        st = statuses.get(mb.email)
        h = health.get(mb.email)
        mailboxes.append(
            {
                "mailbox": mb.email,
                "enabled": mb.enabled,
                "status": st.status if st else None,
                "reason": st.reason if st else None,
                "error_count": st.error_count if st else 0,
                "updated_at": st.updated_at if st else None,
                # Disabled after repeated same-reason failures (see `exchange-sync enable`).
                "disabled": bool(h and h.disabled),
                "disabled_reason": h.disabled_reason if h and h.disabled else None,
                "consecutive_failures": h.consecutive_failures if h else 0,
                "folders": sorted(folders.get(mb.email, []), key=lambda f: f["path"].lower()),
                "watch": _watch(watching.get(mb.email)),
            }
        )
    return {
        "integration": config.name,
        "mailboxes": mailboxes,
        "runs": [
            {"started_at": r.started_at, "mode": r.mode, "status": r.status,
             "totals": (r.summary or {}).get("totals")}
            for r in state.list_runs(config.name, limit=runs)
        ],
    }
