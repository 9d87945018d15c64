"""What an earlier run learnt about an EWS endpoint's version: saves exchangelib's ConvertId probe per run.

Kept per (integration, endpoint) in the state database through ``ServerInfoStore``; re-probed when older
than ``VERSION_MAX_AGE``, so an upgraded server is noticed within a day.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

from ...config import EwsConnection
from ..base import ServerInfoStore

log = logging.getLogger(__name__)

VERSION_MAX_AGE = timedelta(days=1)


def cached_version(store: ServerInfoStore, integration: str, conn: EwsConnection) -> tuple[str, str | None] | None:
    """The EWS API version (e.g. "Exchange2016") and the build the server reported (e.g. "15.1.2507.6")
    learnt earlier for this endpoint, if recent; None when a version is configured."""
    if conn.exchange_version:
        return None
    row = store.get_server_info(integration, conn.server_url)
    if row is None:
        return None
    data, learned_at = row
    if datetime.now(timezone.utc) - learned_at >= VERSION_MAX_AGE:
        return None
    try:
        info = json.loads(data)
    except ValueError:
        return None
    api_version = info.get("api_version") if isinstance(info, dict) else None
    return (api_version, info.get("build") or None) if api_version else None


def remember_version(store: ServerInfoStore, integration: str, conn: EwsConnection,
                     learned: tuple[str, str | None] | None) -> None:
    """Store ``learned`` unless a version is configured or it is what the cache holds already; never raises
    (a cache write must not fail a run)."""
    if learned is None or conn.exchange_version:
        return
    try:
        if cached_version(store, integration, conn) != learned:
            store.put_server_info(integration, conn.server_url,
                                  json.dumps({"api_version": learned[0], "build": learned[1]}),
                                  datetime.now(timezone.utc))
    except Exception:  # noqa: BLE001
        log.warning("could not cache the server version", exc_info=True)
