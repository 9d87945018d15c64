"""Pipeline commands: run, backfill, replay, status, usage, comments, demo."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from exchange_sync.cli import app
from exchange_sync.cli.common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    ConfigArg,
    DebugOpt,
    JsonOpt,
    MailboxOpt,
    check_run,
    load_config,
    print_report,
    run_flow,
    state_errors,
)

comments_app = typer.Typer(help="Read the comments in an integration's embedded store.", no_args_is_help=True)
app.add_typer(comments_app, name="comments")


def _parse_time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        typer.echo(f"error: --{name}: {value!r} is not an ISO-8601 date or time (e.g. 2024-01-31 or 2024-01-31T08:00:00Z)",
                   err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@app.command("run")
def run_command(config: ConfigArg, mailbox: MailboxOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Sync an integration once (incremental, from each folder's stored watermark)."""
    cfg = load_config(config)
    check_run(cfg, mailbox)
    summary, code = run_flow(cfg, mailboxes=mailbox, debug=debug)
    if summary:
        print_report(summary, as_json)
    raise typer.Exit(code)


@app.command("backfill")
def backfill_command(
    config: ConfigArg,
    start: Annotated[Optional[str], typer.Option(help="Received at or after (ISO-8601, UTC if no zone).")] = None,
    end: Annotated[Optional[str], typer.Option(help="Received before (ISO-8601, UTC if no zone).")] = None,
    mailbox: MailboxOpt = None,
    as_json: JsonOpt = False,
    chunk_days: Annotated[int, typer.Option(min=1, help="Deployment backfills: days per flow run.")] = 31,
    debug: DebugOpt = False,
) -> None:
    """Re-read a received-time window (FindItem); never reads or moves the sync watermarks.

    With a configuration file the backfill runs here, now. With an integration NAME it is submitted
    to the integration's backfill deployment: one flow run per chunk of --chunk-days, each created
    once (an idempotency key per chunk), run by a worker."""
    lo, hi = _parse_time(start, "start"), _parse_time(end, "end")
    if lo and hi and lo >= hi:
        typer.echo("error: --start must be before --end", err=True)
        raise typer.Exit(EXIT_CONFIG)
    if not config.is_file():
        from exchange_sync.deploy.resolve import looks_like_path

        if looks_like_path(str(config)):
            typer.echo(f"error: no such configuration file: {str(config)!r}", err=True)
            raise typer.Exit(EXIT_CONFIG)
        _submit_backfill(str(config), lo, hi, mailbox, chunk_days, as_json)
        return
    cfg = load_config(config)
    check_run(cfg, mailbox)
    summary, code = run_flow(cfg, mode="backfill", start=lo, end=hi, mailboxes=mailbox, debug=debug)
    if summary:
        print_report(summary, as_json)
    raise typer.Exit(code)


def _submit_backfill(name: str, lo, hi, mailboxes, chunk_days: int, as_json: bool) -> None:
    from exchange_sync.deploy.backfill import submit
    from exchange_sync.prefect_env import configure_prefect_defaults, watch_temporary_server

    if lo is None or hi is None:
        # A deployment backfill must name its window: an open end would make every submission a new window.
        typer.echo("error: a deployment backfill needs both --start and --end", err=True)
        raise typer.Exit(EXIT_CONFIG)
    configure_prefect_defaults()
    watch_temporary_server()
    try:
        runs = submit(name, lo, hi, mailboxes=mailboxes or None, chunk_days=chunk_days)
    except Exception as exc:  # noqa: BLE001 - e.g. no such deployment: tell the operator
        typer.echo(f"error: cannot submit the backfill of {name!r}: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None
    rows = [{"start": r.chunk.start.isoformat(), "end": r.chunk.end.isoformat(), "flow_run_id": str(r.flow_run_id),
             "flow_run_name": r.flow_run_name, "idempotency_key": r.idempotency_key} for r in runs]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        typer.echo(f"{r['start']} .. {r['end']}: flow run {r['flow_run_name']} ({r['flow_run_id']})")
    typer.echo(f"{len(rows)} backfill run(s) submitted; a worker of the integration's pool runs them in order.")


@app.command("replay")
def replay_command(config: ConfigArg, mailbox: MailboxOpt = None, as_json: JsonOpt = False) -> None:
    """Re-transform and re-load staged batches without touching Exchange (watermarks stay as they are)."""
    from exchange_sync.pipeline.replay import replay

    cfg = load_config(config)
    with state_errors():
        result = replay(cfg, mailboxes=mailbox)
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo(f"replayed {result['batches']} batches: {result['comments']} comments, {result['rejected']} rejected; "
                   f"{result['counts']}")


@app.command("status")
def status_command(config: ConfigArg, as_json: JsonOpt = False) -> None:
    """Per mailbox and folder: sync state, last sync, items, errors; and the last runs."""
    from exchange_sync.pipeline.status import integration_status

    cfg = load_config(config)
    with state_errors():
        status = integration_status(cfg)
    if as_json:
        typer.echo(json.dumps(status, default=str))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)
    table = Table(title=escape(f"integration {cfg.name}"))
    for col in ("mailbox", "enabled", "status", "folder", "watermark", "last sync", "items", "error"):
        table.add_column(col)
    for mb in status["mailboxes"]:
        folders = mb["folders"] or [None]
        for i, f in enumerate(folders):
            # Folder names and error texts come from the server: shown as text, never as rich markup.
            table.add_row(*map(escape, (
                mb["mailbox"] if i == 0 else "",
                ("yes" if mb["enabled"] else "no") if i == 0 else "",
                (("disabled" if mb.get("disabled") else mb["status"]) or "never run") if i == 0 else "",
                f["path"] if f else "",
                ("yes" if f and f["has_watermark"] else "no") if f else "",
                str(f["last_synced_at"] or "") if f else "",
                str(f["items_synced"]) if f else "",
                ((mb.get("disabled_reason") or mb["reason"]) or "") if i == 0 else "",
            )))
    console.print(table)
    for mb in status["mailboxes"]:
        if mb.get("disabled"):
            console.print(escape(f"disabled: {mb['mailbox']}: {mb['disabled_reason']} "
                                 f"(re-enable: exchange-sync enable {cfg.name} --mailbox {mb['mailbox']})"), soft_wrap=True)
    for mb in status["mailboxes"]:
        w = mb.get("watch") or {}
        if w.get("mode"):  # `exchange-sync watch` (docs/watch.md): how changes are noticed, and how late
            lag = "-" if w["lag_s"] is None else f"{w['lag_s']} s"
            console.print(escape(f"watch: {mb['mailbox']}: {w['mode']}{' (' + w['reason'] + ')' if w['reason'] else ''}, "
                                 f"last event {w['last_event_at'] or '-'}, last sync {w['last_sync_at'] or '-'}, "
                                 f"lag {lag}"), soft_wrap=True)
    for run in status["runs"]:
        console.print(escape(f"run {run['started_at']} {run['mode']} {run['status']}: {run['totals']}"))


