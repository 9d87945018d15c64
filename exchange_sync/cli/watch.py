"""`exchange-sync watch CONFIG`: real-time sync until SIGTERM/SIGINT (or --duration), docs/watch.md."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from typing import Annotated

import typer

from exchange_sync.cli import app
from exchange_sync.cli.common import (
    EXIT_FAILED,
    EXIT_SKIPPED,
    ConfigArg,
    JsonOpt,
    MailboxOpt,
    check_run,
    load_config,
)

DurationOpt = Annotated[float | None, typer.Option(
    "--duration", min=0, help="Stop after this many seconds (tests, benchmarks); default: until SIGTERM/SIGINT.")]


def _logging(debug: bool) -> None:
    """Mode changes, fallbacks and failures are log lines on stderr (the operator's record)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    for name in ("exchange_sync.watch", "exchange_sync.leases", "exchange_sync.pipeline"):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if debug else logging.INFO)
        logger.propagate = False
    logging.getLogger("exchangelib").setLevel(logging.WARNING)


def _print(summary, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({**summary.model_dump(mode="json"), "totals": summary.totals}))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"watch of {summary.integration} ({summary.stopped_by})"))
    cols = ("mailbox", "mode", "events", "syncs", "items", "new", "updated", "busy", "failures", "lag ms", "reason")
    for col in cols:
        table.add_column(col, justify="left" if col in ("mailbox", "mode", "reason") else "right")
    for m in summary.mailboxes:
        table.add_row(*(escape(str(v if v is not None else "")) for v in (
            m.mailbox, m.mode, m.events, m.syncs, m.items, m.new, m.updated, m.busy, m.failures, m.last_lag_ms,
            m.reason or m.last_error or "")))
    Console(width=None if sys.stdout.isatty() else 160, emoji=False).print(table)


@app.command("watch")
def watch_command(config: ConfigArg, duration: DurationOpt = None, mailbox: MailboxOpt = None, as_json: JsonOpt = False,
                  debug: Annotated[bool, typer.Option("--debug", help="Debug log lines.")] = False) -> None:
    """Sync in real time: EWS streaming (or pull) notifications, else polling; Graph delta polling.

    Runs until SIGTERM/SIGINT (syncs in flight end after their current page, exit 0) or --duration.

    Exit status: 0 stopped cleanly; 1 an integration-wide failure (one error: line); 2 bad command
    line or configuration; 3 some mailboxes were skipped (not found, access denied, disabled)."""
    from exchange_sync.watch import run_watch

    cfg = load_config(config)
    check_run(cfg, mailbox)
    _logging(debug)
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        logging.getLogger("exchange_sync.watch").info("watch: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        summary = run_watch(cfg, stop=stop, duration_s=duration, mailboxes=mailbox)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    _print(summary, as_json)
    if summary.error:
        typer.echo(f"error: {summary.error}", err=True)
        raise typer.Exit(EXIT_FAILED)
    raise typer.Exit(EXIT_SKIPPED if summary.skipped else 0)
