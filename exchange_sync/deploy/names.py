"""Names of deployments, concurrency limits and idempotency keys (one place, used by all)."""

from __future__ import annotations

import hashlib

# What a run needs to find its integration's deployments lives below the flows (tasks.deployments),
# like the server's label and limit (tasks.limits); named here too, for the deployment code.
from tasks.deployments import FLOW_NAME, INTEGRATION_TAG_PREFIX, WATCH_TAG, integration_tag
from tasks.limits import server_label

BACKFILL_SUFFIX = "-backfill"
WATCH_SUFFIX = "-watch"
SHARD_INFIX = "-shard-"

__all__ = ["BACKFILL_SUFFIX", "FLOW_NAME", "INTEGRATION_TAG_PREFIX", "SHARD_INFIX", "WATCH_SUFFIX", "WATCH_TAG",
           "backfill_deployment_name", "deployment_name", "full_name", "integration_tag", "server_label",
           "shard_of", "watch_deployment_name"]


def deployment_name(integration: str, shard: int | None = None, shards: int = 1) -> str:
    if shard is None or shards <= 1:
        return integration
    return f"{integration}{SHARD_INFIX}{shard + 1}-of-{shards}"


def backfill_deployment_name(integration: str) -> str:
    return f"{integration}{BACKFILL_SUFFIX}"


def watch_deployment_name(integration: str) -> str:
    return f"{integration}{WATCH_SUFFIX}"


def full_name(deployment: str) -> str:
    return f"{FLOW_NAME}/{deployment}"


def shard_of(email: str, shards: int) -> int:
    """Stable shard of a mailbox: a hash of the address, so adding a mailbox never moves the others."""
    return int(hashlib.sha256(email.lower().encode()).hexdigest(), 16) % shards
