"""The run report counts the comments that the cleaning safety net kept (string:Cleaning = fallback)."""

from __future__ import annotations

from datetime import datetime, timezone

from exchange_sync.pipeline.mailbox import FolderReport, MailboxReport, _add
from exchange_sync.pipeline.report import RunReport, render_markdown
from exchange_sync.pipeline.steps import ExtractedPage, LoadResult
from exchange_sync.store import SyncCounts
from exchange_sync.transform import email_to_comment


def test_fallbacks_are_counted_per_mailbox_and_in_the_run_report():
    mailbox = MailboxReport(mailbox="ap@x.example")
    folder = FolderReport(path="Inbox")
    _add(mailbox, folder, ExtractedPage(staged_path=None, items=3), LoadResult(SyncCounts(), 0, cleaning_fallbacks=2))
    _add(mailbox, folder, ExtractedPage(staged_path=None, items=1), LoadResult(SyncCounts(), 0))
    report = RunReport(integration="demo", mode="incremental", started_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
                       mailboxes=[mailbox])
    assert mailbox.row()["cleaning_fallbacks"] == 2
    assert report.to_dict()["cleaning_fallbacks"] == 2
    assert "2 comments kept their text through the cleaning safety net" in render_markdown(report)


def test_the_property_counted_is_the_one_the_transform_sets():
    raw = (b"From: a@b.example\r\nSubject: x\r\nMessage-ID: <f@x>\r\n\r\n--\r\nMaria Lopez\r\nHead of Operations\r\n")
    assert email_to_comment(raw).user_properties["string:Cleaning"] == "fallback"
