"""Fixtures for deployment tests: a project directory, the EWS test server, a real process worker.

Everything runs against the session's real Prefect server (``prefect_api``). Deployment runs go
through a real ``prefect worker start`` subprocess, which runs each flow run in its own process
from the deployment's pull step and entrypoint, as in production.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ews_testserver.testing import running_server

ACCOUNT = "svc-sync@example.com"


def write_project(root: Path, configs: list[dict], settings: dict | None = None) -> Path:
    (root / "deployments").mkdir(parents=True, exist_ok=True)
    for cfg in configs:
        (root / "deployments" / f"{cfg['name']}.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    if settings is not None:
        (root / "prefect.yaml").write_text(yaml.safe_dump({"definitions": {"exchange_sync": settings}}),
                                           encoding="utf-8")
    return root


def integration_config(name: str, srv, data_dir: Path, mailboxes: list[str], password_block: str,
                       **extra: Any) -> dict:
    data = {
        "name": name,
        "connection": {
            "server_url": srv.url, "auth": "ntlm", "username": ACCOUNT,
            "password": {"secret_block": password_block}, "access_type": "delegate",
            "tls": {"verify": True, "ca_bundle": srv.ca_file}, "max_backoff_s": 5,
        },
        "mailboxes": [{"email": m} for m in mailboxes],
        "destination": {"kind": "store", "url": f"sqlite:///{data_dir / (name + '-comments.db')}"},
        "staging": {"url": str(data_dir / f"{name}-staging")},
        "state": {"url": f"sqlite:///{data_dir / (name + '-state.db')}"},
    }
    data.update(extra)
    return data


def save_secret(name: str, value: str) -> None:
    from prefect.blocks.system import Secret

    Secret(value=value).save(name, overwrite=True)


def cli(*args: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from exchange_sync.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def wait_final(flow_run_ids: list, deadline_s: float = 240) -> dict:
    """Wait until every flow run is in a final state (a deadline against hangs, not a timing check)."""
    from prefect import get_client

    end = time.monotonic() + deadline_s
    runs: dict = {}
    with get_client(sync_client=True) as client:
        while True:
            runs = {i: client.read_flow_run(i) for i in flow_run_ids}
            if all(r.state and r.state.is_final() for r in runs.values()):
                return runs
            if time.monotonic() > end:
                raise AssertionError(f"flow runs not finished: {[(r.name, r.state_name) for r in runs.values()]}")
            time.sleep(1)


def run_logs(client, flow_run_id, wanted: Callable[[str], bool], timeout_s: float = 30.0) -> list[str]:
    """Every log message of a flow run (the API answers at most 200 per request), read again until one is
    ``wanted`` or ``timeout_s`` passed: a run's process sends its last logs in a batch that can arrive after
    its final state."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
    deadline = time.monotonic() + timeout_s
    while True:
        logs: list[str] = []
        while True:
            page = client.read_logs(log_filter=log_filter, limit=200, offset=len(logs))
            logs += [m.message for m in page]
            if len(page) < 200:
                break
        if any(wanted(m) for m in logs) or time.monotonic() > deadline:
            return logs
        time.sleep(0.5)


def api_text() -> str:
    """Everything the Prefect API serves about runs and deployments, as one text (secret scans):
    flow runs, task runs, artifacts, deployments, logs, variables."""
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter

    dumps: list[str] = []

    def every(read, **kw) -> list:
        out, offset = [], 0
        while True:  # the API serves at most 200 per request
            page = read(limit=200, offset=offset, **kw)
            out += page
            if len(page) < 200:
                return out
            offset += 200

    with get_client(sync_client=True) as client:
        for read, kw in ((client.read_flow_runs, {}), (client.read_task_runs, {}), (client.read_artifacts, {}),
                         (client.read_deployments, {}), (client.read_logs, {"log_filter": LogFilter()})):
            dumps += [item.model_dump_json() for item in every(read, **kw)]
        dumps += [v.model_dump_json() for v in client.read_variables(limit=200)]
    return "\n".join(dumps)


def schema_problems(schema: dict) -> list[str]:
    """What keeps the Prefect 3.9.1 UI from rendering the schema as titled, described form fields."""
    problems = []

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            if "oneOf" in node or "discriminator" in node:
                problems.append(f"{where}: oneOf/discriminator")
            for option in node.get("anyOf", []):
                if option.get("type") == "object" or "$ref" in option or "properties" in option:
                    problems.append(f"{where}: anyOf of objects")
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema, "schema")
    objects = [("parameters", schema)] + list((schema.get("definitions") or {}).items())
    for name, obj in objects:
        for prop, spec in (obj.get("properties") or {}).items():
            if not spec.get("title") or not spec.get("description"):
                problems.append(f"{name}.{prop}: no title or no description")
    return problems


@pytest.fixture(scope="module")
def password() -> str:
    return "pw-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def ews(password):
    boxes = ["a1@example.com=generate:12", "a2@example.com=generate:12", "b1@example.com=generate:12",
             "b2@example.com=generate:12", "g1@example.com=generate:3"]
    with running_server(accounts=[f"{ACCOUNT}:{password}"], mailboxes=boxes,
                        grants=[f"{ACCOUNT}={b.split('=')[0]}" for b in boxes], tls=True, auth="ntlm") as srv:
        yield srv


@pytest.fixture(scope="module")
def pool_name() -> str:
    return "exsync-test-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="module")
def worker_factory(prefect_api, tmp_path_factory):
    """``start(pool)`` runs a real process worker on ``pool`` until the module ends."""
    procs: list[subprocess.Popen] = []
    home = tmp_path_factory.mktemp("worker-home")

    def start(pool: str) -> subprocess.Popen:
        env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_HOME": str(home),
               "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        log = open(home / f"worker-{pool}.log", "wb")
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", pool, "--limit", "4"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        # The worker does not always exit on SIGTERM (measured): end its whole process group.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
