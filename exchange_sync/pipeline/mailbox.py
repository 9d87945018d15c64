"""Syncing one mailbox: discover folders, then page through each folder's changes.

The loop is plain Python over a ``steps.Steps`` table, so the same code runs with plain functions
(``PLAIN_STEPS``: tests, ``watch``) or with the Prefect task wrappers of ``tasks/`` (one task run per page step).
"""

from __future__ import annotations

import contextvars
import functools
import logging
import queue
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal

from exchange_sync.config import MailboxConfig
from exchange_sync.pipeline import progress as run_progress
from exchange_sync.pipeline.outcome import failure_reason
from exchange_sync.pipeline.runtime import Runtime
from exchange_sync.pipeline.steps import PLAIN_STEPS, ExtractedPage, FolderRef, LoadResult, Steps, open_session
from exchange_sync.pipeline.transform_worker import TransformedBatch
from exchange_sync.sources.models import FolderInfo
from exchange_sync.store import SyncCounts

log = logging.getLogger("exchange_sync.pipeline")

# Pages extracted (and transformed) ahead of the one being loaded, per mailbox. Each page in flight is
# a staged file, not memory. 4 keeps extraction going while the transform workers start (~1 s on
# 2 CPUs) and while a large page is transformed; 2 left the server idle then (docs/performance.md).
PREFETCH_PAGES = 4

Mode = Literal["incremental", "backfill"]


@dataclass
class FolderReport:
    path: str
    pages: int = 0
    items: int = 0
    deletes: int = 0
    resynced: bool = False


@dataclass
class MailboxReport:
    mailbox: str
    status: Literal["ok", "failed", "skipped"] = "ok"
    reason: str | None = None  # mailbox_not_found, mailbox_access_denied, invalid_exchange_credentials, ...
    error: str | None = None
    folders: list[FolderReport] = field(default_factory=list)
    counts: SyncCounts = field(default_factory=SyncCounts)
    items: int = 0
    skipped_before_start: int = 0
    missing: int = 0
    filtered: int = 0  # left out by the mailbox's participant filters (never fetched, never billed)
    deletes: int = 0
    rejected: int = 0
    cleaning_fallbacks: int = 0  # comments whose body the transform's safety net kept (string:Cleaning)
    # An unexpected_error's exception carried an integration-wide reason (outcome.failure_reason), e.g. the
    # destination failing through every retry: the run fails with it instead of blaming the mailbox.
    cause_reason: str | None = None

    def row(self) -> dict:
        return {
            "mailbox": self.mailbox,
            "status": self.status,
            "reason": self.reason or "",
            "folders": len(self.folders),
            "items": self.items,
            "new": self.counts.new,
            "updated": self.counts.updated_properties_only,
            "text_changed": self.counts.updated_text_changed,
            "unchanged": self.counts.unchanged,
            "units": self.counts.units,
            "deleted": self.deletes,
            "rejected": self.rejected,
            "filtered": self.filtered,
            "cleaning_fallbacks": self.cleaning_fallbacks,
            "errors": self.error or "",
        }

    def to_dict(self) -> dict:
        data = asdict(self)
        data["counts"] = self.counts.model_dump()
        return data


ProgressFn = Callable[[str, int], None]  # (mailbox, items just processed)


def _add(report: MailboxReport, folder_report: FolderReport, page: ExtractedPage, result: LoadResult) -> None:
    report.counts = report.counts + result.counts
    report.items += page.items
    report.skipped_before_start += page.skipped_before_start
    report.missing += page.missing
    report.filtered += page.filtered
    report.deletes += len(page.deletes)
    report.rejected += result.rejected
    report.cleaning_fallbacks += result.cleaning_fallbacks
    folder_report.pages += 1
    folder_report.items += page.items
    folder_report.deletes += len(page.deletes)


class _Prepared:
    """One item of a mailbox pipeline's queue: a page extracted in the background and the future of
    its transform; or the end of a folder's pages (``page`` None); or the error that stopped the
    extraction."""

    __slots__ = ("folder", "page", "batch", "error")

    def __init__(self, folder: FolderInfo, page: ExtractedPage | None = None, batch: Future | None = None,
                 error: BaseException | None = None) -> None:
        self.folder, self.page, self.batch, self.error = folder, page, batch, error


