"""What an integration's deployments look like, derived from its configuration and project settings.

One integration (``deployments/<file>.yaml``) gives:
- ``<name>``: the scheduled poll (incremental), interval schedule, deployment concurrency limit 1 with
  ``CANCEL_NEW`` so polls never overlap (a poll that finds the previous one still running is dropped,
  the next tick catches up from the watermarks);
- with ``shards: N`` (large tenants), ``<name>-shard-i-of-N`` instead: the same configuration, each
  restricted to a stable subset of the mailboxes through the top-level ``mailboxes`` parameter;
- ``<name>-backfill``: no schedule, concurrency 1 with ``ENQUEUE``: backfill chunks queue behind each
  other instead of being cancelled by a running poll (they never touch watermarks, so they may run
  beside the polls; the per-server limit bounds the load on Exchange);
- with ``watch.enabled`` (issue #16), ``<name>-watch``: the real-time watch (``flows.watch_integration``),
  a flow run that lasts until cancelled. Its schedule (every ``watch_restart_s``, 900 s by default) only
  makes sure one runs: with concurrency 1 and ``CANCEL_NEW`` a tick while the watcher runs is cancelled
  at once, a tick after it died (worker restart, crash) starts a new one. The scheduled poll stays as
  the safety net, every ``watch_poll_interval_s`` (3600 s by default) instead of ``interval_s``.

The configuration travels as the ``config`` parameter (editable in the UI). It only ever holds
secret *references* (``{secret_block: NAME}`` / ``{env: NAME}``), never a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from exchange_sync.config import ConfigError, IntegrationConfig, load_config
from exchange_sync.forms import config_parameter, form_parameters
from exchange_sync.deploy.names import (
    FLOW_NAME,
    WATCH_TAG,
    backfill_deployment_name,
    deployment_name,
    integration_tag,
    server_label,
    shard_of,
    watch_deployment_name,
)

ENTRYPOINT = "flows.sync_integration:sync_integration"  # a module path: works from any working directory
# Deployments use the flows with union-free parameters, which the Prefect UI renders as a form
# (exchange_sync.forms: .ews, .graph); ENTRYPOINT (the whole configuration as one `config`
# parameter) is for `exchange-sync run` and for connection kinds without a form.
FORM_ENTRYPOINTS = {"ews": "flows.sync_integration:sync_ews", "graph": "flows.sync_graph:sync_graph"}
FORM_ENTRYPOINT = FORM_ENTRYPOINTS["ews"]
WATCH_ENTRYPOINTS = {"ews": "flows.watch_integration:watch_ews", "graph": "flows.watch_integration:watch_graph"}
DEFAULT_POOL = "exchange-sync"
DEFAULT_INTERVAL_S = 300
# Watched integrations: the poll is the safety net (a missed event, a watcher down), so it runs hourly;
# the watch deployment's schedule checks every 15 minutes that a watcher runs.
DEFAULT_WATCH_POLL_INTERVAL_S = 3600
DEFAULT_WATCH_RESTART_S = 900
SETTINGS_KEY = "exchange_sync"  # under `definitions:` in prefect.yaml


def watch_enabled(config: IntegrationConfig) -> bool:
    return config.watch.enabled


@dataclass
class ProjectSettings:
    """``definitions.exchange_sync`` of prefect.yaml (all optional)."""

    work_pool: str = DEFAULT_POOL
    work_queue: str | None = None
    interval_s: int = DEFAULT_INTERVAL_S
    cron: str | None = None
    timezone: str | None = None
    watch_poll_interval_s: int = DEFAULT_WATCH_POLL_INTERVAL_S  # the poll of a watched integration
    watch_restart_s: int = DEFAULT_WATCH_RESTART_S  # how often the watch deployment checks a watcher runs
    # Per integration: {shards: N, interval_s: S, cron: "...", watch_restart_s: S}
    integrations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_integration(self, name: str, key: str, default: Any) -> Any:
        return self.integrations.get(name, {}).get(key, default)

    def to_yaml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"work_pool": self.work_pool, "interval_s": self.interval_s}
        for key in ("work_queue", "cron", "timezone"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        if self.watch_poll_interval_s != DEFAULT_WATCH_POLL_INTERVAL_S:
            data["watch_poll_interval_s"] = self.watch_poll_interval_s
        if self.watch_restart_s != DEFAULT_WATCH_RESTART_S:
            data["watch_restart_s"] = self.watch_restart_s
        if self.integrations:
            data["integrations"] = self.integrations
        return data


@dataclass
class DeploymentSpec:
    name: str
    integration: str
    config: IntegrationConfig
    source_file: str
    mailboxes: list[str] | None = None  # a shard's subset; None = all enabled
    backfill: bool = False
    watch: bool = False  # the real-time watch deployment (<name>-watch)
    interval_s: int | None = DEFAULT_INTERVAL_S
    cron: str | None = None
    timezone: str | None = None
    work_pool: str = DEFAULT_POOL
    work_queue: str | None = None

    @property
    def tags(self) -> list[str]:
        tags = [FLOW_NAME, integration_tag(self.integration)]
        return tags + (["backfill"] if self.backfill else []) + ([WATCH_TAG] if self.watch else [])

    @property
    def form(self) -> bool:
        return self.config.connection.kind in FORM_ENTRYPOINTS

    @property
    def entrypoint(self) -> str:
        if self.watch:
            return WATCH_ENTRYPOINTS[self.config.connection.kind]
        return FORM_ENTRYPOINTS.get(self.config.connection.kind, ENTRYPOINT)

    @property
    def parameters(self) -> dict[str, Any]:
        if self.form:
            params: dict[str, Any] = form_parameters(self.config)
            if self.mailboxes is not None:
                params["only_mailboxes"] = self.mailboxes
        else:
            params = {"config": config_parameter(self.config)}
            if self.mailboxes is not None:
                params["mailboxes"] = self.mailboxes
        if self.backfill:
            params["mode"] = "backfill"
        return params

    @property
    def concurrency(self) -> dict[str, Any]:
        return {"limit": 1, "collision_strategy": "ENQUEUE" if self.backfill else "CANCEL_NEW"}

    def schedule_yaml(self) -> list[dict[str, Any]]:
        if self.backfill:
            return []
        if self.watch:  # a restart check, never a cron: the watcher runs until cancelled
            return [{"interval": self.interval_s}]
        sched: dict[str, Any] = {"cron": self.cron} if self.cron else {"interval": self.interval_s}
        if self.timezone:
            sched["timezone"] = self.timezone
        return [sched]

    def schedule_objects(self) -> list:
        from prefect.client.schemas.actions import DeploymentScheduleCreate
        from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

        if self.backfill:
            return []
        if self.cron and not self.watch:
            schedule = CronSchedule(cron=self.cron, timezone=self.timezone or "UTC")
        else:
            schedule = IntervalSchedule(interval=timedelta(seconds=self.interval_s or DEFAULT_INTERVAL_S))
        return [DeploymentScheduleCreate(schedule=schedule, active=True)]

    @property
    def description(self) -> str:
        what = "backfill runs (submit with `exchange-sync backfill NAME`)" if self.backfill else "scheduled sync"
        if self.watch:
            what = (f"real-time watch, runs until cancelled (restarted within {self.interval_s} s when not "
                    f"running)")
        scope = f", mailboxes {', '.join(self.mailboxes)}" if self.mailboxes is not None else ""
        return f"{what} of integration {self.integration} ({server_label(self.config.connection)}){scope}; from {self.source_file}"

    def prefect_yaml_entry(self) -> dict[str, Any]:
        """This deployment as a prefect.yaml entry (what `prefect deploy --all` registers)."""
        pool: dict[str, Any] = {"name": self.work_pool}
        if self.work_queue:
            pool["work_queue_name"] = self.work_queue
        return {
            "name": self.name,
            "description": self.description,
            "entrypoint": self.entrypoint,
            "tags": self.tags,
            "work_pool": pool,
            "schedules": self.schedule_yaml(),
            "concurrency_limit": self.concurrency,
            "enforce_parameter_schema": True,
            "parameters": self.parameters,
        }


def load_settings(prefect_yaml: Path) -> ProjectSettings:
    if not prefect_yaml.exists():
        return ProjectSettings()
    data = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8")) or {}
    raw = ((data.get("definitions") or {}).get(SETTINGS_KEY)) or {}
    known = {f for f in ProjectSettings.__dataclass_fields__}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{prefect_yaml}: definitions.{SETTINGS_KEY}: unknown keys {', '.join(unknown)}")
    return ProjectSettings(**raw)


def discover_configs(project: Path) -> list[tuple[Path, IntegrationConfig]]:
    """Every ``deployments/*.yaml`` of the project, validated (the first bad one fails, naming file and field)."""
    found = []
    names: dict[str, Path] = {}
    for path in sorted((project / "deployments").glob("*.y*ml")):
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if cfg.name in names:
            raise ConfigError(f"integration name {cfg.name!r} is used by both {names[cfg.name]} and {path}")
        names[cfg.name] = path
        found.append((path, cfg))
    return found


def build_specs(project: Path, settings: ProjectSettings, configs: list[tuple[Path, IntegrationConfig]],
                *, work_pool: str | None = None) -> list[DeploymentSpec]:
    specs: list[DeploymentSpec] = []
    for path, cfg in configs:
        rel = str(path.relative_to(project)) if path.is_relative_to(project) else str(path)
        watched = watch_enabled(cfg) and cfg.connection.kind in WATCH_ENTRYPOINTS
        poll_default = settings.watch_poll_interval_s if watched else settings.interval_s
        common = dict(
            integration=cfg.name, config=cfg, source_file=rel,
            interval_s=int(settings.for_integration(cfg.name, "interval_s", poll_default)),
            cron=settings.for_integration(cfg.name, "cron", settings.cron),
            timezone=settings.for_integration(cfg.name, "timezone", settings.timezone),
            work_pool=work_pool or settings.work_pool, work_queue=settings.work_queue,
        )
        shards = int(settings.for_integration(cfg.name, "shards", 1))
        if shards <= 1:
            specs.append(DeploymentSpec(name=deployment_name(cfg.name), **common))
        else:
            enabled = [m.email for m in cfg.enabled_mailboxes]
            for i in range(shards):
                subset = [e for e in enabled if shard_of(e, shards) == i]
                if subset:  # an empty shard would sync every mailbox (mailboxes=[] means "all")
                    specs.append(DeploymentSpec(name=deployment_name(cfg.name, i, shards), mailboxes=subset, **common))
        specs.append(DeploymentSpec(name=backfill_deployment_name(cfg.name), backfill=True, **common))
        if watched:  # one watcher for all the mailboxes, shards or not (subscriptions share connections)
            restart = int(settings.for_integration(cfg.name, "watch_restart_s", settings.watch_restart_s))
            specs.append(DeploymentSpec(name=watch_deployment_name(cfg.name), watch=True,
                                        **{**common, "interval_s": restart, "cron": None}))
    return specs


PREFECT_YAML_HEADER = """\
# Prefect project file of exchange-sync.
#
# The `deployments:` list is GENERATED by `exchange-sync deploy` from deployments/*.yaml (one
# integration per file): edit those files and the `definitions.exchange_sync` settings below, then
# run `exchange-sync deploy`, which rewrites this list and registers it. `prefect deploy --all`
# registers the same deployments, but note that it resets a stopped (paused) deployment to running:
# `exchange-sync deploy` keeps an operator's stop. See docs/operations.md.
# deployments/example.yaml is an example: it is deployed only with `exchange-sync deploy --only example`.
"""


def render_prefect_yaml(settings: ProjectSettings, specs: list[DeploymentSpec]) -> str:
    import prefect

    doc = {
        "name": "exchange-sync",
        "prefect-version": prefect.__version__,
        "definitions": {SETTINGS_KEY: settings.to_yaml()},
        "deployments": [s.prefect_yaml_entry() for s in specs],
    }
    return PREFECT_YAML_HEADER + "\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=110)
