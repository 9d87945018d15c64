"""The per-Exchange-server slot a flow holds while one mailbox talks to Exchange (Prefect code at
run time, below the flows; ``exchange_sync.deploy`` creates the limits of the servers it deploys).

EWS throttling budgets are per service account and server, and several integrations (and shards of
one) may share a server: a Prefect *global* concurrency limit named after the server
(``EwsConnection.server_key``) caps how many mailboxes sync against it at once, across all runs.

Scope: one slot per mailbox sync, not per flow run. A run-wide slot would let one long backfill
starve every other integration's 5-minute poll on the same server; per mailbox, a run only holds
the server while it actually talks to it, and other runs interleave mailbox by mailbox.

Strictness: Prefect silently skips an unknown limit name when ``strict=False`` (no limit at all).
Under a deployment the limit is created by ``exchange-sync deploy`` for the servers of the files, and
by the run itself (``ensure_server_limit``, ``connections_per_server`` slots) for a server it is the
first to use: a custom run with another server URL needs no deploy step. The slot is then taken
strictly (``strict=True``): a limit deleted meanwhile fails the mailbox loudly. A plain ``exchange-sync run`` honours the limit
when it exists (strictly) and runs unlimited otherwise (a laptop or CI has no deploy step).
``EXCHANGE_SYNC_SERVER_LIMIT=1`` requires the limit everywhere, ``=0`` never takes a slot.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

log = logging.getLogger("exchange_sync.limits")

# Set to "1" to require the limit outside deployments too, "0" to never acquire one.
STRICT_ENV = "EXCHANGE_SYNC_SERVER_LIMIT"


def running_under_deployment() -> bool:
    from prefect.runtime import deployment

    try:
        return deployment.id is not None
    except Exception:  # noqa: BLE001 - no run context: not a deployment
        return False


def _limit_exists(name: str) -> bool:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return True
        except ObjectNotFound:
            return False


def slot_mode(server_key: str | None = None) -> str:
    """``strict`` (the limit must exist) or ``off``, decided once per flow run.

    Outside a deployment the limit is used when it exists (checked here once, instead of Prefect
    warning "do not exist - skipping acquisition" for every mailbox)."""
    forced = os.environ.get(STRICT_ENV)
    if forced == "0":
        return "off"
    if forced == "1" or running_under_deployment():
        return "strict"
    if server_key is not None and _limit_exists(server_key):
        return "strict"
    return "off"


@contextlib.contextmanager
def server_slot(server_key: str, mode: str | None = None) -> Iterator[None]:
    """Hold one slot of the server's global concurrency limit for the duration of the block."""
    mode = mode or slot_mode(server_key)
    if mode == "off":
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(server_key, occupy=1, strict=(mode == "strict")):
        yield


def ensure_server_limit(server_key: str, slots: int) -> bool:
    """Create the server's global concurrency limit when it does not exist (a run under a deployment
    on a server no ``exchange-sync deploy`` has seen, e.g. a custom run with another server URL).
    Returns whether it was created; an existing limit is left as the operator tuned it."""
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(server_key)
            return False
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=server_key, limit=slots,
                                                                                active=True))
            return True
        except ObjectAlreadyExists:  # another run created it meanwhile
            return False


def server_label(connection) -> str:
    """The server an integration talks to, for people (descriptions, log lines): the EWS endpoint,
    or the Graph endpoint and tenant. (``connection.server_key`` is the machine name of the same,
    and the name of its concurrency limit.)"""
    if connection.kind == "graph":
        return f"{connection.graph_url}, tenant {connection.tenant_id}"
    return connection.server_url
