"""``exchange-sync deploy``: register an integration's deployments and everything they need.

Creates (when missing) the process work pool and one global concurrency limit per Exchange server
(named ``EwsConnection.server_key``; an existing limit is left as the operator tuned it), then
upserts each deployment. Prefect's own ``prefect deploy`` resets ``paused`` to false on every
redeploy (measured on 3.9.1), silently restarting an integration an operator stopped: here the
current paused state is read first and sent back unchanged. A new deployment starts unpaused.
Deployments of a deployed integration that the new specs no longer contain (e.g. after a change
in the number of shards, or ``watch.enabled`` turned off) are deleted, so no stale shard keeps
syncing the same mailboxes; a deleted watch deployment's runs are cancelled first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from exchange_sync.deploy.control import cancel_watch_runs, integration_deployments
from exchange_sync.deploy.drift import edited_since_written, state_of, version_for
from exchange_sync.deploy.names import FLOW_NAME
from exchange_sync.deploy.spec import ENTRYPOINT, DeploymentSpec

log = logging.getLogger("exchange_sync.deploy")


@dataclass
class DeployResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept_paused: list[str] = field(default_factory=list)
    kept_edited: list[str] = field(default_factory=list)  # edited in the UI since the last deploy: left as is
    deleted: list[str] = field(default_factory=list)
    pools_created: list[str] = field(default_factory=list)
    limits_created: dict[str, int] = field(default_factory=dict)
    limits_existing: dict[str, int] = field(default_factory=dict)


def server_limits(specs: list[DeploymentSpec], overrides: dict[str, int] | None = None) -> dict[str, int]:
    """Slots per Exchange server: the largest ``concurrency.connections_per_server`` of the
    integrations on it (one slot = one mailbox syncing, which drives about one connection)."""
    limits: dict[str, int] = {}
    for spec in specs:
        key = spec.config.connection.server_key
        limits[key] = max(limits.get(key, 0), spec.config.concurrency.connections_per_server)
    limits.update(overrides or {})
    return limits


def ensure_work_pool(client, name: str) -> bool:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        client.read_work_pool(name)
        return False
    except ObjectNotFound:
        pass
    try:
        client.create_work_pool(WorkPoolCreate(name=name, type="process",
                                               description="exchange-sync process workers"))
        return True
    except ObjectAlreadyExists:  # created concurrently
        return False


def ensure_limit(client, name: str, limit: int) -> tuple[bool, int]:
    """(created?, the limit now in force)."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        existing = client.read_global_concurrency_limit_by_name(name)
        return False, existing.limit
    except ObjectNotFound:
        pass
    try:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit, active=True))
        return True, limit
    except ObjectAlreadyExists:
        return False, client.read_global_concurrency_limit_by_name(name).limit


def _flow_schema(entrypoint: str = ENTRYPOINT) -> dict:
    """The parameter schema of the flow at ``entrypoint`` (``module:function``), imported only here:
    deploy depends on the flows at registration time, never at import time."""
    from exchange_sync.imports import resolve

    return flow_schema(resolve(entrypoint))


def flow_schema(flow_fn) -> dict:
    """The flow's parameter schema as registered: Prefect's, with the titles and descriptions of
    ``forms.PARAMETERS`` (Prefect titles a parameter with its bare name, and has no description)."""
    from prefect.utilities.callables import parameter_schema

    from exchange_sync.forms import PARAMETERS

    schema = parameter_schema(flow_fn).model_dump(exclude_unset=True)
    for name, prop in schema.get("properties", {}).items():
        if name in PARAMETERS:
            prop["title"], prop["description"] = PARAMETERS[name]
    return schema


def apply(specs: list[DeploymentSpec], project: Path, *, limit_overrides: dict[str, int] | None = None,
          force: bool = False) -> DeployResult:
    """Register ``specs`` (sync Prefect client); ``project`` is the working directory of the runs
    (relative paths in the configurations, e.g. SQLite files, resolve against it)."""
    from prefect import get_client
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy, ConcurrencyOptions
    from prefect.exceptions import ObjectNotFound

    result = DeployResult()
    schemas = {s.entrypoint: _flow_schema(s.entrypoint) for s in specs}
    pull_steps = [{"prefect.deployments.steps.set_working_directory": {"directory": str(project.resolve())}}]
    with get_client(sync_client=True) as client:
        for pool in sorted({s.work_pool for s in specs}):
            if ensure_work_pool(client, pool):
                result.pools_created.append(pool)
        for name, limit in sorted(server_limits(specs, limit_overrides).items()):
            created, in_force = ensure_limit(client, name, limit)
            (result.limits_created if created else result.limits_existing)[name] = in_force
        flow_id = client.create_flow_from_name(FLOW_NAME)
        wanted = {s.name for s in specs}
        for integration in sorted({s.integration for s in specs}):
            for stale in integration_deployments(client, integration):
                if stale.name not in wanted:
                    cancel_watch_runs(client, [stale])  # watch turned off: its watcher must not run on
                    client.delete_deployment(stale.id)
                    result.deleted.append(stale.name)
        for spec in specs:
            try:
                existing = client.read_deployment_by_name(f"{FLOW_NAME}/{spec.name}")
            except ObjectNotFound:
                existing = None
            if existing is not None and not force and edited_since_written(existing):
                result.kept_edited.append(spec.name)  # an operator's edit: never reverted silently
                continue
            paused = bool(existing.paused) if existing is not None else False
            schedules = spec.schedule_objects()
            client.create_deployment(  # an upsert on (flow, name)
                flow_id=flow_id,
                name=spec.name,
                version=version_for(state_of(spec.parameters, schedules)),
                description=spec.description,
                tags=spec.tags,
                parameters=spec.parameters,
                parameter_openapi_schema=schemas[spec.entrypoint],
                enforce_parameter_schema=True,
                entrypoint=spec.entrypoint,
                pull_steps=pull_steps,
                work_pool_name=spec.work_pool,
                work_queue_name=spec.work_queue,
                schedules=schedules,
                concurrency_limit=spec.concurrency["limit"],
                concurrency_options=ConcurrencyOptions(
                    collision_strategy=ConcurrencyLimitStrategy(spec.concurrency["collision_strategy"])),
                paused=paused,
            )
            (result.updated if existing is not None else result.created).append(spec.name)
            if paused:
                result.kept_paused.append(spec.name)
    return result
