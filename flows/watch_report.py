"""What a watch deployment's run shows in Prefect: one table row per mailbox (Prefect-free).

While the watch runs, the rows come from the state database (the mailbox lease table the watch keeps
up to date: mode, fallback reason, last event, last sync, lag; what `exchange-sync status` shows);
when it stops, from its ``WatchSummary`` (events, syncs, items per mailbox).
"""

from __future__ import annotations

from typing import Any

from exchange_sync.config import IntegrationConfig


def artifact_key(integration: str) -> str:
    # Artifact keys: lowercase letters, digits and dashes only.
    return "".join(c if c.isalnum() else "-" for c in f"{integration}-watch".lower())


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else ""


def live_rows(config: IntegrationConfig, mailboxes: list[str] | None = None) -> list[dict[str, Any]]:
    """The watched mailboxes as the state database has them now (read-only)."""
    from exchange_sync.store import SqlStore
    from exchange_sync.store.leases import lease_rows

    wanted = {m.lower() for m in mailboxes} if mailboxes else {m.email for m in config.enabled_mailboxes}
    rows = [r for r in lease_rows(SqlStore(config.state.url), config.name) if r.mailbox in wanted]
    return [{"mailbox": r.mailbox, "mode": r.watch_mode or "starting", "reason": r.watch_reason or "",
             "last_event_at": _iso(r.last_event_at), "last_sync_at": _iso(r.last_sync_at),
             "lag_s": None if r.last_lag_ms is None else round(r.last_lag_ms / 1000, 3)}
            for r in sorted(rows, key=lambda r: r.mailbox)]


def summary_rows(summary) -> list[dict[str, Any]]:
    """A finished watch (``exchange_sync.watch.WatchSummary``), one row per mailbox."""
    return [{"mailbox": m.mailbox, "mode": m.mode, "reason": m.reason or "", "events": m.events, "syncs": m.syncs,
             "items": m.items, "new": m.new, "updated": m.updated, "busy": m.busy, "failures": m.failures,
             "last_lag_ms": m.last_lag_ms, "last_error": m.last_error or ""} for m in summary.mailboxes]


def summary_sentences(summary) -> list[str]:
    """One log line per mailbox, for people."""
    out = []
    for m in summary.mailboxes:
        why = f" ({m.reason})" if m.reason else ""
        out.append(f"Mailbox {m.mailbox} watched by {m.mode}{why}: {m.events} events, {m.syncs} syncs, "
                   f"{m.items} items ({m.new} new, {m.updated} updated).")
    return out
