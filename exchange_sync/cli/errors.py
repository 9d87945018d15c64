"""`exchange-sync errors CONFIG`: the integration errors runs recorded (kind, mailbox, action, time)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from exchange_sync.cli import app
from exchange_sync.cli.common import ConfigArg, JsonOpt, load_config, state_errors


@app.command("errors")
def errors_command(
    config: ConfigArg,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many, newest first.")] = 50,
) -> None:
    """Integration errors, newest first: kind (the hosted product's names: invalid_exchange_credentials,
    mailbox_not_found, mailbox_access_denied, comment_quota_hit, ...), mailbox, action taken
    (mailbox_disabled, integration_disabled, none) and time. Exit status 0 (also when there are none),
    1 the state database cannot be read, 2 bad command line or configuration."""
    from exchange_sync.store import SqlStore
    from exchange_sync.store.errors import list_errors

    cfg = load_config(config)
    with state_errors():
        errors = list_errors(SqlStore(cfg.state.url), cfg.name, limit=limit)
    if as_json:
        typer.echo(json.dumps([e.model_dump(mode="json", exclude={"integration"}) for e in errors]))
        return
    if not errors:
        typer.echo(f"no errors recorded for {cfg.name}")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(f"errors of {cfg.name} (newest first)"))
    for col in ("time", "kind", "mailbox", "action", "message"):
        table.add_column(col)
    for e in errors:
        # Messages quote server texts: shown as text, never as rich markup.
        table.add_row(*(escape(v) for v in e.row().values()))
    Console(width=None if sys.stdout.isatty() else 160, emoji=False).print(table)
