"""Which destination serves which ``destination.kind``: the one place the pipeline looks.

Adding a kind: a class implementing ``base.Destination`` with ``from_config(config, *, state,
checkpoints)``, its model in ``config.py`` (a ``kind`` literal in the ``destination`` union), and one line
in ``DESTINATIONS``. Modules are imported on first use (the embedded store never loads an HTTP client).
"""

from __future__ import annotations

from exchange_sync.config import IntegrationConfig
from exchange_sync.imports import resolve
from exchange_sync.store import SqlStore, StateStore

from .base import Destination

DESTINATIONS: dict[str, str] = {  # destination.kind -> "module:Class"
    "store": "exchange_sync.destinations.store:SqlStoreDestination",
    "reinfer": "exchange_sync.destinations.reinfer:ReinferCommentsDestination",
    "reinfer_bucket": "exchange_sync.destinations.bucket:ReinferBucketEmailsDestination",
}


def checkpoints_url(config: IntegrationConfig) -> str:
    """The database of an integration's watermarks and usage: the comment store itself when the
    destination is the embedded store (one transaction with the comments), else the state database."""
    dest = config.destination
    return dest.url if dest.kind == "store" else config.state.url


def open_destination(config: IntegrationConfig, *, state: StateStore, checkpoints: SqlStore) -> Destination:
    """The destination of ``config`` (secrets resolved now). ``state``: the state database (remote kinds keep
    their ledgers there); ``checkpoints``: the database at ``checkpoints_url(config)``."""
    return resolve(DESTINATIONS[config.destination.kind]).from_config(config, state=state, checkpoints=checkpoints)
