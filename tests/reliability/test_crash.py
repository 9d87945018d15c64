"""Crash safety: kill -9 the real CLI at every crash point (and at later hits, mid-mailbox), rerun,
and the store equals a clean run's on the same mail, with every distinct comment billed exactly once.

Each cycle is a fresh set of databases and staging against one EWS test server (HTTPS + NTLM) whose
mail does not change during the module. ``EXCHANGE_SYNC_CRASH_AT=<point>:<n>`` makes the process
SIGKILL itself the n-th time it reaches the point (exchange_sync/pipeline/crashpoints.py).
"""

from __future__ import annotations

import secrets

import pytest

from ews_testserver.testing import make_mime, running_server
from exchange_sync.pipeline.crashpoints import ENV as CRASH_ENV
from exchange_sync.pipeline.crashpoints import POINTS
from tests.support.pipeline import (
    ACCOUNT,
    PASSWORD_ENV,
    billed_units,
    diff_snapshots,
    make_config,
    run_cli,
    snapshot,
)

pytestmark = pytest.mark.timeout(900)

PASSWORD = "crash-" + secrets.token_hex(8)
MAILBOXES = ["ap@example.com", "support@example.com"]

# Each cycle: the crash specs of consecutive killed runs (each run resumes from what the previous one
# committed), then one run without a crash point. Small pages (batch_size 3) make many pages per
# folder, so later hits land mid-folder and in the second mailbox. Two crashes per cycle keep the
# module near its time budget (every CLI run pays Prefect's ~6 s import on a busy 2-core machine).
CYCLES = [
    ["after_sync_page:2", "after_load:5"],
    ["after_stage:3", "before_load:7"],
    ["after_transform:4", "before_load:1"],
]


@pytest.fixture(scope="module")
def srv():
    with running_server(accounts=[f"{ACCOUNT}:{PASSWORD}"],
                        mailboxes=["ap@example.com=generate:14", "support@example.com=generate:6"],
                        grants=[f"{ACCOUNT}={m}" for m in MAILBOXES], tls=True, auth="ntlm") as server:
        # The same message in both mailboxes (one comment) and a message without a Message-ID.
        shared = make_mime("Shared invoice", "<crash-cc@acme.com>", to="ap@example.com, support@example.com")
        server.add_message("ap@example.com", shared)
        server.add_message("support@example.com", shared, "Inbox/Escalations")
        server.add_message("ap@example.com", make_mime("no id", "<x@y>").replace(b"Message-ID: <x@y>\r\n", b""))
        yield server


def _config(srv, tmp_path):
    return make_config(srv, tmp_path, MAILBOXES, batch_size=3, fetch_chunk_size=2,
                       concurrency={"mailboxes": 1, "connections_per_server": 2})


@pytest.fixture(scope="module")
def clean(srv, tmp_path_factory, prefect_api):
    """The store of an uninterrupted run on the same mail."""
    tmp = tmp_path_factory.mktemp("clean")
    data = _config(srv, tmp)
    run = run_cli(data, tmp, env={PASSWORD_ENV: PASSWORD}, prefect_api=prefect_api)
    assert run.returncode == 0, run.stderr[-3000:]
    snap = snapshot(data)
    assert len(snap) >= 18  # 20 generated (some are CC copies), the shared one, the id-less one
    assert billed_units(data) == len(snap)
    return snap


def test_crash_points_cover_the_pipeline():
    points = {spec.split(":")[0] for cycle in CYCLES for spec in cycle}
    assert points == set(POINTS)


@pytest.mark.parametrize("crashes", CYCLES, ids=["+".join(c) for c in CYCLES])
def test_kill_and_rerun_equals_a_clean_run(srv, clean, tmp_path, prefect_api, crashes):
    data = _config(srv, tmp_path)
    for spec in crashes:
        run = run_cli(data, tmp_path, env={PASSWORD_ENV: PASSWORD, CRASH_ENV: spec}, prefect_api=prefect_api)
        assert run.killed, f"{spec}: expected a SIGKILL, got exit {run.returncode}\n{run.stderr[-2000:]}"
    run = run_cli(data, tmp_path, env={PASSWORD_ENV: PASSWORD}, prefect_api=prefect_api)
    assert run.returncode == 0, run.stderr[-3000:]
    got = snapshot(data)
    assert got == clean, diff_snapshots(clean, got)
    # No double billing: the crashed runs and the rerun together bill each distinct comment once.
    assert billed_units(data) == len(got)