PageSource = Callable[[FolderInfo], Iterator[ExtractedPage]]  # folder -> its pages, extracted one by one


class _MailboxPipeline:
    """Extract -> transform -> load of a mailbox's folders, overlapped, loaded strictly in order.

    One thread extracts: the folders one after the other, each folder's pages one after the other
    (each SyncFolderItems needs the state the previous page returned), at most ``depth`` pages ahead
    of the load *across folder boundaries*: a folder's last pages are transformed and loaded while
    the next folder's first pages are fetched (a pipeline per folder drained at every folder's end,
    leaving a core idle; docs/performance.md). Each staged page is handed to a transform
    thread (which waits on the run's transform process pool) as soon as it is staged. The calling
    thread loads pages in extraction order; the load of page N commits page N's sync state (in the
    same transaction as its comments for the embedded store) and nothing else commits a state, so a
    crash anywhere leaves every folder's watermark at its last *loaded* page: pages extracted or
    transformed ahead are extracted again by the next run (their staged files are orphans).

    An extraction error stops the extraction and is raised by the iterator where it happened in the
    order, i.e. after every page extracted before it was loaded (the caller can resume from there).
    """

    def __init__(self, folders: list[FolderInfo], pages: PageSource, mailbox: str, steps: Steps, rt: Runtime,
                 depth: int) -> None:
        self.rt, self.steps, self.pages = rt, steps, pages
        self.depth = max(1, depth)
        self.queue: queue.Queue[_Prepared] = queue.Queue()
        self.slots = threading.Semaphore(self.depth)
        self.stopping = threading.Event()
        self.transforms = ThreadPoolExecutor(max_workers=self.depth, thread_name_prefix="transform")
        self.remaining = len(folders)
        self.thread = threading.Thread(target=contextvars.copy_context().run, args=(self._extract_all, list(folders)),
                                       name=f"extract-{mailbox}", daemon=True)
        self.thread.start()

    def _extract_all(self, folders: list[FolderInfo]) -> None:
        for folder in folders:
            try:
                pages = self.pages(folder)
                while True:
                    self.slots.acquire()
                    if self.stopping.is_set():
                        return
                    page = next(pages, None)
                    if page is None:
                        self.slots.release()  # the end marker takes no slot
                        break
                    batch = None
                    if page.staged_path:
                        batch = self.transforms.submit(contextvars.copy_context().run, self.steps.transform_batch,
                                                       self.rt, page.staged_path)
                    self.queue.put(_Prepared(folder, page, batch))
                self.queue.put(_Prepared(folder))
            except BaseException as exc:  # noqa: BLE001 - handed to the loading thread, raised there
                self.queue.put(_Prepared(folder, error=exc))
                return

    def __iter__(self) -> Iterator[tuple[FolderInfo, ExtractedPage | None, TransformedBatch | None]]:
        """(folder, page, transformed batch) in extraction order; (folder, None, None) ends a folder."""
        while self.remaining:
            item = self.queue.get()
            if item.error is not None:
                raise item.error
            if item.page is None:
                self.remaining -= 1
                yield item.folder, None, None
                continue
            batch = item.batch.result() if item.batch is not None else None
            yield item.folder, item.page, batch
            self.slots.release()

    def close(self) -> None:
        """Stop extracting ahead and wait for the background work (nothing of it is committed)."""
        self.stopping.set()
        self.slots.release()
        self.thread.join()
        self.transforms.shutdown(wait=True)


def _no_progress(page: ExtractedPage, state: str | None) -> bool:
    # A server that neither advances the state nor ends the range would loop us forever.
    return page.sync_state == state and not page.items and not page.deletes and not page.skipped_before_start \
        and not page.missing and not page.filtered


def _incremental_pages(rt: Runtime, steps: Steps, mailbox: MailboxConfig, fresh: set[str],
                       folder: FolderInfo) -> Iterator[ExtractedPage]:
    """A folder's changes since its committed watermark (from none for a folder in ``fresh``)."""
    saved = None if folder.folder_id in fresh else rt.checkpoints.get_folder_state(
        rt.config.name, mailbox.email, folder.folder_id)
    state = saved.sync_state if saved else None
    while True:
        page = steps.extract_page(rt, mailbox.email, folder, state, mailbox.start_timestamp)
        if not page.last_page and _no_progress(page, state):
            page.last_page = True
        yield page
        if page.last_page:
            return
        state = page.sync_state


