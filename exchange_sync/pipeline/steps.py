"""The pipeline's steps: extract -> stage -> transform -> load, and ``Steps``, their one table.

Each step takes and returns small values (ids, paths, counts), never a batch of mail in memory,
so the Prefect task wrappers in ``tasks/`` can run them without Prefect holding results.
``PLAIN_STEPS`` runs them as plain calls (tests, replay, ``watch``); ``tasks.pipeline.PREFECT_STEPS``
is the same table with each entry made a Prefect task.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from exchange_sync.comment import ApiComment
from exchange_sync.pipeline.crashpoints import crashpoint
from exchange_sync.pipeline.filters import ParticipantFilter
from exchange_sync.pipeline.runtime import Runtime
from exchange_sync.pipeline.transform_worker import TransformedBatch
from exchange_sync.sources import MailboxSession
from exchange_sync.sources.models import FolderInfo, ItemRef, size_chunks
from exchange_sync.store import Deletion, FolderState, Rejected, SyncCounts, UsageKey


@dataclass(frozen=True)
class FolderRef:
    """The folder a batch is loaded for: all the load needs, and all a replay knows (from staging)."""

    folder_id: str
    path: str


@dataclass
class ExtractedPage:
    staged_path: str | None  # None when the page held nothing to load
    items: int = 0
    skipped_before_start: int = 0
    missing: int = 0  # vanished between SyncFolderItems and GetItem
    filtered: int = 0  # dropped by the mailbox's participant filters before their MIME was fetched
    deletes: list[str] = field(default_factory=list)
    sync_state: str | None = None
    last_page: bool = True


@dataclass
class LoadResult:
    counts: SyncCounts
    rejected: int
    cleaning_fallbacks: int = 0  # comments the transform's safety net kept (string:Cleaning = fallback)


# A page is fetched and staged in groups of at most this many bytes of reported item size (one Parquet
# row group each), so a page of large mail never sits in memory whole: 512 changes of 25 MB would be
# 12.8 GB. Typical mail (~45 KB mean) fits a whole page in one group.
STAGE_GROUP_BYTES = 32 * 1024 * 1024
STAGE_GROUP_ITEMS = 512


def _reject(rt: Runtime, mailbox: str, folder: FolderInfo, refs_by_id: Mapping[str, ItemRef], failed: dict[str, str],
            why: str) -> None:
    """Record items the source could not serve as rejections, with the server's reason."""
    if not failed:
        return
    rt.state.record_rejections(
        rt.config.name,
        [
            Rejected(mailbox=mailbox, folder_path=folder.path, item_id=item_id,
                     message_id=ref.internet_message_id if (ref := refs_by_id.get(item_id)) else None,
                     reason=f"{why}: {reason}")
            for item_id, reason in failed.items()
        ],
    )


def _stage_fetched(rt: Runtime, mailbox: str, refs: list[ItemRef], session: MailboxSession,
                   folder: FolderInfo) -> tuple[str | None, int, int]:
    if not refs:
        return None, 0, 0
    missing = 0
    by_id = {r.item_id: r for r in refs}
    with rt.staging.open_batch(rt.config.name, mailbox, folder.folder_id) as staged:
        for group in size_chunks(refs, STAGE_GROUP_ITEMS, STAGE_GROUP_BYTES):
            result = session.fetch(group, folder)
            missing += len(result.missing_ids)
            # Items Exchange could not serve (e.g. ErrorMimeContentConversionFailed): recorded with the
            # server's reason so they are counted and visible, never silently dropped.
            _reject(rt, mailbox, folder, by_id, result.failed, "exchange could not return the item")
            if result.table.num_rows:
                staged.write(result.table)
            del result
    if not staged.rows:
        return None, 0, missing
    crashpoint("after_stage")
    return staged.path, staged.rows, missing


def participant_filter(rt: Runtime, mailbox: str) -> ParticipantFilter | None:
    """The ``ParticipantFilter`` of ``mailbox`` in the run's configuration (None: no filter, no cost)."""
    for mb in rt.config.mailboxes:
        if mb.email == mailbox:
            return ParticipantFilter.of(mb)
    return None


def store_attachments(rt: Runtime, mailbox: str, staged_path: str, comments: list[ApiComment]) -> None:
    """Attachment content (``mailboxes[].attachments.sync``): the bytes from the staged MIME into the
    content-addressed store before the comments are loaded, so a loaded reference always has its file.
    A mailbox without the option costs nothing and its comments are left as they are."""
    from exchange_sync.attachments import AttachmentPolicy, AttachmentStore, attachments_url
    from exchange_sync.attachments.load import attach_content

    policy = next((AttachmentPolicy.of(mb.attachments) for mb in rt.config.mailboxes if mb.email == mailbox), None)
    if policy is None:
        return
    attach_content(rt.staging, staged_path, comments, policy, AttachmentStore(attachments_url(rt.config.staging.url)))


def open_session(rt: Runtime, mailbox: str) -> MailboxSession:
    """The source's session of ``mailbox`` (told when the mailbox has a participant filter)."""
    return rt.source.open_mailbox(mailbox, with_participants=participant_filter(rt, mailbox) is not None)


def _apply_filter(rt: Runtime, mailbox: str, refs: list[ItemRef], session: MailboxSession,
                  folder: FolderInfo) -> tuple[list[ItemRef], int, int]:
    """(refs to fetch, filtered, vanished): the participant filter applied before any MIME is fetched.
    Items whose participants Exchange could not return are rejections (never loaded unfiltered)."""
    flt = participant_filter(rt, mailbox)
    if flt is None or not refs:
        return refs, 0, 0
    found = session.participants(refs)
    _reject(rt, mailbox, folder, {r.item_id: r for r in refs}, found.failed,
            "exchange could not return the item's participants")
    kept = [r for r in refs if r.item_id in found.by_id and flt.keeps(found.by_id[r.item_id])]
    filtered = sum(1 for r in refs if r.item_id in found.by_id) - len(kept)
    return kept, filtered, len(found.missing_ids)


