"""Start/stop an integration: pause and resume its deployments (what the UI toggle does).

An integration may have several deployments (the scheduled one, its shards, the backfill one, the
watch): they carry the tag ``integration:<name>``, which is how they are found. Pausing deletes the
future scheduled runs; resuming lets the scheduler create them again (within about a minute).

The watch deployment's flow run lasts until cancelled, and pausing a deployment leaves its running
flow runs alone: stopping an integration therefore also cancels its watch runs (Cancelling: the
worker sends SIGTERM, the watch ends after the pages in flight), and starting it creates a watch run
at once rather than at the next restart check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from exchange_sync.deploy.names import FLOW_NAME, WATCH_TAG, integration_tag

log = logging.getLogger("exchange_sync.deploy")


@dataclass(frozen=True)
class DeploymentInfo:
    id: UUID
    name: str
    paused: bool
    watch: bool = False


class NoSuchIntegration(LookupError):
    pass


def integration_deployments(client, integration: str) -> list[DeploymentInfo]:
    """The deployments of an integration (sync client), sorted by name."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterTags,
        FlowFilter,
        FlowFilterName,
    )

    found = client.read_deployments(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[integration_tag(integration)])),
    )
    return sorted((DeploymentInfo(id=d.id, name=d.name, paused=bool(d.paused), watch=WATCH_TAG in (d.tags or []))
                   for d in found), key=lambda d: d.name)


def _active_runs(client, deployment_ids: list[UUID]) -> list:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    active = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=deployment_ids)),
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=active))),
    )


def cancel_watch_runs(client, deployments: list[DeploymentInfo]) -> list[str]:
    """Cancel the active runs of the watch deployments (as the UI's Cancel): a running one is set
    Cancelling (its worker ends it gracefully), a scheduled or pending one Cancelled. Returns their names."""
    from prefect.states import Cancelled, Cancelling

    ids = [d.id for d in deployments if d.watch]
    if not ids:
        return []
    cancelled = []
    for run in _active_runs(client, ids):
        running = run.state is not None and run.state.is_running()
        state = Cancelling(message="stopped by exchange-sync stop") if running else \
            Cancelled(message="stopped by exchange-sync stop")
        client.set_flow_run_state(run.id, state, force=True)
        cancelled.append(run.name)
    return cancelled


def start_watch_runs(client, deployments: list[DeploymentInfo]) -> list[str]:
    """A watch run now for each watch deployment that has none active (instead of waiting for the
    next restart check). Returns the names of the runs created."""
    started = []
    for d in deployments:
        if d.watch and not _active_runs(client, [d.id]):
            started.append(client.create_flow_run_from_deployment(d.id).name)
    return started


@dataclass(frozen=True)
class Toggled:
    deployments: list[DeploymentInfo]
    watch_runs_cancelled: list[str]
    watch_runs_started: list[str]


def set_paused(integration: str, paused: bool) -> Toggled:
    """Pause (stop) or resume (start) every deployment of the integration, and cancel (stop) or start
    (start) its watch runs; returns the deployments as they are now and the watch runs touched."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        deployments = integration_deployments(client, integration)
        if not deployments:
            raise NoSuchIntegration(
                f"no deployment of integration {integration!r} on this Prefect server (run `exchange-sync deploy`)"
            )
        for d in deployments:
            if d.paused != paused:
                (client.pause_deployment if paused else client.resume_deployment)(d.id)
        cancelled = cancel_watch_runs(client, deployments) if paused else []
        started = [] if paused else start_watch_runs(client, deployments)
        return Toggled([DeploymentInfo(id=d.id, name=d.name, paused=paused, watch=d.watch) for d in deployments],
                       cancelled, started)


def pause_current_integration(integration: str, reason: str) -> list[str]:
    """Called by a flow run that hit ``invalid_exchange_credentials`` under a deployment: stop the
    integration (every poll would fail the same way and could lock the service account out).
    Returns the names of the deployments paused; nothing when not running under a deployment."""
    from prefect import get_client
    from prefect.runtime import deployment

    if deployment.id is None:
        return []
    with get_client(sync_client=True) as client:
        targets = integration_deployments(client, integration)
        ids = {d.id for d in targets}
        current = UUID(str(deployment.id))
        if current not in ids:  # deployed by hand without our tags: pause at least this one
            targets.append(DeploymentInfo(id=current, name=str(deployment.name), paused=False))
        paused = []
        for d in targets:
            if not d.paused:
                client.pause_deployment(d.id)
                paused.append(d.name)
        # A watcher of the same integration would fail the same way (and keep logging on): cancel it,
        # unless it is this run.
        cancel_watch_runs(client, [d for d in targets if d.id != current])
        log.warning("paused deployments %s of %s: %s", ", ".join(paused) or "(already paused)", integration, reason)
        return paused
