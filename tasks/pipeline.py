"""One Prefect task per pipeline step; each works on a whole page and passes paths, never mail.

``cache_policy=NONE``: the inputs hold live connections and the steps have side effects, so
caching by inputs would be both meaningless and wrong. Retries are not configured here: the
source retries transient Exchange errors itself with bounded, server-directed back-off, and a
failed load is safe to rerun as a whole because loads are idempotent.
"""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.cache_policies import NONE

from exchange_sync.pipeline import steps as plain
from exchange_sync.pipeline.runtime import Runtime


# Staging folder key (``<staging>/<integration>/<mailbox>/<key>/<batch>``) -> folder path, filled by
# the extract tasks, so that a transform task run (which only gets the staged file) is named after
# the mailbox and folder it transforms, not ``transform-d9e``.
_FOLDER_PATHS: dict[str, str] = {}


def _remember_folder(folder) -> None:
    from exchange_sync.staging import folder_key

    folder_id = getattr(folder, "folder_id", None)
    if folder_id:
        _FOLDER_PATHS[folder_key(folder_id)] = str(getattr(folder, "path", folder_id))


def transform_run_name() -> str:
    from prefect.runtime import task_run

    path = str((task_run.parameters or {}).get("staged_path") or "")
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if len(parts) >= 3:
        mailbox, key = parts[-3], parts[-2]
        return f"transform {mailbox} {_FOLDER_PATHS.get(key, key)}"
    return "transform"


@task(name="extract", cache_policy=NONE, task_run_name="extract {mailbox} {folder.path}")
def extract_page(rt: Runtime, mailbox: str, folder, sync_state: str | None, start: datetime | None):
    _remember_folder(folder)
    return plain.extract_page(rt, mailbox, folder, sync_state, start)


@task(name="extract-range", cache_policy=NONE, task_run_name="extract-range {mailbox} {folder.path}")
def extract_refs(rt: Runtime, mailbox: str, folder, refs: list):
    _remember_folder(folder)
    return plain.extract_refs(rt, mailbox, folder, refs)


@task(name="transform", cache_policy=NONE, task_run_name=transform_run_name)
def transform_batch(rt: Runtime, staged_path: str):
    return plain.transform_batch(rt, staged_path)


@task(name="load", cache_policy=NONE, task_run_name="load {mailbox} {folder.path}")
def load_batch(
    rt: Runtime,
    mailbox: str,
    folder,
    batch,
    deletes: list[str] | None = None,
    sync_state: str | None = None,
    commit_state: bool = True,
    items_synced: int = 0,
):
    return plain.load_batch(
        rt, mailbox, folder, batch,
        deletes=deletes, sync_state=sync_state, commit_state=commit_state, items_synced=items_synced,
    )


def load_or_commit(rt: Runtime, mailbox: str, folder, batch, **kw):
    """``load_batch`` as a task run when there is something to load; a page without items or
    deletions (every folder of a no-change poll) only commits its state and sync time, in a
    plain call: as a task run it was half of a poll's Prefect traffic (docs/performance.md)."""
    if batch is None and not kw.get("deletes"):
        return plain.load_batch(rt, mailbox, folder, batch, **kw)
    return load_batch(rt, mailbox, folder, batch, **kw)


class PrefectSteps:
    """The ``Steps`` of ``exchange_sync.pipeline.mailbox`` as Prefect task runs."""

    extract_page = staticmethod(extract_page)
    extract_refs = staticmethod(extract_refs)
    transform_batch = staticmethod(transform_batch)
    load_batch = staticmethod(load_or_commit)
