"""Deployment commands: deploy, stop, start, enable, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from exchange_sync.cli import app
from exchange_sync.cli.common import EXIT_CONFIG, EXIT_FAILED, JsonOpt, load_config

NameArg = Annotated[str, typer.Argument(help="Integration name.", show_default=False)]


def _prefect() -> None:
    from exchange_sync.prefect_env import configure_prefect_defaults, watch_temporary_server

    configure_prefect_defaults()
    watch_temporary_server()  # without PREFECT_API_URL: no temporary server outlives a killed command


@app.command("deploy")
def deploy_command(
    project: Annotated[Path, typer.Option(help="Project directory (prefect.yaml, deployments/*.yaml).")] = Path("."),
    pool: Annotated[Optional[str], typer.Option("--pool", help="Process work pool (default from prefect.yaml).")] = None,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Only this integration (repeatable).")] = None,
    shards: Annotated[Optional[int], typer.Option(min=1, max=256,
                                                  help="Split the mailboxes of the --only integrations over N "
                                                       "deployments (saved in prefect.yaml).")] = None,
    server_limit: Annotated[Optional[int], typer.Option(min=1, help="Slots of a NEW per-server concurrency "
                                                                  "limit (default: connections_per_server).")] = None,
    write_yaml: Annotated[bool, typer.Option("--write-yaml/--no-write-yaml",
                                             help="Rewrite prefect.yaml's deployments list.")] = True,
    register: Annotated[bool, typer.Option("--register/--no-register",
                                           help="Register with the Prefect server (PREFECT_API_URL).")] = True,
    force: Annotated[bool, typer.Option("--force", help="Overwrite deployments edited in the UI since the "
                                                        "last deploy (see `exchange-sync diff NAME`).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register a deployment per integration in deployments/*.yaml (schedule, work pool, limits).

    A deployment an operator stopped stays stopped: its paused state is read and kept. A deployment
    whose parameters or schedule were edited in the UI since the last deploy is kept as edited
    (unless --force). Example configurations (deployments/example*.yaml) are deployed only when
    named with --only."""
    from exchange_sync.config import ConfigError
    from exchange_sync.deploy import spec as specs_mod

    project = project.resolve()
    prefect_yaml = project / "prefect.yaml"
    try:
        settings = specs_mod.load_settings(prefect_yaml)
        configs = specs_mod.discover_configs(project)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    if not configs:
        typer.echo(f"error: no integration configuration in {project / 'deployments'}", err=True)
        raise typer.Exit(EXIT_CONFIG)
    skipped_examples = [c.name for p, c in configs if _is_example(p) and c.name not in (only or ())]
    configs = [(p, c) for p, c in configs if c.name not in skipped_examples]
    if not configs:
        typer.echo(f"error: only example configurations in {project / 'deployments'} "
                   f"({', '.join(skipped_examples)}): add yours, or deploy one with --only NAME", err=True)
        raise typer.Exit(EXIT_CONFIG)
    if shards is not None:
        if not only:
            typer.echo("error: --shards applies to the integrations named with --only", err=True)
            raise typer.Exit(EXIT_CONFIG)
        for name in only:
            settings.integrations.setdefault(name, {})["shards"] = shards
    if pool:
        settings.work_pool = pool
    unknown = sorted(set(only or ()) - {c.name for _, c in configs})
    if unknown:
        typer.echo(f"error: no integration named {', '.join(unknown)} in {project / 'deployments'}", err=True)
        raise typer.Exit(EXIT_CONFIG)
    all_specs = specs_mod.build_specs(project, settings, configs)
    if write_yaml:
        prefect_yaml.write_text(specs_mod.render_prefect_yaml(settings, all_specs), encoding="utf-8")
    chosen = [s for s in all_specs if not only or s.integration in only]
    out: dict = {"deployments": [s.name for s in chosen], "prefect_yaml": str(prefect_yaml) if write_yaml else None,
                 "skipped_examples": skipped_examples}
    if register:
        _prefect()
        from exchange_sync.deploy.register import apply

        overrides = None
        if server_limit:
            overrides = {s.config.connection.server_key: server_limit for s in chosen}
        try:
            result = apply(chosen, project, limit_overrides=overrides, force=force)
        except Exception as exc:  # noqa: BLE001 - server unreachable, validation error: say it plainly
            # Server validation errors quote the whole parameter schema: keep the message readable.
            message = str(exc)
            message = message if len(message) <= 1500 else message[:1500] + " ..."
            typer.echo(f"error: registering the deployments failed: {type(exc).__name__}: {message}", err=True)
            raise typer.Exit(EXIT_FAILED) from None
        out.update(vars(result))
    if as_json:
        typer.echo(json.dumps(out, default=str))
        return
    for name in out.get("created", []):
        typer.echo(f"created  exchange-sync/{name}")
    for name in out.get("updated", []):
        typer.echo(f"updated  exchange-sync/{name}" + ("  (stopped: kept paused)" if name in out["kept_paused"] else ""))
    for name in out.get("kept_edited", []):
        typer.echo(f"kept     exchange-sync/{name}  (edited in the UI since the last deploy: not overwritten; "
                   f"`exchange-sync diff {name}` shows the difference, `exchange-sync deploy --force` overwrites it)")
    for name in skipped_examples:
        typer.echo(f"skipped  {name}  (an example configuration: deploy it with --only {name})")
    for name in out.get("deleted", []):
        typer.echo(f"deleted  exchange-sync/{name}  (no longer in the configuration)")
    for name in out.get("pools_created", []):
        typer.echo(f"work pool {name} created (process); start a worker: prefect worker start --pool {name}")
    for name, limit in out.get("limits_created", {}).items():
        typer.echo(f"concurrency limit {name} created: {limit} slots")
    for name, limit in out.get("limits_existing", {}).items():
        typer.echo(f"concurrency limit {name}: {limit} slots (existing, unchanged)")
    if not register:
        typer.echo("\n".join(f"exchange-sync/{n}" for n in out["deployments"]))


