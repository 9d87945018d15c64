"""What an integration's deployments look like, derived from its configuration and project settings.

One integration (``deployments/<file>.yaml``) gives:
- ``<name>``: the scheduled poll (incremental), interval schedule, deployment concurrency limit 1 with
  ``CANCEL_NEW`` so polls never overlap (a poll that finds the previous one still running is dropped,
  the next tick catches up from the watermarks);
- with ``shards: N`` (large tenants), ``<name>-shard-i-of-N`` instead: the same configuration, each
  restricted to a stable subset of the mailboxes through the top-level ``mailboxes`` parameter;
- ``<name>-backfill``: no schedule, concurrency 1 with ``ENQUEUE``: backfill chunks queue behind each
  other instead of being cancelled by a running poll (they never touch watermarks, so they may run
  beside the polls; the per-server limit bounds the load on Exchange).

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
from exchange_sync.deploy.names import (
    FLOW_NAME,
    backfill_deployment_name,
    deployment_name,
    integration_tag,
    server_label,
    shard_of,
)

ENTRYPOINT = "flows.sync_integration:sync_integration"  # a module path: works from any working directory
# Deployments use the flows with union-free parameters, which the Prefect UI renders as a form
# (exchange_sync.deploy.form, .graph_form); ENTRYPOINT (the whole configuration as one `config`
# parameter) is for `exchange-sync run` and for connection kinds without a form.
FORM_ENTRYPOINTS = {"ews": "flows.sync_integration:sync_ews", "graph": "flows.sync_graph:sync_graph"}
FORM_ENTRYPOINT = FORM_ENTRYPOINTS["ews"]
DEFAULT_POOL = "exchange-sync"
DEFAULT_INTERVAL_S = 300
SETTINGS_KEY = "exchange_sync"  # under `definitions:` in prefect.yaml


@dataclass
class ProjectSettings:
    """``definitions.exchange_sync`` of prefect.yaml (all optional)."""

    work_pool: str = DEFAULT_POOL
    work_queue: str | None = None
    interval_s: int = DEFAULT_INTERVAL_S
    cron: str | None = None
    timezone: str | None = None
    # Per integration: {shards: N, interval_s: S, cron: "...", server_limit: L}
    integrations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_integration(self, name: str, key: str, default: Any) -> Any:
        return self.integrations.get(name, {}).get(key, default)

    def to_yaml(self) -> dict[str, Any]:
        data: dict[str, Any] = {"work_pool": self.work_pool, "interval_s": self.interval_s}
        for key in ("work_queue", "cron", "timezone"):
            if getattr(self, key):
                data[key] = getattr(self, key)
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
    interval_s: int | None = DEFAULT_INTERVAL_S
    cron: str | None = None
    timezone: str | None = None
    work_pool: str = DEFAULT_POOL
    work_queue: str | None = None

    @property
    def tags(self) -> list[str]:
        tags = [FLOW_NAME, integration_tag(self.integration)]
        return tags + (["backfill"] if self.backfill else [])

    @property
    def form(self) -> bool:
        return self.config.connection.kind in FORM_ENTRYPOINTS

    @property
    def entrypoint(self) -> str:
        return FORM_ENTRYPOINTS.get(self.config.connection.kind, ENTRYPOINT)

    @property
    def parameters(self) -> dict[str, Any]:
        if self.form:
            from exchange_sync.deploy.form import form_parameters

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
        sched: dict[str, Any] = {"cron": self.cron} if self.cron else {"interval": self.interval_s}
        if self.timezone:
            sched["timezone"] = self.timezone
        return [sched]

    def schedule_objects(self) -> list:
        from prefect.client.schemas.actions import DeploymentScheduleCreate
        from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

        if self.backfill:
            return []
        if self.cron:
            schedule = CronSchedule(cron=self.cron, timezone=self.timezone or "UTC")
        else:
            schedule = IntervalSchedule(interval=timedelta(seconds=self.interval_s or DEFAULT_INTERVAL_S))
        return [DeploymentScheduleCreate(schedule=schedule, active=True)]

    @property
    def description(self) -> str:
        what = "backfill runs (submit with `exchange-sync backfill NAME`)" if self.backfill else "scheduled sync"
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


def config_parameter(config: IntegrationConfig) -> dict[str, Any]:
    """The configuration as a JSON parameter: only what differs from the defaults, so the UI shows
    what the file says and a later default change reaches deployed integrations."""
    data = config.model_dump(mode="json", exclude_defaults=True, exclude_none=True) | {"name": config.name}
    # The union discriminators must be explicit: the server validates parameters against the JSON
    # schema, where {url: ...} alone matches several destination kinds (oneOf fails). Where the
    # data goes is worth showing in the UI anyway, defaults included.
    data["connection"] = {"kind": config.connection.kind, **data.get("connection", {})}
    for key in ("destination", "staging", "state"):
        data[key] = getattr(config, key).model_dump(mode="json", exclude_none=True)
    return data


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
        common = dict(
            integration=cfg.name, config=cfg, source_file=rel,
            interval_s=int(settings.for_integration(cfg.name, "interval_s", settings.interval_s)),
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
