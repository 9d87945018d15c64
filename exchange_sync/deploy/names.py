"""Names of deployments, concurrency limits and idempotency keys (one place, used by all)."""

from __future__ import annotations

import hashlib

FLOW_NAME = "exchange-sync"
BACKFILL_SUFFIX = "-backfill"
WATCH_SUFFIX = "-watch"
WATCH_TAG = "watch"  # on watch deployments (and so on their runs)
SHARD_INFIX = "-shard-"
INTEGRATION_TAG_PREFIX = "integration:"


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


def integration_tag(integration: str) -> str:
    return f"{INTEGRATION_TAG_PREFIX}{integration}"


def shard_of(email: str, shards: int) -> int:
    """Stable shard of a mailbox: a hash of the address, so adding a mailbox never moves the others."""
    return int(hashlib.sha256(email.lower().encode()).hexdigest(), 16) % shards


def server_label(connection) -> str:
    """The server an integration talks to, for people (descriptions, log lines): the EWS endpoint,
    or the Graph endpoint and tenant. (``connection.server_key`` is the machine name of the same.)"""
    if connection.kind == "graph":
        return f"{connection.graph_url}, tenant {connection.tenant_id}"
    return connection.server_url
