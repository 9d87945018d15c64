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

from tasks.deployments import DeploymentInfo, _active_runs, cancel_watch_runs, integration_deployments

log = logging.getLogger("exchange_sync.deploy")

__all__ = ["DeploymentInfo", "NoSuchIntegration", "Toggled", "cancel_watch_runs", "integration_deployments",
           "set_paused", "start_watch_runs"]


class NoSuchIntegration(LookupError):
    pass


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