def _backfill_pages(rt: Runtime, steps: Steps, mailbox: MailboxConfig, start: datetime | None, end: datetime | None,
                    folder: FolderInfo) -> Iterator[ExtractedPage]:
    """A folder's items received in [start, end) (FindItem pages; never reads or moves a watermark)."""
    session = open_session(rt, mailbox.email)
    lower = start
    if mailbox.start_timestamp is not None and (lower is None or mailbox.start_timestamp > lower):
        lower = mailbox.start_timestamp  # a backfill never reaches before the mailbox's configured start
    for refs in session.find_range(folder, lower, end, page_size=rt.config.batch_size):
        yield steps.extract_refs(rt, mailbox.email, folder, refs)


def _report_progress(_mailbox: str, items: int) -> None:
    run_progress.advance(items)


def _estimate_items(rt: Runtime, mailbox: str, folders: list[FolderInfo]) -> int:
    """Items still to sync, for a progress bar's ETA: folder sizes minus what was synced before
    (an estimate: moves, deletes and start_timestamp make it approximate, never wrong data)."""
    total = 0
    for folder in folders:
        count = folder.total_count or 0
        if count:
            state = rt.checkpoints.get_folder_state(rt.config.name, mailbox, folder.folder_id)
            total += max(count - (state.items_synced if state else 0), 0)
    return total


def sync_mailbox(
    rt: Runtime,
    mailbox: MailboxConfig,
    *,
    steps: Steps | None = None,
    mode: Mode = "incremental",
    start: datetime | None = None,
    end: datetime | None = None,
    progress: ProgressFn | None = None,
    folders: Collection[str] | None = None,
    lease_wait_s: float | None = None,
    purpose: str = "run",
    stop: threading.Event | None = None,
) -> MailboxReport:
    """Sync one mailbox. Mailbox-level failures are reported, not raised; bad credentials raise.

    ``folders``: only these folder ids (of the mailbox's selected folders; ``exchange-sync watch``).
    An incremental sync holds the mailbox's lease (``store.leases``): when another writer (a watch
    process, another run) holds it longer than ``lease_wait_s`` (default ``watch.lease_wait_s``) the
    mailbox is skipped with reason ``busy`` and its status left as it was. ``stop`` set: the sync ends
    after the page being loaded (its watermark committed), as on SIGTERM of ``exchange-sync watch``."""
    if mode != "incremental":  # a backfill commits no watermark: it cannot race one
        return _sync_mailbox(rt, mailbox, steps=steps, mode=mode, start=start, end=end, progress=progress,
                             folders=folders)
    from exchange_sync.store.leases import LeaseBusy, hold_mailbox

    watch = rt.config.watch
    try:
        with hold_mailbox(rt.state, rt.config.name, mailbox.email, purpose=purpose, ttl_s=watch.lease_ttl_s,
                          wait_s=watch.lease_wait_s if lease_wait_s is None else lease_wait_s):
            return _sync_mailbox(rt, mailbox, steps=steps, mode=mode, start=start, end=end, progress=progress,
                                 folders=folders, stop=stop)
    except LeaseBusy as exc:
        log.info("%s", exc)
        return MailboxReport(mailbox=mailbox.email, status="skipped", reason=exc.reason, error=str(exc))


