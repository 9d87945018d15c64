"""Protocol audit: the test servers report every request or response that breaks Microsoft's contract.

When ``EXCHANGE_SYNC_PROTOCOL_AUDIT`` names a directory, the EWS and Graph test servers (in-process or
subprocess: the variable is inherited) check each request they receive and each response they send
against Microsoft's published schemas (the MS-OXWS XSDs of the server's ``--exchange-version``, the
Graph v1.0 CSDL) and append one JSON line per violation to ``<dir>/violations-<pid>.jsonl``. The test
suite's plugin (``tests/conftest.py``) reads what a test caused and fails that test.

Without the variable nothing is checked beyond what the server itself enforces (a real Exchange
server rejects schema-invalid requests with ErrorSchemaValidation whatever the audit says).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

ENV = "EXCHANGE_SYNC_PROTOCOL_AUDIT"
_lock = threading.Lock()


def audit_dir() -> Path | None:
    """The directory violations go to, or None when auditing is off."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def enabled() -> bool:
    return audit_dir() is not None


def record(*, server: str, direction: str, operation: str, error: str, profile: str | None = None,
           excerpt: str | None = None) -> None:
    """Append one violation (``direction``: "request" or "response") to this process's audit file."""
    where = audit_dir()
    if where is None:
        return
    entry: dict[str, Any] = {"time": time.time(), "pid": os.getpid(), "server": server, "profile": profile,
                             "direction": direction, "operation": operation, "error": error}
    if excerpt:
        entry["excerpt"] = excerpt[:2000]
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    with _lock:
        where.mkdir(parents=True, exist_ok=True)
        # One open/append/close per entry: the reader (another process) sees it at once.
        with open(where / f"violations-{os.getpid()}.jsonl", "a", encoding="utf-8") as fh:
            fh.write(line)


class AuditReader:
    """Reads the violations appended since the last ``take()`` (the test plugin's side)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._offsets: dict[Path, int] = {}

    def take(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("violations-*.jsonl")):
            start = self._offsets.get(path, 0)
            with open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
            self._offsets[path] = start + len(complete)
            for raw in complete.splitlines():
                if raw.strip():
                    found.append(json.loads(raw))
        return found
