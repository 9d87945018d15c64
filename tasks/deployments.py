"""An integration's deployments as a run sees them (Prefect client code, below the flows).

The deployments of an integration (the poll, its shards, the backfill one, the watch) carry the tag
``integration:<name>``, which is how they are found. A run that must stop its integration (bad
credentials, the destination's quota: ``exchange_sync.pipeline.outcome``) pauses them all
(``pause_current_integration``) and cancels a running watcher. ``exchange_sync.deploy`` (registering,
``exchange-sync stop/start``) uses the same lookups.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

log = logging.getLogger("exchange_sync.deploy")

FLOW_NAME = "exchange-sync"
WATCH_TAG = "watch"  # on watch deployments (and so on their runs)
INTEGRATION_TAG_PREFIX = "integration:"


def integration_tag(integration: str) -> str:
    return f"{INTEGRATION_TAG_PREFIX}{integration}"


@dataclass(frozen=True)
class DeploymentInfo:
    id: UUID
    name: str
    paused: bool
    watch: bool = False


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
