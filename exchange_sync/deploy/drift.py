"""Edits made in the Prefect UI survive ``exchange-sync deploy``.

Every deployment ``exchange-sync deploy`` writes carries, in its ``version``, a hash of what it wrote
(parameters and schedules): ``exchange-sync:<hash>``. On the next deploy, a deployment whose current
parameters or schedules no longer hash to that value was edited since (the UI's "Edit", a schedule
added or changed): it is kept as it is, with a message, unless ``--force``. ``exchange-sync diff NAME``
shows what differs between the server and the configuration files.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

VERSION_PREFIX = "exchange-sync:"


def _schedule(schedule: Any, active: bool) -> dict[str, Any]:
    interval = getattr(schedule, "interval", None)
    if interval is not None:
        return {"interval": interval.total_seconds(), "active": bool(active)}
    cron = getattr(schedule, "cron", None)
    if cron is not None:
        return {"cron": cron, "timezone": getattr(schedule, "timezone", None) or "UTC", "active": bool(active)}
    rrule = getattr(schedule, "rrule", None)
    return {"rrule": str(rrule), "active": bool(active)}


def schedules_of(schedules: list) -> list[dict[str, Any]]:
    """Deployment schedules (server objects or ``DeploymentScheduleCreate``), comparable."""
    out = [_schedule(s.schedule, getattr(s, "active", True)) for s in schedules or []]
    return sorted(out, key=lambda d: json.dumps(d, sort_keys=True))


def state_of(parameters: dict, schedules: list) -> dict[str, Any]:
    return {"parameters": json.loads(json.dumps(parameters or {}, default=str)), "schedules": schedules_of(schedules)}


def digest(state: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]


def version_for(state: dict[str, Any]) -> str:
    return VERSION_PREFIX + digest(state)


def edited_since_written(deployment) -> list[str]:
    """What of a server deployment changed since ``exchange-sync deploy`` wrote it ([] when
    nothing, or when it was not written by a version of ``exchange-sync deploy`` that records it)."""
    version = deployment.version or ""
    if not version.startswith(VERSION_PREFIX):
        return []
    current = state_of(deployment.parameters, deployment.schedules)
    if version_for(current) == version:
        return []
    return ["parameters or schedule"]


def render_diff(name: str, deployed: dict[str, Any] | None, wanted: dict[str, Any]) -> str:
    """A unified diff (YAML) from the server's deployment to what the files would deploy."""
    import difflib

    import yaml

    def text(state: dict[str, Any] | None) -> list[str]:
        if state is None:
            return []
        return yaml.safe_dump(state, sort_keys=True, default_flow_style=False, width=110).splitlines(keepends=True)

    return "".join(difflib.unified_diff(text(deployed), text(wanted), fromfile=f"server: exchange-sync/{name}",
                                        tofile=f"files: exchange-sync/{name}"))
