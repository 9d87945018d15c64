"""Syncing one mailbox: discover folders, then page through each folder's changes.

The loop is plain Python over a ``Steps`` object, so the same code runs with plain functions
(tests, replay) or with the Prefect task wrappers of ``tasks/`` (one task run per page step).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from exchange_sync.config import MailboxConfig
from exchange_sync.pipeline import steps as plain_steps
from exchange_sync.pipeline.runtime import Runtime
from exchange_sync.pipeline.steps import ExtractedPage, FolderRef, LoadResult, TransformedBatch
from exchange_sync.store import SyncCounts

log = logging.getLogger("exchange_sync.pipeline")

Mode = Literal["incremental", "backfill"]


class Steps(Protocol):
    def extract_page(self, rt: Runtime, mailbox: str, folder, sync_state: str | None, start) -> ExtractedPage: ...
    def extract_refs(self, rt: Runtime, mailbox: str, folder, refs: list) -> ExtractedPage: ...
    def transform_batch(self, rt: Runtime, staged_path: str) -> TransformedBatch: ...
    def load_batch(self, rt: Runtime, mailbox: str, folder: FolderRef, batch, **kw) -> LoadResult: ...


class PlainSteps:
    extract_page = staticmethod(plain_steps.extract_page)
    extract_refs = staticmethod(plain_steps.extract_refs)
    transform_batch = staticmethod(plain_steps.transform_batch)
    load_batch = staticmethod(plain_steps.load_batch)


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
    deletes: int = 0
    rejected: int = 0

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
    report.deletes += len(page.deletes)
    report.rejected += result.rejected
    folder_report.pages += 1
    folder_report.items += page.items
    folder_report.deletes += len(page.deletes)


def _load_page(rt: Runtime, steps: Steps, mailbox: str, ref: FolderRef, page: ExtractedPage, *, commit_state: bool):
    batch = steps.transform_batch(rt, page.staged_path) if page.staged_path else None
    return steps.load_batch(
        rt,
        mailbox,
        ref,
        batch,
        deletes=page.deletes,
        sync_state=page.sync_state,
        commit_state=commit_state,
        items_synced=page.items,
    )


def sync_folder_incremental(
    rt: Runtime, steps: Steps, mailbox: MailboxConfig, folder, report: MailboxReport, progress: ProgressFn | None
) -> FolderReport:
    from exchange_sync.source import InvalidSyncState

    ref = FolderRef(folder_id=folder.folder_id, path=folder.path)
    folder_report = FolderReport(path=folder.path)
    saved = rt.loader.checkpoints.get_folder_state(rt.config.name, mailbox.email, folder.folder_id)
    state = saved.sync_state if saved else None
    while True:
        try:
            page = steps.extract_page(rt, mailbox.email, folder, state, mailbox.start_timestamp)
        except InvalidSyncState:
            if state is None:
                raise
            # The server forgot our state (expired or corrupt): start the folder over. The store's
            # sync is idempotent and text is frozen, so re-reading the folder creates no duplicate
            # and bills nothing for comments it already holds.
            log.warning("sync state of %s/%s rejected by the server; resyncing the folder", mailbox.email, folder.path)
            folder_report.resynced = True
            state = None
            continue
        result = _load_page(rt, steps, mailbox.email, ref, page, commit_state=True)
        _add(report, folder_report, page, result)
        if progress:
            progress(mailbox.email, page.items)
        state = page.sync_state
        if page.last_page:
            return folder_report


def sync_folder_backfill(
    rt: Runtime,
    steps: Steps,
    mailbox: MailboxConfig,
    folder,
    report: MailboxReport,
    start: datetime | None,
    end: datetime | None,
    progress: ProgressFn | None,
) -> FolderReport:
    ref = FolderRef(folder_id=folder.folder_id, path=folder.path)
    folder_report = FolderReport(path=folder.path)
    session = rt.source.open_mailbox(mailbox.email)
    lower = start
    if mailbox.start_timestamp is not None and (lower is None or mailbox.start_timestamp > lower):
        lower = mailbox.start_timestamp  # a backfill never reaches before the mailbox's configured start
    for refs in session.find_range(folder, lower, end, page_size=rt.config.batch_size):
        page = steps.extract_refs(rt, mailbox.email, folder, refs)
        result = _load_page(rt, steps, mailbox.email, ref, page, commit_state=False)
        _add(report, folder_report, page, result)
        if progress:
            progress(mailbox.email, page.items)
    return folder_report


def sync_mailbox(
    rt: Runtime,
    mailbox: MailboxConfig,
    *,
    steps: Steps | None = None,
    mode: Mode = "incremental",
    start: datetime | None = None,
    end: datetime | None = None,
    progress: ProgressFn | None = None,
) -> MailboxReport:
    """Sync one mailbox. Mailbox-level failures are reported, not raised; bad credentials raise."""
    from exchange_sync.source import InvalidCredentials, MailboxAccessDenied, MailboxNotFound, SourceError

    steps = steps or PlainSteps()
    report = MailboxReport(mailbox=mailbox.email)
    try:
        session = rt.source.open_mailbox(mailbox.email)
        folders = session.mail_folders(mailbox.folder_allowlist, mailbox.folder_denylist)
        for folder in folders:
            if mode == "incremental":
                report.folders.append(sync_folder_incremental(rt, steps, mailbox, folder, report, progress))
            else:
                report.folders.append(sync_folder_backfill(rt, steps, mailbox, folder, report, start, end, progress))
    except InvalidCredentials:
        raise
    except (MailboxNotFound, MailboxAccessDenied) as exc:
        report.status, report.reason, report.error = "skipped", exc.reason, str(exc)
    except SourceError as exc:
        report.status, report.reason, report.error = "failed", exc.reason, str(exc)
    except Exception as exc:  # noqa: BLE001 - one mailbox's bug must not stop the others
        log.exception("mailbox %s failed", mailbox.email)
        report.status, report.reason, report.error = "failed", "unexpected_error", f"{type(exc).__name__}: {exc}"
    detail = f"{report.reason}: {report.error}" if report.error else report.reason
    rt.state.set_mailbox_status(
        rt.config.name, mailbox.email, report.status, reason=detail, error_count_delta=int(report.status != "ok")
    )
    return report
