"""What the commands share: argument types, exit codes, loading a configuration, one-line state
errors, running the sync flow in this process and printing its report.

Public for the command modules (``cli/*.py``) and ``exchange_sync.demo``; importing it registers no
command and imports neither Prefect nor the flows (``run_flow`` imports them when called).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigArg = Annotated[Path, typer.Argument(
    help="Integration configuration (YAML), or an integration name (./deployments/*.yaml or its Prefect deployment).",
    show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
MailboxOpt = Annotated[Optional[list[str]], typer.Option("--mailbox", "-m", help="Only this mailbox (repeatable).")]

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_SKIPPED = 3


DebugOpt = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks and Prefect's full console log.")]


def load_config(path: Path):
    """A ``NAME|CONFIG`` argument as a configuration; an invalid one is ``error: ...`` and exit 2."""
    from exchange_sync.config import ConfigError
    from exchange_sync.deploy.resolve import resolve

    try:
        return resolve(str(path))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None


def check_run(cfg, mailboxes: list[str] | None) -> None:
    """What would fail the run at once, checked before any Prefect server or flow starts (exit 2)."""
    from exchange_sync.config import ConfigError, check_runnable

    if mailboxes:
        known = {m.email for m in cfg.mailboxes}
        unknown = sorted({m.strip().lower() for m in mailboxes} - known)
        if unknown:
            typer.echo(f"error: --mailbox: not in the configuration of {cfg.name}: {', '.join(unknown)} "
                       f"(configured: {', '.join(sorted(known))})", err=True)
            raise typer.Exit(EXIT_CONFIG)
    try:
        check_runnable(cfg)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None


@contextmanager
def state_errors() -> Iterator[None]:
    """An unreachable state or store database is one line and exit status 1, never a traceback."""
    from exchange_sync.store.engine import StateUnavailable

    try:
        yield
    except StateUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None


def _quiet_console_tracebacks() -> None:
    """Prefect's console handler prints each failure with its traceback (flow, task and engine
    loggers: "Encountered exception during execution" + traceback) before our ``error:`` line, which
    says the same. On the console such records are dropped (other records lose any traceback); the
    run log in the Prefect API keeps them in full (its handler sees the original record)."""
    import copy
    import logging

    try:
        from prefect.logging.handlers import PrefectConsoleHandler
    except ImportError:  # pragma: no cover
        return
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not getattr(handler, "_exsync_quiet", False):
                original = handler.emit

                def emit(record: logging.LogRecord, _original=original) -> None:
                    if record.exc_info and record.name.startswith("prefect"):
                        return  # a failure report: the error: line says it
                    if record.exc_info or record.exc_text or record.stack_info:
                        record = copy.copy(record)
                        record.exc_info = record.exc_text = record.stack_info = None
                    _original(record)

                handler.emit = emit  # type: ignore[method-assign]
                handler._exsync_quiet = True  # type: ignore[attr-defined]


def print_report(summary: dict, as_json: bool) -> None:
    """A run's summary (``RunReport.to_dict``) as JSON, or as a table with its notes and totals."""
    if as_json:
        typer.echo(json.dumps(summary, default=str))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"{summary['mode']} run of {summary['integration']}"))
    for col in ("mailbox", "status", "folders", "items", "new", "updated", "text_changed", "unchanged", "units",
                "deleted", "rejected", "reason"):
        table.add_column(col, justify="right" if col not in ("mailbox", "status", "reason") else "left")
    for row in summary["mailboxes"]:
        # Server strings (error texts, names) are text, never rich markup (a "[link=...]" in a folder
        # name or an error message would become a clickable terminal link).
        table.add_row(*(escape(str(row[c])) for c in ("mailbox", "status", "folders", "items", "new", "updated",
                                                      "text_changed", "unchanged", "units", "deleted", "rejected")),
                      escape((row["reason"] + (": " + row["errors"] if row["errors"] else "")).strip()))
    # Not a terminal (a pipe, a log file): don't squeeze the table into 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)
    console.print(table)
    t = summary["totals"]
    for note in summary.get("notes") or []:
        console.print(escape(f"note: {note}"), soft_wrap=True)
    console.print(f"total: {t['new']} new, {t['updated_properties_only']} updated, {t['updated_text_changed']} "
                  f"text changed, {t['unchanged']} unchanged, {t['units']} units")


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[None]:
    """Items/s and ETA on stderr while a run is in progress (terminals only; logs stay clean)."""
    from exchange_sync.pipeline import progress as run_progress

    if not enabled:
        yield
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.console import Console

    bar = Progress(TextColumn("syncing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task("sync", total=None, rate="")

    class Sink:
        def expect(self, items: int) -> None:
            current = bar.tasks[0].total or 0
            bar.update(task, total=current + items)

        def advance(self, items: int) -> None:
            bar.advance(task, items)
            speed = bar.tasks[0].speed
            bar.update(task, rate=f"{speed:,.0f} items/s" if speed else "")

    run_progress.install(Sink())
    try:
        with bar:
            yield
    finally:
        run_progress.install(None)


def run_flow(config, *, mode: str = "incremental", start=None, end=None, mailboxes=None,
             debug: bool = False) -> tuple[dict | None, int]:
    """Run the flow in this process; returns (summary, exit code). Used by run, backfill and demo.

    A failed run prints one ``error: <reason>: <message>`` line (its traceback only with ``debug``;
    the Prefect run log always has it)."""
    from exchange_sync.prefect_env import configure_prefect_defaults

    interactive = sys.stderr.isatty()
    if interactive:
        # In a terminal the progress bar and the summary table are the output; Prefect's per-task
        # INFO lines would scroll them away. Run logs still reach the Prefect API (the UI) in full.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    configure_prefect_defaults()
    from exchange_sync.pipeline.outcome import RunFailed
    from flows.sync_integration import sync_integration
    from exchange_sync.prefect_env import watch_temporary_server
    from exchange_sync.store import SqlStore
    from exchange_sync.store.engine import StateUnavailable

    watch_temporary_server()  # a kill -9 of this command must not leave Prefect's temporary server running
    if not debug:
        _quiet_console_tracebacks()
    with _progress_bar(enabled=interactive):
        state = sync_integration(config=config, mode=mode, start=start, end=end, mailboxes=mailboxes or None,
                                 return_state=True)
    try:
        runs = SqlStore(config.state.url).list_runs(config.name, limit=1)
    except StateUnavailable:
        runs = []
    summary = runs[0].summary if runs else None
    if summary is not None and "mailboxes" not in summary:
        summary = None  # the run did not get as far as its mailboxes
    if state.is_completed():
        code = EXIT_SKIPPED if summary and any(m["status"] in ("skipped", "disabled")
                                               for m in summary["mailboxes"]) else 0
        return summary, code
    message = state.message or "the run failed"
    try:
        state.result()
    except (RunFailed, StateUnavailable) as exc:  # the reason comes first in their text
        message = str(exc)
        if debug:
            import traceback

            traceback.print_exception(exc)
    except Exception as exc:  # noqa: BLE001 - shown to the user, it is the run's failure
        message = f"unexpected_error: {type(exc).__name__}: {exc}"
        if debug:
            import traceback

            traceback.print_exception(exc)
    typer.echo(f"error: {message}", err=True)
    return summary, EXIT_FAILED