@app.command("usage")
def usage_command(
    config: ConfigArg,
    since: Annotated[Optional[str], typer.Option(help="From this day (YYYY-MM-DD).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Usage per day and mailbox: new, updated, text changed, unchanged, units; and filtered (left out
    by participant filters, never billed)."""
    from exchange_sync.pipeline.runtime import checkpoint_store
    from exchange_sync.store.usage_filtered import filtered_by_day

    cfg = load_config(config)
    day = _parse_time(since, "since")
    with state_errors():
        store = checkpoint_store(cfg)
        rows = [r if isinstance(r, dict) else r.model_dump() for r in
                store.usage(cfg.name, since=day.date() if day else None)]
        filtered = filtered_by_day(store, cfg.name, since=day.date() if day else None)
    for r in rows:
        r["filtered"] = filtered.pop((r["day"], r["mailbox"]), 0)
    rows += [{"integration": cfg.name, "day": d, "mailbox": m, "new": 0, "updated_properties_only": 0,
              "updated_text_changed": 0, "unchanged": 0, "units": 0, "filtered": n} for (d, m), n in filtered.items()]
    rows.sort(key=lambda r: (r["day"], r["mailbox"]))
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"usage of {cfg.name}")
    cols = ("day", "mailbox", "new", "updated_properties_only", "updated_text_changed", "unchanged", "units", "filtered")
    for col in cols:
        table.add_column(col)
    from rich.markup import escape

    for r in rows:
        table.add_row(*(escape(str(r.get(c, ""))) for c in cols))
    table.add_row("total", "", *(str(sum(r.get(c, 0) for r in rows)) for c in cols[2:]))
    Console(emoji=False).print(table)


def _comment_store(cfg):
    from exchange_sync.config import StoreDestination
    from exchange_sync.store import SqlStore

    if not isinstance(cfg.destination, StoreDestination):
        typer.echo("error: this integration loads into a remote destination; read comments there", err=True)
        raise typer.Exit(EXIT_CONFIG)
    with state_errors():
        return SqlStore(cfg.destination.url), cfg.destination.source_key


@comments_app.command("list")
def comments_list(
    config: ConfigArg,
    limit: Annotated[int, typer.Option(min=1, help="At most this many (0 < limit).")] = 1_000_000,
    as_json: JsonOpt = False,
) -> None:
    """List comments, one JSON object per line with --json."""
    cfg = load_config(config)
    store, source = _comment_store(cfg)
    after, emitted = None, 0
    while emitted < limit:
        page, after = store.list_comments(source, after=after, limit=min(500, limit - emitted))
        for c in page:
            if as_json:
                typer.echo(json.dumps(c.to_api(), ensure_ascii=False))
            else:
                m = c.messages[0]
                props = c.user_properties
                typer.echo(f"{c.id[:24]}…  {c.timestamp:%Y-%m-%d %H:%M}  {props.get('string:Folder', '')!s:<20} "
                           f"{(m.subject.text if m.subject else '')[:60]}")
            emitted += 1
        if not after or not page:
            break


@comments_app.command("get")
def comments_get(config: ConfigArg, comment_id: Annotated[str, typer.Argument(help="Comment id (hex).")],
                 as_json: JsonOpt = False) -> None:
    """Show one comment."""
    cfg = load_config(config)
    store, source = _comment_store(cfg)
    comment = store.get_comment(comment_id.lower(), source=source)
    if comment is None:
        typer.echo(f"error: no comment {comment_id}", err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo(json.dumps(comment.to_api(), ensure_ascii=False, indent=None if as_json else 2))


@comments_app.command("count")
def comments_count(config: ConfigArg, as_json: JsonOpt = False) -> None:
    """Number of comments in the store."""
    cfg = load_config(config)
    store, source = _comment_store(cfg)
    n = store.count_comments(source)
    typer.echo(json.dumps({"count": n}) if as_json else str(n))


@app.command("demo")
def demo_command(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo writes its config, store and staging.")] = Path(
        "exchange-sync-demo"),
    messages: Annotated[int, typer.Option(min=1, max=100_000, help="Generated messages per mailbox.")] = 200,
) -> None:
    """Start the EWS test server on generated mail, sync it, move a message, sync again."""
    from exchange_sync.demo import run_demo

    sys.exit(run_demo(directory, messages))
