"""Start/stop an integration: pause and resume its deployments (what the UI toggle does).

An integration may have several deployments (the scheduled one, its shards, the backfill one):
they carry the tag ``integration:<name>``, which is how they are found. Pausing deletes the
future scheduled runs; resuming lets the scheduler create them again (within about a minute).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from exchange_sync.deploy.names import FLOW_NAME, integration_tag

log = logging.getLogger("exchange_sync.deploy")


@dataclass(frozen=True)
class DeploymentInfo:
    id: UUID
    name: str
    paused: bool


class NoSuchIntegration(LookupError):
    pass


def integration_deployments(client, integration: str) -> list[DeploymentInfo]:
    """The deployments of an integration (sync client), sorted by name."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags, FlowFilter, FlowFilterName

    found = client.read_deployments(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME])),
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[integration_tag(integration)])),
    )
    return sorted((DeploymentInfo(id=d.id, name=d.name, paused=bool(d.paused)) for d in found), key=lambda d: d.name)


def set_paused(integration: str, paused: bool) -> list[DeploymentInfo]:
    """Pause (stop) or resume (start) every deployment of the integration; returns them as they are now."""
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
        return [DeploymentInfo(id=d.id, name=d.name, paused=paused) for d in deployments]


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
        log.warning("paused deployments %s of %s: %s", ", ".join(paused) or "(already paused)", integration, reason)
        return paused