def _is_example(path: Path) -> bool:
    return path.stem == "example" or path.stem.startswith("example-") or path.stem.startswith("example_")


@app.command("diff")
def diff_command(
    name: Annotated[str, typer.Argument(help="Integration or deployment name.", show_default=False)],
    project: Annotated[Path, typer.Option(help="Project directory (prefect.yaml, deployments/*.yaml).")] = Path("."),
) -> None:
    """Show how the server's deployments of an integration differ from what `exchange-sync deploy`
    would write from the files (e.g. parameters or a schedule edited in the UI). Exit 1 when they differ."""
    from exchange_sync.config import ConfigError
    from exchange_sync.deploy import spec as specs_mod

    project = project.resolve()
    try:
        settings = specs_mod.load_settings(project / "prefect.yaml")
        configs = specs_mod.discover_configs(project)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    specs = [s for s in specs_mod.build_specs(project, settings, configs) if name in (s.integration, s.name)]
    if not specs:
        typer.echo(f"error: no integration or deployment named {name} in {project / 'deployments'}", err=True)
        raise typer.Exit(EXIT_CONFIG)
    _prefect()
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    from exchange_sync.deploy.drift import render_diff, state_of
    from exchange_sync.deploy.names import full_name

    differs = False
    with get_client(sync_client=True) as client:
        for spec in specs:
            try:
                dep = client.read_deployment_by_name(full_name(spec.name))
                deployed = state_of(dep.parameters, dep.schedules)
            except ObjectNotFound:
                deployed = None
            wanted = state_of(spec.parameters, spec.schedule_objects())
            if deployed == wanted:
                typer.echo(f"exchange-sync/{spec.name}: same as the files")
                continue
            differs = True
            if deployed is None:
                typer.echo(f"exchange-sync/{spec.name}: not deployed")
                continue
            typer.echo(render_diff(spec.name, deployed, wanted), nl=False)
    if differs:
        raise typer.Exit(1)