def extract_page(rt: Runtime, mailbox: str, folder: FolderInfo, sync_state: str | None,
                 start: datetime | None) -> ExtractedPage:
    """One SyncFolderItems page (at most ``batch_size`` changes), fetched and staged as one Parquet file."""
    session = open_session(rt, mailbox)
    page = next(iter(session.sync_pages(folder, sync_state, page_size=rt.config.batch_size)))
    crashpoint("after_sync_page")
    in_range = [r for r in page.changes if start is None or r.datetime_received is None or r.datetime_received >= start]
    wanted, filtered, vanished = _apply_filter(rt, mailbox, in_range, session, folder)
    if wanted:
        # Start the transform workers (~0.7 s of imports and model loading) while this page is
        # fetched, not when it is handed over; a run with nothing to fetch never starts them.
        rt.transformer  # noqa: B018
    path, items, missing = _stage_fetched(rt, mailbox, wanted, session, folder)
    return ExtractedPage(
        staged_path=path,
        items=items,
        skipped_before_start=len(page.changes) - len(in_range),
        missing=missing + vanished,
        filtered=filtered,
        deletes=list(page.deletes),
        sync_state=page.sync_state,
        last_page=page.last_page,
    )


def extract_refs(rt: Runtime, mailbox: str, folder: FolderInfo, refs: list[ItemRef]) -> ExtractedPage:
    """Backfill: fetch and stage a page of FindItem results (never touches the sync state)."""
    session = open_session(rt, mailbox)
    wanted, filtered, vanished = _apply_filter(rt, mailbox, refs, session, folder)
    path, items, missing = _stage_fetched(rt, mailbox, wanted, session, folder)
    return ExtractedPage(staged_path=path, items=items, missing=missing + vanished, filtered=filtered)


def transform_batch(rt: Runtime, staged_path: str) -> TransformedBatch:
    """Staged Parquet -> comments (written next to the batch as Parquet of API JSON) + rejections.

    Runs in the run's transform pool (``pipeline.transformer``) when it has workers."""
    batch = rt.transformer.transform(rt.staging, staged_path)
    crashpoint("after_transform")
    return batch


def read_comments(rt: Runtime, comments_path: str) -> list[ApiComment]:
    """A transformed batch's comments in API form (validated by the transform that wrote them)."""
    table = rt.staging.read_table(comments_path)
    return [json.loads(text) for text in table.column("comment").to_pylist()]


def load_batch(rt: Runtime, mailbox: str, folder: FolderRef, batch: TransformedBatch | None,
               page: ExtractedPage | None, commit_state: bool) -> LoadResult:
    """Load a transformed batch with its page's deletions and, when ``commit_state`` (incremental mode),
    commit the folder's new sync state (the page's) with it. ``page`` None: a batch without a page
    (replay), which commits nothing."""
    comments = read_comments(rt, batch.comments_path) if batch and batch.comments_path else []
    now = datetime.now(timezone.utc)
    folder_state = None
    if commit_state and page is not None:
        previous = rt.checkpoints.get_folder_state(rt.config.name, mailbox, folder.folder_id)
        folder_state = FolderState(
            integration=rt.config.name,
            mailbox=mailbox,
            folder_id=folder.folder_id,
            folder_path=folder.path,
            sync_state=page.sync_state,
            items_synced=(previous.items_synced if previous else 0) + page.items,
            last_synced_at=now,
            last_error=None,
        )
    if batch and batch.rejections:
        rt.state.record_rejections(rt.config.name, [Rejected(**asdict(r)) for r in batch.rejections])
    if page is not None and page.deletes:
        rt.state.record_deletions(
            rt.config.name, mailbox,
            [Deletion(folder_id=folder.folder_id, item_id=i, deleted_at=now) for i in page.deletes],
        )
    crashpoint("before_load")
    staged = batch.staged_path if batch and batch.comments_path else None
    if comments and staged:
        store_attachments(rt, mailbox, staged, comments)
    usage = UsageKey(integration=rt.config.name, mailbox=mailbox, day=now.date())
    counts = rt.destination.load(comments, folder_state=folder_state, usage=usage, staged_path=staged)
    crashpoint("after_load")
    fallbacks = sum(1 for c in comments if (c.get("user_properties") or {}).get("string:Cleaning") == "fallback")
    return LoadResult(counts=counts, rejected=len(batch.rejections) if batch else 0, cleaning_fallbacks=fallbacks)


@dataclass(frozen=True)
class Steps:
    """The one table of the pipeline's steps. ``sync_mailbox`` calls only these; ``PLAIN_STEPS`` are the
    functions above, ``tasks.pipeline.PREFECT_STEPS`` the same functions as Prefect tasks."""

    extract_page: Callable[[Runtime, str, FolderInfo, str | None, datetime | None], ExtractedPage]
    extract_refs: Callable[[Runtime, str, FolderInfo, list[ItemRef]], ExtractedPage]
    transform_batch: Callable[[Runtime, str], TransformedBatch]
    load_batch: Callable[[Runtime, str, FolderRef, TransformedBatch | None, ExtractedPage | None, bool], LoadResult]


PLAIN_STEPS = Steps(extract_page=extract_page, extract_refs=extract_refs, transform_batch=transform_batch,
                    load_batch=load_batch)
