"""Shared fixtures: a real Prefect API server for the tests that run flows.

The server is a real `prefect server start` on a free loopback port with a throw-away
PREFECT_HOME (migrated on first start: ~20-30 s on 2 cores), shared by the whole session.
If PREFECT_API_URL is already set, that server is used instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import tempfile

import pytest

from testserver_core import audit

pytest_plugins = ["tests.support.fixtures"]

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

# Every EWS and Graph test server started by the suite (in-process or as a subprocess, which inherits
# the variable) checks its traffic against Microsoft's schemas and reports violations here.
# Under pytest-xdist every worker needs its own directory (the controller's would be inherited, and
# one worker's test would then fail for a violation seen during another worker's test).
if os.environ.get("PYTEST_XDIST_WORKER") or not os.environ.get(audit.ENV):
    os.environ[audit.ENV] = tempfile.mkdtemp(prefix="exchange-sync-protocol-audit-")
_AUDIT = audit.AuditReader(Path(os.environ[audit.ENV]))

CORPUS = Path(os.environ.get("EXCHANGE_SYNC_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real-world-emails")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """The URL of a running Prefect API; the process environment points at it for the session."""
    existing = os.environ.get("PREFECT_API_URL")
    if existing:
        yield existing
        return
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "wb")
    prefect_bin = Path(sys.executable).with_name("prefect")
    proc = subprocess.Popen(
        [str(prefect_bin), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 240
    while not _healthy(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.fail("prefect server did not start:\n" + (home / "server.log").read_text()[-4000:])
        time.sleep(0.5)
    os.environ["PREFECT_API_URL"] = url
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        try:  # send buffered run logs while the server is still up (else: noise at interpreter exit)
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)
        except Exception:  # noqa: BLE001 - best effort
            pass
        os.environ.pop("PREFECT_API_URL", None)
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared real-world corpus is not at {CORPUS}")
    return CORPUS


@pytest.fixture(autouse=True)
def protocol_audit(request):
    """Fail the test during which a test server saw a request or sent a response that Microsoft's
    schemas reject (violations from a shared fixture's setup count against the first test using it).
    ``@pytest.mark.allow_protocol_violations(directions=("request",))`` marks a test that sends invalid
    requests on purpose (e.g. to see the server reject them)."""
    yield
    found = _AUDIT.take()
    marker = request.node.get_closest_marker("allow_protocol_violations")
    if marker is not None:
        allowed = set(marker.kwargs.get("directions", ("request", "response")))
        found = [v for v in found if v.get("direction") not in allowed]
    if found:
        lines = [f"- {v.get('server')} {v.get('profile') or ''} {v.get('direction')} {v.get('operation')}: "
                 f"{v.get('error')}" for v in found[:10]]
        more = f"\n... and {len(found) - 10} more" if len(found) > 10 else ""
        pytest.fail(f"{len(found)} protocol violation(s) against Microsoft's schemas:\n" + "\n".join(lines) + more,
                    pytrace=False)
