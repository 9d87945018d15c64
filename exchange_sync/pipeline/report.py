"""Run reports: what a run did, per mailbox, as table rows, markdown and a JSON-able dict."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from exchange_sync.pipeline.mailbox import MailboxReport
from exchange_sync.store import SyncCounts


@dataclass
class RunReport:
    integration: str
    mode: str
    started_at: datetime
    finished_at: datetime | None = None
    mailboxes: list[MailboxReport] = field(default_factory=list)

    @property
    def failed(self) -> list[MailboxReport]:
        return [m for m in self.mailboxes if m.status == "failed"]

    @property
    def skipped(self) -> list[MailboxReport]:
        return [m for m in self.mailboxes if m.status == "skipped"]

    @property
    def totals(self) -> SyncCounts:
        total = SyncCounts()
        for m in self.mailboxes:
            total = total + m.counts
        return total

    def rows(self) -> list[dict]:
        return [m.row() for m in self.mailboxes]

    def to_dict(self) -> dict:
        return {
            "integration": self.integration,
            "mode": self.mode,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "totals": {**self.totals.model_dump(), "units": self.totals.units},
            "items": sum(m.items for m in self.mailboxes),
            "rejected": sum(m.rejected for m in self.mailboxes),
            "mailboxes": [m.row() for m in self.mailboxes],
        }


def render_markdown(report: RunReport) -> str:
    totals = report.totals
    seconds = (report.finished_at - report.started_at).total_seconds() if report.finished_at else 0.0
    lines = [
        f"# {report.mode} run of `{report.integration}`",
        "",
        f"{len(report.mailboxes)} mailboxes, {sum(m.items for m in report.mailboxes)} items in {seconds:.1f} s: "
        f"**{totals.new} new**, {totals.updated_properties_only} updated (properties), "
        f"{totals.updated_text_changed} updated (text), {totals.unchanged} unchanged, **{totals.units} units**.",
        "",
        "| mailbox | status | folders | items | new | updated | text changed | unchanged | units | deleted | rejected | reason |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in report.mailboxes:
        r = m.row()
        lines.append(
            f"| {r['mailbox']} | {r['status']} | {r['folders']} | {r['items']} | {r['new']} | {r['updated']} | "
            f"{r['text_changed']} | {r['unchanged']} | {r['units']} | {r['deleted']} | {r['rejected']} | "
            f"{(r['reason'] + ': ' + r['errors']).strip(': ').replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"
