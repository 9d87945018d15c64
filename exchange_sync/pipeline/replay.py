"""Replay: re-transform and re-load what is staged, without touching Exchange.

Useful after a transform fix (better cleaning for a strange mail) or to rebuild a store. Loads
are idempotent and text stays frozen, so replaying changes properties only where they differ.
Watermarks are not touched: staging is a copy of what was extracted, not a position in Exchange.
"""

from __future__ import annotations

from exchange_sync.config import IntegrationConfig
from exchange_sync.pipeline.runtime import Runtime
from exchange_sync.pipeline.steps import FolderRef, load_batch, transform_batch
from exchange_sync.store import SyncCounts


def replay(config: IntegrationConfig, mailboxes: list[str] | None = None) -> dict:
    rt = Runtime.open(config)
    wanted = {m.lower() for m in mailboxes} if mailboxes else None
    totals, batches, comments, rejected = SyncCounts(), 0, 0, 0
    try:
        for path in rt.staging.batches(config.name):
            frame = rt.staging.read(path)
            if frame.empty:
                continue
            mailbox = str(frame["mailbox"].iloc[0])
            if wanted and mailbox.lower() not in wanted:
                continue
            folder = FolderRef(folder_id=str(frame["folder_id"].iloc[0]), path=str(frame["folder_path"].iloc[0]))
            batch = transform_batch(rt, path)
            result = load_batch(rt, mailbox, folder, batch, None, False)  # no page: no deletes, no watermark
            totals = totals + result.counts
            batches += 1
            comments += batch.comments
            rejected += result.rejected
    finally:
        rt.close()
    return {"batches": batches, "comments": comments, "rejected": rejected,
            "counts": {**totals.model_dump(), "units": totals.units}}