def _toggle(name: str, paused: bool, as_json: bool) -> None:
    _prefect()
    from exchange_sync.deploy.control import NoSuchIntegration, set_paused

    try:
        toggled = set_paused(name, paused)
    except NoSuchIntegration as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    runs = toggled.watch_runs_cancelled if paused else toggled.watch_runs_started
    if as_json:
        typer.echo(json.dumps([{"name": d.name, "id": str(d.id), "paused": d.paused, "watch": d.watch,
                                **({"watch_runs": runs} if d.watch else {})} for d in toggled.deployments]))
        return
    for d in toggled.deployments:
        typer.echo(f"exchange-sync/{d.name}: {'stopped (paused)' if paused else 'started (scheduled)'}")
    for run in runs:
        typer.echo(f"watch run {run}: " + ("cancelled (ends after the pages in flight)" if paused else "created"))


@app.command("stop")
def stop_command(name: NameArg, as_json: JsonOpt = False) -> None:
    """Stop an integration: pause its deployments (as the UI toggle does) and cancel its watch runs;
    redeploys keep it stopped."""
    _toggle(name, True, as_json)


@app.command("start")
def start_command(name: NameArg, as_json: JsonOpt = False) -> None:
    """Start an integration again: resume its deployments (the scheduler adds runs within a minute)
    and start its watch run."""
    _toggle(name, False, as_json)


@app.command("enable")
def enable_command(
    config: Annotated[Path, typer.Argument(help="Integration name or configuration file.", show_default=False)],
    mailbox: Annotated[list[str], typer.Option("--mailbox", "-m", help="Mailbox to re-enable (repeatable).")],
    as_json: JsonOpt = False,
) -> None:
    """Re-enable mailboxes that were disabled after repeated failures (the next run tries them again)."""
    from exchange_sync.store import SqlStore

    cfg = load_config(config)
    known = {m.email for m in cfg.mailboxes}
    wanted = [m.strip().lower() for m in mailbox]
    unknown = [m for m in wanted if m not in known]
    if unknown:
        typer.echo(f"error: not a mailbox of {cfg.name}: {', '.join(unknown)}", err=True)
        raise typer.Exit(EXIT_CONFIG)
    state = SqlStore(cfg.state.url)
    before = {h.mailbox: h for h in state.mailbox_health(cfg.name)}
    for m in wanted:
        state.enable_mailbox(cfg.name, m)
        state.set_mailbox_status(cfg.name, m, "enabled", reason="re-enabled by an operator", error_count_delta=0)
    rows = [{"mailbox": m, "was_disabled": bool(before.get(m) and before[m].disabled)} for m in wanted]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        typer.echo(f"{r['mailbox']}: enabled" + ("" if r["was_disabled"] else " (was not disabled)"))


@app.command("report")
def report_command(
    config: Annotated[Path, typer.Argument(help="Integration name or configuration file.", show_default=False)],
    days: Annotated[int, typer.Option(min=1, max=366, help="Days to show, ending today (UTC).")] = 14,
    as_json: JsonOpt = False,
) -> None:
    """Trend per day: items extracted, units billed and lag (longest run), as a terminal chart."""
    from dataclasses import asdict

    from exchange_sync.pipeline.report import daily_trend, render_trend
    from exchange_sync.pipeline.runtime import checkpoint_store
    from exchange_sync.store import SqlStore

    cfg = load_config(config)
    runs = SqlStore(cfg.state.url).list_runs(cfg.name, limit=100_000)
    trend = daily_trend(runs, checkpoint_store(cfg).usage(cfg.name), days=days)
    if as_json:
        typer.echo(json.dumps([asdict(t) for t in trend]))
        return
    typer.echo(render_trend(cfg.name, trend))
