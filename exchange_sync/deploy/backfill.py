"""Backfills through the Prefect server: a window split into chunks, one flow run per chunk.

Each chunk is submitted with an idempotency key derived from (integration, chunk start, chunk end,
mailboxes): submitting the same window twice (a retried command, two operators) yields the same
flow runs instead of loading the window twice. The backfill fields are top-level flow parameters:
run_deployment merges top-level parameters with the deployment's, but replaces a nested dict whole.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from uuid import UUID

from exchange_sync.deploy.names import backfill_deployment_name, full_name


@dataclass(frozen=True)
class Chunk:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Submitted:
    chunk: Chunk
    flow_run_id: UUID
    flow_run_name: str
    idempotency_key: str


def split_window(start: datetime, end: datetime, chunk_days: int) -> list[Chunk]:
    """[start, end) in consecutive chunks of at most ``chunk_days`` days (the last one shorter)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("backfill window bounds must be timezone-aware")
    if start >= end:
        raise ValueError(f"start {start.isoformat()} must be before end {end.isoformat()}")
    if chunk_days < 1:
        raise ValueError("chunk_days must be at least 1")
    step = timedelta(days=chunk_days)
    chunks, lo = [], start
    while lo < end:
        hi = min(lo + step, end)
        chunks.append(Chunk(lo, hi))
        lo = hi
    return chunks


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def idempotency_key(integration: str, chunk: Chunk, mailboxes: list[str] | None) -> str:
    scope = ",".join(sorted(m.lower() for m in mailboxes)) if mailboxes else "*"
    digest = hashlib.sha256(scope.encode()).hexdigest()[:12]
    return f"exchange-sync-backfill:{integration}:{_iso(chunk.start)}:{_iso(chunk.end)}:{digest}"


def submit(integration: str, start: datetime, end: datetime, *, mailboxes: list[str] | None = None,
           chunk_days: int = 31) -> list[Submitted]:
    """Create one flow run per chunk on the integration's backfill deployment; returns at once
    (``timeout=0``): a worker runs them one after another (the deployment's limit is 1, ENQUEUE)."""
    from prefect import get_client
    from prefect.deployments import run_deployment

    name = full_name(backfill_deployment_name(integration))
    with get_client(sync_client=True) as client:
        schema = client.read_deployment_by_name(name).parameter_openapi_schema or {}
    # The form flow (EWS) restricts a run with `only_mailboxes`; the `config` flow with `mailboxes`.
    subset_key = "only_mailboxes" if "only_mailboxes" in (schema.get("properties") or {}) else "mailboxes"
    out = []
    for chunk in split_window(start, end, chunk_days):
        key = idempotency_key(integration, chunk, mailboxes)
        params: dict = {"mode": "backfill", "start": _iso(chunk.start), "end": _iso(chunk.end)}
        if mailboxes:
            params[subset_key] = list(mailboxes)
        run = run_deployment(
            name,
            parameters=params,
            tags=["backfill"],
            idempotency_key=key,
            timeout=0,
        )
        out.append(Submitted(chunk=chunk, flow_run_id=run.id, flow_run_name=run.name, idempotency_key=key))
    return out
