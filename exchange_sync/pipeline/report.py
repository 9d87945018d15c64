"""Run reports: what a run did, per mailbox, as table rows, markdown and a JSON-able dict;
and the trend over days (``daily_trend``, ``render_trend``) that `exchange-sync report` shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from exchange_sync.pipeline.mailbox import MailboxReport
from exchange_sync.store import SyncCounts


@dataclass
class RunReport:
    integration: str
    mode: str
    started_at: datetime
    finished_at: datetime | None = None
    mailboxes: list[MailboxReport] = field(default_factory=list)
    # Things an operator must act on: a mailbox just disabled, the integration paused, ...
    notes: list[str] = field(default_factory=list)
    # The comments page showing this run's source (``comments_page_link``), when one is configured.
    page_link: str | None = None

    @property
    def disabled(self) -> list[MailboxReport]:
        return [m for m in self.mailboxes if m.status == "disabled"]

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
            # Left out by participant filters before any MIME was fetched (never billed).
            "filtered": sum(m.filtered for m in self.mailboxes),
            # Bodies the cleaning safety net kept (quote/signature cuts would have left nothing).
            "cleaning_fallbacks": sum(m.cleaning_fallbacks for m in self.mailboxes),
            "mailboxes": [m.row() for m in self.mailboxes],
            "notes": list(self.notes),
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
    filtered = sum(m.filtered for m in report.mailboxes)
    if filtered:
        lines.insert(3, f"{filtered} items left out by participant filters (not fetched, not billed).\n")
    fallbacks = sum(m.cleaning_fallbacks for m in report.mailboxes)
    if fallbacks:
        lines.insert(3, f"{fallbacks} comments kept their text through the cleaning safety net "
                        "(`string:Cleaning` = `fallback`: the quote/signature cuts would have left an empty body).\n")
    for i, note in enumerate(report.notes):
        lines.insert(3 + i, f"> **{note}**\n")
    if report.page_link:
        lines.insert(2, f"[Open the comments]({report.page_link}) on the comments page.\n")
    for m in report.mailboxes:
        r = m.row()
        lines.append(
            f"| {r['mailbox']} | {r['status']} | {r['folders']} | {r['items']} | {r['new']} | {r['updated']} | "
            f"{r['text_changed']} | {r['unchanged']} | {r['units']} | {r['deleted']} | {r['rejected']} | "
            f"{(r['reason'] + ': ' + r['errors']).strip(': ').replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


@dataclass
class DayTrend:
    day: str  # YYYY-MM-DD (UTC)
    runs: int = 0
    failed_runs: int = 0
    items: int = 0
    units: int = 0
    max_lag_s: float = 0.0  # the longest run of the day (see daily_trend)


def daily_trend(runs: list, usage_rows: list, days: int = 14, today=None) -> list[DayTrend]:
    """Items, units and lag per UTC day for the last ``days`` days (oldest first, empty days included).

    - items: emails extracted by the day's runs (run summaries);
    - units: the usage ledger's units (new + text changed) of the day;
    - lag: the longest run duration of the day. A mail that arrives just after a poll read its
      folder reaches the destination at most one schedule interval plus one run duration later, so
      with a fixed interval the run duration is the part of the freshness lag that grows with load.
    """
    from datetime import date, timedelta, timezone

    today = today or datetime.now(timezone.utc).date()
    out = {(today - timedelta(days=i)).isoformat(): DayTrend(day=(today - timedelta(days=i)).isoformat())
           for i in reversed(range(days))}
    for r in runs:
        key = r.started_at.astimezone(timezone.utc).date().isoformat()
        if key not in out:
            continue
        t = out[key]
        t.runs += 1
        t.failed_runs += int(r.status == "failed")
        t.items += int((r.summary or {}).get("items") or 0)
        if r.finished_at is not None:
            t.max_lag_s = max(t.max_lag_s, (r.finished_at - r.started_at).total_seconds())
    for u in usage_rows:
        key = u.day.isoformat() if isinstance(u.day, date) else str(u.day)
        if key in out:
            out[key].units += u.units
    return list(out.values())


def _bar(value: float, top: float, width: int) -> str:
    if top <= 0 or value <= 0:
        return ""
    cells = value / top * width
    return "█" * int(cells) + ("▌" if cells - int(cells) >= 0.5 else "") or "▏"


def render_trend(integration: str, trend: list[DayTrend], width: int = 30) -> str:
    """A terminal chart: one line per day, a bar per measure, scaled to the period's maximum."""
    top_items = max((t.items for t in trend), default=0)
    top_units = max((t.units for t in trend), default=0)
    top_lag = max((t.max_lag_s for t in trend), default=0.0)
    lines = [f"{integration}: per day (UTC) - items extracted, units billed, lag = longest run (s)", ""]
    lines.append(f"{'day':<10}  {'runs':>4} {'fail':>4}  {'items':>7} {'':<{width}}  {'units':>6} {'':<{width}}  "
                 f"{'lag s':>7} {'':<{width}}")
    for t in trend:
        lines.append(
            f"{t.day:<10}  {t.runs:>4} {t.failed_runs:>4}  {t.items:>7} {_bar(t.items, top_items, width):<{width}}  "
            f"{t.units:>6} {_bar(t.units, top_units, width):<{width}}  {t.max_lag_s:>7.1f} "
            f"{_bar(t.max_lag_s, top_lag, width):<{width}}"
        )
    total_runs = sum(t.runs for t in trend)
    lines += ["", f"total: {total_runs} runs, {sum(t.items for t in trend)} items, "
                  f"{sum(t.units for t in trend)} units; longest run {top_lag:.1f} s"]
    return "\n".join(lines)


def comments_page_link(config: Any) -> str | None:
    """The comments page of the integration's source (``comments_page_url`` + ``/?source=...``), or
    None: no page configured, or a bucket destination (raw emails, which the page does not list)."""
    base = getattr(config, "comments_page_url", None)
    dest = config.destination
    if not base or dest.kind not in ("store", "reinfer"):
        return None
    return f"{base.rstrip('/')}/?{urlencode({'source': f'{dest.project}/{dest.source}'})}"
