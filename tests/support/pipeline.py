"""Helpers for end-to-end pipeline tests: configs for the EWS test server, running the real CLI as a
subprocess, and snapshots of what a run left in the store (for "equals a clean run" comparisons).

    with running_server(accounts=[f"{ACCOUNT}:{pw}"], mailboxes=[...], grants=[...], tls=True, auth="ntlm") as srv:
        data = make_config(srv, tmp_path, ["ap@example.com"])
        proc = run_cli(data, tmp_path, env={PASSWORD_ENV: pw}, prefect_api=url)
        snap = snapshot(data)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ACCOUNT = "svc-sync@example.com"
PASSWORD_ENV = "EXSYNC_E2E_PASSWORD"


def make_config(srv: Any, tmp_path: Path, mailboxes: list[str | dict], *, store_url: str | None = None,
                name: str = "e2e", **extra: Any) -> dict:
    """An integration config (as a dict, the YAML's shape) for ``srv`` with files under ``tmp_path``."""
    boxes = [m if isinstance(m, dict) else {"email": m} for m in mailboxes]
    connection = {
        "kind": "ews",
        "server_url": srv.url,
        "auth": "ntlm",
        "username": ACCOUNT,
        "password": {"env": PASSWORD_ENV},
        "access_type": "delegate",
        "tls": {"verify": True, "ca_bundle": srv.ca_file},
        "max_backoff_s": 5,
    }
    connection.update(extra.pop("connection", {}))
    data = {
        "name": name,
        "connection": connection,
        "mailboxes": boxes,
        "destination": {"kind": "store", "url": store_url or f"sqlite:///{tmp_path / 'comments.db'}"},
        "staging": {"url": str(tmp_path / "staging")},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
    }
    # In-process transform unless a test asks for worker processes: spawning and warming a pool
    # costs ~1.5 s CPU per run, and the worker path has its own tests (tests/performance/).
    data.setdefault("transform_workers", 0)
    data.update(extra)
    return data


def write_config(data: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        """Died by SIGKILL (kill -9, or a crash point)."""
        return self.returncode == -signal.SIGKILL


def run_cli(data: dict, workdir: Path, *, env: dict[str, str], prefect_api: str, args: tuple[str, ...] = (),
            command: str = "run", timeout: float = 240) -> CliRun:
    """``exchange-sync <command> CONFIG --json`` in a fresh process (cwd ``workdir``)."""
    config = write_config(data, workdir / f"{data['name']}.yaml")
    full_env = {k: v for k, v in os.environ.items() if k not in ("EXCHANGE_SYNC_CRASH_AT",)}
    full_env.update({"PREFECT_API_URL": prefect_api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                     "DO_NOT_TRACK": "1"})
    full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "exchange_sync", command, str(config), *args],
        cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def source_key(data: dict) -> str:
    from exchange_sync.config import parse_config

    return parse_config(data).destination.source_key


def store_of(data: dict) -> Any:
    """The integration's embedded comment store (``destination.url``)."""
    from exchange_sync.store import SqlStore

    return SqlStore(data["destination"]["url"])


def flow_runner() -> Callable[..., tuple[dict | None, int]]:
    """``run(data, **kw)``: the real flow in this process (Prefect API from the environment);
    returns (run summary, exit code). For the ``sync`` fixtures of the e2e tests."""
    from exchange_sync.cli.common import run_flow
    from exchange_sync.config import parse_config

    def run(data: dict, **kw: Any) -> tuple[dict | None, int]:
        return run_flow(parse_config(data), **kw)

    return run


def all_comments(data: dict) -> dict:
    """id -> Comment, everything in the integration's embedded store."""
    store = store_of(data)
    try:
        out, after = {}, None
        while True:
            page, after = store.list_comments(source_key(data), after=after, limit=500)
            out.update({c.id: c for c in page})
            if not after or not page:
                return out
    finally:
        store.close()


def snapshot(data: dict) -> dict[str, dict]:
    """id -> the comment in API form (text, properties, attachments, ...): what two runs must agree on."""
    return {cid: c.to_api() for cid, c in all_comments(data).items()}


def billed_units(data: dict) -> int:
    """Usage units in the integration's ledger (all days, all mailboxes)."""
    from exchange_sync.config import parse_config
    from exchange_sync.pipeline.runtime import checkpoint_store

    cfg = parse_config(data)
    store = checkpoint_store(cfg)
    try:
        return sum(row.units for row in store.usage(cfg.name))
    finally:
        store.close()


def diff_snapshots(expected: dict[str, dict], actual: dict[str, dict], limit: int = 5) -> str:
    """A short human-readable difference ("" when equal), for assertion messages."""
    lines = []
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    if missing:
        lines.append(f"{len(missing)} missing: {missing[:limit]}")
    if extra:
        lines.append(f"{len(extra)} unexpected: {extra[:limit]}")
    changed = [cid for cid in sorted(set(expected) & set(actual)) if expected[cid] != actual[cid]]
    for cid in changed[:limit]:
        a, b = expected[cid], actual[cid]
        keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        detail = {k: (a.get(k), b.get(k)) for k in keys}
        lines.append(f"{cid[:24]}… differs in {keys}: {str(detail)[:400]}")
    if len(changed) > limit:
        lines.append(f"... {len(changed) - limit} more differ")
    return "\n".join(lines)