def _sync_mailbox(rt: Runtime, mailbox: MailboxConfig, *, steps: Steps | None, mode: Mode, start: datetime | None,
                  end: datetime | None, progress: ProgressFn | None, folders: Collection[str] | None,
                  stop: threading.Event | None = None) -> MailboxReport:
    from exchange_sync.sources import (FolderNotFound, InvalidCredentials, InvalidSyncState, MailboxAccessDenied, MailboxNotFound, SourceError)
    from exchange_sync.sources.folders import select_mail_folders

    steps = steps or PLAIN_STEPS
    progress = progress or _report_progress
    report = MailboxReport(mailbox=mailbox.email)
    try:
        session = rt.source.open_mailbox(mailbox.email)
        cache = rt.folder_cache
        every, cached = cache.folders(session)
        todo = select_mail_folders(every, mailbox.folder_allowlist, list(mailbox.folder_denylist))
        if folders is not None:
            todo = [f for f in todo if f.folder_id in folders]
        if mode == "incremental":
            run_progress.expect(_estimate_items(rt, mailbox.email, todo))
        done: set[str] = set()
        reports: dict[str, FolderReport] = {}
        fresh: set[str] = set()  # folders to sync from no watermark (the server rejected theirs)
        depth = PREFETCH_PAGES
        while todo:
            if mode == "incremental":
                pages: PageSource = functools.partial(_incremental_pages, rt, steps, mailbox, set(fresh))
            else:
                pages = functools.partial(_backfill_pages, rt, steps, mailbox, start, end)
            pipeline = _MailboxPipeline(todo, pages, mailbox.email, steps, rt, depth)
            try:
                for folder, page, batch in pipeline:
                    folder_report = reports.setdefault(folder.folder_id, FolderReport(path=folder.path))
                    if page is None:  # every page of the folder is loaded
                        assert todo[0].folder_id == folder.folder_id
                        todo.pop(0)
                        done.add(folder.folder_id)
                        report.folders.append(folder_report)
                        continue
                    result = steps.load_batch(rt, mailbox.email, FolderRef(folder_id=folder.folder_id, path=folder.path),
                                              batch, page, mode == "incremental")
                    fresh.discard(folder.folder_id)
                    _add(report, folder_report, page, result)
                    progress(mailbox.email, page.items)
                    if stop is not None and stop.is_set():
                        todo = []  # this page is committed; the next sync resumes from its watermark
                        break
            except InvalidSyncState:
                # Raised after every page before it was loaded, so the failing folder is todo[0] and
                # its committed watermark is the state that was sent.
                folder = todo[0]
                sent = rt.checkpoints.get_folder_state(rt.config.name, mailbox.email, folder.folder_id)
                if folder.folder_id in fresh or sent is None or sent.sync_state is None:
                    raise
                # The server forgot our state (expired or corrupt): start the folder over. The store's
                # sync is idempotent and text is frozen, so re-reading the folder creates no duplicate
                # and bills nothing for comments it already holds.
                log.warning("sync state of %s/%s rejected by the server; resyncing the folder", mailbox.email, folder.path)
                reports.setdefault(folder.folder_id, FolderReport(path=folder.path)).resynced = True
                fresh.add(folder.folder_id)
            except FolderNotFound:
                # Deleted (or moved out of reach) since the folder list was made: rediscover, then go on
                # with the folders of the fresh list not synced yet. Gone from the fresh list = skipped;
                # still listed = a real error. Folders before it in the list are done (loaded in order).
                folder = todo[0]
                every = cache.discover(session)
                if cached is False and any(f.folder_id == folder.folder_id for f in every):
                    raise
                cached = False
                if any(f.folder_id == folder.folder_id for f in every):
                    todo = [folder]
                else:
                    log.info("folder %s of %s no longer exists; skipped", folder.path, mailbox.email)
                    todo = []
                fresh_list = select_mail_folders(every, mailbox.folder_allowlist, list(mailbox.folder_denylist))
                todo += [f for f in fresh_list if f.folder_id not in done and f.folder_id != folder.folder_id
                         and (folders is None or f.folder_id in folders)]
            finally:
                pipeline.close()
    except InvalidCredentials:
        raise
    except (MailboxNotFound, MailboxAccessDenied) as exc:
        report.status, report.reason, report.error = "skipped", exc.reason, str(exc)
    except SourceError as exc:
        report.status, report.reason, report.error = "failed", exc.reason, str(exc)
    except Exception as exc:  # noqa: BLE001 - one mailbox's bug must not stop the others
        log.exception("mailbox %s failed", mailbox.email)
        report.status, report.reason, report.error = "failed", "unexpected_error", f"{type(exc).__name__}: {exc}"
        report.cause_reason = failure_reason(exc)
    detail = f"{report.reason}: {report.error}" if report.error else report.reason
    rt.state.set_mailbox_status(
        rt.config.name, mailbox.email, report.status, reason=detail, error_count_delta=int(report.status != "ok")
    )
    return report
