"""What `exchange-sync status` shows: mailboxes, folders, watermarks, last runs (read-only)."""

from __future__ import annotations

from exchange_sync.config import IntegrationConfig
from exchange_sync.pipeline.runtime import checkpoint_store
from exchange_sync.store import SqlStore


def integration_status(config: IntegrationConfig, *, runs: int = 5) -> dict:
    state = SqlStore(config.state.url)
    checkpoints = checkpoint_store(config)
    statuses = {s.mailbox: s for s in state.mailbox_statuses(config.name)}
    health = {h.mailbox: h for h in state.mailbox_health(config.name)}
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
