"""Prefect settings this product needs, applied before Prefect is imported.

Only defaults: anything the operator set in the environment or a Prefect profile wins.
- The ephemeral API server (used when no PREFECT_API_URL is configured) migrates its database on
  first start, which takes ~30 s on a fresh 2-core machine against a 20 s default timeout.
- Analytics off: this product runs in closed networks, and the telemetry heartbeat is a known
  source of "database is locked" noise on SQLite.
"""

from __future__ import annotations

import os

DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


def configure_prefect_defaults() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
