"""The pipeline's ``Steps`` table as Prefect tasks: one task run per step of a page; each works on a
whole page and passes paths, never mail.

``cache_policy=NONE``: the inputs hold live connections and the steps have side effects, so
caching by inputs would be both meaningless and wrong. Retries are not configured here: the
source retries transient Exchange errors itself with bounded, server-directed back-off, and a
failed load is safe to rerun as a whole because loads are idempotent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import task
from prefect.cache_policies import NONE

from exchange_sync.pipeline.runtime import Runtime
from exchange_sync.pipeline.steps import PLAIN_STEPS, ExtractedPage, FolderRef, LoadResult, Steps
from exchange_sync.pipeline.transform_worker import TransformedBatch
from exchange_sync.sources.models import FolderInfo
from exchange_sync.staging import folder_key

P = ParamSpec("P")
R = TypeVar("R")

# Staging folder key (``<staging>/<integration>/<mailbox>/<key>/<batch>``) -> folder path, filled by
# the extract tasks, so that a transform task run (which only gets the staged file) is named after
# the mailbox and folder it transforms, not ``transform-d9e``.
_FOLDER_PATHS: dict[str, str] = {}


def _remembering_folder(step: Callable[P, R]) -> Callable[P, R]:
    """An extract step that first notes its folder's path for ``transform_run_name``. ``wraps`` keeps the
    step's signature (the task run name template reads its parameters) and name (the task key)."""

    @functools.wraps(step)
    def extract(*args: P.args, **kwargs: P.kwargs) -> R:
        folder = kwargs["folder"] if "folder" in kwargs else args[2]
        assert isinstance(folder, FolderInfo)
        _FOLDER_PATHS[folder_key(folder.folder_id)] = folder.path
        return step(*args, **kwargs)

    return extract


def transform_run_name() -> str:
    from prefect.runtime import task_run

    path = str((task_run.parameters or {}).get("staged_path") or "")
    parts = [p for p in path.replace("\\", "/").split("/") if p]
    if len(parts) >= 3:
        mailbox, key = parts[-3], parts[-2]
        return f"transform {mailbox} {_FOLDER_PATHS.get(key, key)}"
    return "transform"


extract_page = task(name="extract", cache_policy=NONE, task_run_name="extract {mailbox} {folder.path}")(
    _remembering_folder(PLAIN_STEPS.extract_page))
extract_refs = task(name="extract-range", cache_policy=NONE, task_run_name="extract-range {mailbox} {folder.path}")(
    _remembering_folder(PLAIN_STEPS.extract_refs))
transform_batch = task(name="transform", cache_policy=NONE, task_run_name=transform_run_name)(
    PLAIN_STEPS.transform_batch)
load_batch = task(name="load", cache_policy=NONE, task_run_name="load {mailbox} {folder.path}")(PLAIN_STEPS.load_batch)


def load_or_commit(rt: Runtime, mailbox: str, folder: FolderRef, batch: TransformedBatch | None,
                   page: ExtractedPage | None, commit_state: bool) -> LoadResult:
    """``load_batch`` as a task run when there is something to load; a page without items or
    deletions (every folder of a no-change poll) only commits its state and sync time, in a
    plain call: as a task run it was half of a poll's Prefect traffic (docs/performance.md)."""
    step = load_batch if batch is not None or (page is not None and page.deletes) else PLAIN_STEPS.load_batch
    return step(rt, mailbox, folder, batch, page, commit_state)


PREFECT_STEPS = Steps(extract_page=extract_page, extract_refs=extract_refs, transform_batch=transform_batch,
                      load_batch=load_or_commit)
