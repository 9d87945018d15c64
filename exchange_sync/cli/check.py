"""`exchange-sync check CONFIG [--json]`: reach the server, report version, TLS, auth and each mailbox.

Exit status: 0 every enabled mailbox is reachable; 1 the server cannot be reached or talked to;
2 bad command line or configuration; 3 the server answered but some mailboxes are not reachable.
"""

from __future__ import annotations

import json
import logging
import sys

import typer

from exchange_sync.cli import app
from exchange_sync.cli.common import EXIT_CONFIG, ConfigArg, JsonOpt, load_config


@app.command("check")
def check_command(config: ConfigArg, as_json: JsonOpt = False) -> None:
    """Check the connection (read-only): server version, TLS, credentials, and each mailbox's folders."""
    from exchange_sync.check import CheckConfigError, check_connection

    cfg = load_config(config)
    # The report says how each call ended; the source's "retrying ..." warnings would only interleave
    # with it (Python prints unhandled WARNING records on stderr).
    for name in ("exchange_sync", "exchangelib"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        report = check_connection(cfg)
    except CheckConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    elif not report.server.reachable:
        err = report.server.error
        why = f"{err.message} ({err.reason})" if err else "unreachable"
        typer.echo(f"error: cannot talk to {report.server.url}: {why}", err=True)
    else:
        _print(report)
    raise typer.Exit(report.exit_code)


def _print(report) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    s = report.server
    console = Console(width=None if sys.stdout.isatty() else 160)
    if s.tls is not None:
        tls = f"{s.tls.protocol}, {s.tls.cipher}"
    else:
        tls = s.tls_note or "not measured"
    accepted = {True: "accepted", False: "refused", None: "not confirmed"}[s.auth_accepted]
    console.print(f"integration [bold]{escape(report.integration)}[/]: {escape(s.url)} ({s.kind})", soft_wrap=True)
    console.print(f"  server   {escape(s.display_version or 'unknown')}", soft_wrap=True)
    console.print(f"  tls      {escape(tls)}", soft_wrap=True)
    console.print(f"  auth     {escape(s.auth)}: {accepted}", soft_wrap=True)
    table = Table(box=None, pad_edge=False)
    for col, justify in (("mailbox", "left"), ("status", "left"), ("mail folders", "right"),
                         ("all folders", "right"), ("message", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for m in report.mailboxes:
        style = "green" if m.status == "ok" else ("dim" if m.status in ("disabled", "not_checked") else "red")
        table.add_row(escape(m.email), f"[{style}]{escape(m.status)}[/]",
                      "" if m.mail_folders is None else str(m.mail_folders),
                      "" if m.total_folders is None else str(m.total_folders), escape(m.message or ""))
    console.print(table)
    enabled = [m for m in report.mailboxes if m.status != "disabled"]
    bad = [m for m in enabled if m.status != "ok"]
    summary = f"{len(enabled) - len(bad)} of {len(enabled)} enabled mailbox(es) reachable"
    console.print(("ok: " if report.ok else "not ok: ") + summary)
