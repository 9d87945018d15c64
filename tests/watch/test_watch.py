"""`exchange-sync watch` against the EWS test server's real notifications (Subscribe, GetStreamingEvents,
GetEvents): events lead to syncs, a killed subscription or a dropped connection loses nothing, two
writers never overlap, fallbacks are reported, SIGTERM stops cleanly."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from exchange_sync.config import parse_config
from exchange_sync.pipeline.mailbox import sync_mailbox
from exchange_sync.pipeline.runtime import Runtime
from exchange_sync.store import SqlStore
from exchange_sync.store.leases import hold_mailbox
from tests.support.pipeline import PASSWORD_ENV, billed_units, diff_snapshots, snapshot, write_config

from .conftest import folders_of, mail, message_ids, wait_for, watch_config, watch_modes

pytestmark = pytest.mark.timeout(180)

A, B = "a@example.com", "b@example.com"


def clean_run(srv, tmp_path, mailboxes: list[str], access_type: str = "delegate") -> dict:
    """A fresh store synced once by the plain pipeline: what the watched store must equal."""
    data = watch_config(srv, tmp_path / "clean", mailboxes, access_type=access_type)
    rt = Runtime.open(parse_config(data))
    try:
        for mb in rt.config.mailboxes:
            assert sync_mailbox(rt, mb).status == "ok"
    finally:
        rt.close()
    return data


def test_cli_events_become_comments_and_sigterm_stops_cleanly(ews, password, tmp_path):
    srv = ews([f"{A}=generate:3", f"{B}=generate:2"])
    data = watch_config(srv, tmp_path, [A, B])
    config = write_config(data, tmp_path / "watch.yaml")
    env = {**os.environ, PASSWORD_ENV: password}
    proc = subprocess.Popen([sys.executable, "-m", "exchange_sync", "watch", str(config), "--json"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: set(watch_modes(data).values()) == {"streaming"}, 90, "both mailboxes streaming")
        wait_for(lambda: len(message_ids(data)) >= 5, 60, "the catch-up sync")
        mid, mime = mail(1, A)
        srv.add_message(A, mime)
        wait_for(lambda: mid in message_ids(data), 30, "the new mail as a comment")
        srv.move(A, mid, "Deleted Items")
        wait_for(lambda: folders_of(data).get(mid) == "Deleted Items", 30, "the comment's folder to follow the move")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["stopped_by"] == "signal" and summary["error"] is None
    assert {m["mode"] for m in summary["mailboxes"]} == {"streaming"}
    assert sum(m["events"] for m in summary["mailboxes"]) >= 2
    log = srv.log()
    assert not [e for e in log if e["write"]], "the watch only reads"
    assert sum(e["operation"] == "Unsubscribe" for e in log) == 2, "each subscription removed at the stop"
    assert set(watch_modes(data).values()) == {"stopped"}
    assert "SIGTERM received" in err
    status = subprocess.run([sys.executable, "-m", "exchange_sync", "status", str(config)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    line = next(x for x in status.stdout.splitlines() if x.startswith(f"watch: {A}: "))
    assert "stopped" in line and "last sync 20" in line and "lag " in line, line


def test_killed_subscriptions_and_dropped_connections_lose_nothing(ews, tmp_path, watching):
    # B starts empty: generated mail CC'd between mailboxes would be one comment with the metadata of
    # the copy synced last, an order a clean run need not share. Impersonation here (each Subscribe
    # impersonates its mailbox, the shared connection its anchor), delegate access in the CLI test.
    srv = ews([f"{A}=generate:4", f"{B}="], impersonation=True)
    data = watch_config(srv, tmp_path, [A, B], access_type="impersonation")
    run = watching(data)
    wait_for(lambda: set(watch_modes(data).values()) == {"streaming"}, 60, "streaming")
    wait_for(lambda: len(message_ids(data)) >= 4, 60, "the catch-up sync")

    assert srv.kill_subscriptions(), "the server had subscriptions to kill"
    sent = []
    for n, box in ((1, A), (2, B)):  # while nobody listens
        mid, mime = mail(n, box)
        srv.add_message(box, mime)
        sent.append(mid)
    wait_for(lambda: set(sent) <= message_ids(data), 60, "mail sent while the subscriptions were dead")

    wait_for(lambda: srv.notifications()["connections"], 30, "a new streaming connection")
    assert srv.drop_streams() >= 1
    for n, box in ((3, A), (4, B)):
        mid, mime = mail(n, box)
        srv.add_message(box, mime)
        sent.append(mid)
    srv.move(B, sent[1], "Deleted Items")
    wait_for(lambda: set(sent) <= message_ids(data) and folders_of(data).get(sent[1]) == "Deleted Items", 60,
             "mail sent around the dropped connection, and the move")

    # Throttled reconnection: the next three GetStreamingEvents answer ErrorServerBusy (BackOffMilliseconds
    # 300); the watcher backs off, polls meanwhile, and comes back.
    srv.set_faults([{"operation": "GetStreamingEvents", "kind": "server_busy", "back_off_ms": 300, "count": 3}])
    wait_for(lambda: srv.notifications()["connections"], 30, "a streaming connection")
    srv.drop_streams()
    wait_for(lambda: any(f["fired"] for f in srv.faults()), 30, "a throttled reconnection")
    mid, mime = mail(5, A)
    srv.add_message(A, mime)
    sent.append(mid)
    wait_for(lambda: mid in message_ids(data), 60, "mail sent while the reconnection was throttled")
    wait_for(lambda: srv.notifications()["connections"] and set(watch_modes(data).values()) == {"streaming"}, 60,
             "streaming again after the throttling")
    srv.clear_faults()
    summary = run.stop()
    assert summary.error is None
    assert sum(m.resubscribes for m in summary.mailboxes) >= 2

    log = srv.log()
    assert {e.get("impersonate") for e in log if e["operation"] == "Subscribe"} == {A, B}
    assert {e.get("anchor") for e in log if e["operation"] in ("Subscribe", "GetStreamingEvents")} == {A}

    clean = clean_run(srv, tmp_path, [A, B], access_type="impersonation")
    assert snapshot(data) == snapshot(clean), diff_snapshots(snapshot(clean), snapshot(data))
    assert billed_units(data) == billed_units(clean)


def test_a_mailbox_held_by_another_writer_is_never_synced_by_the_watch(ews, tmp_path, watching):
    srv = ews([f"{A}=generate:3"])
    data = watch_config(srv, tmp_path, [A])
    run = watching(data)
    wait_for(lambda: watch_modes(data)[A] == "streaming" and len(message_ids(data)) >= 3, 60, "catch-up")
    state = SqlStore(data["state"]["url"])
    mid, mime = mail(1, A)
    with hold_mailbox(state, "e2e", A, purpose="run", ttl_s=30):  # a scheduled run syncing the mailbox
        since = srv.last_seq()
        srv.add_message(A, mime)
        time.sleep(2.5)
        assert mid not in message_ids(data)
        assert not [e for e in srv.log(since) if e["operation"] == "SyncFolderItems"], "the watch synced anyway"
    wait_for(lambda: mid in message_ids(data), 30, "the sync once the other writer is done")

    # Scheduled syncs (the flow's per-mailbox step) racing the watch while mail arrives: each either
    # syncs or is skipped as busy, and the result is exactly one writer's work.
    rt = Runtime.open(parse_config(data))
    outcomes: list[str] = []

    def scheduled() -> None:
        for _ in range(6):
            report = sync_mailbox(rt, rt.config.mailboxes[0], lease_wait_s=0.2)
            outcomes.append(report.reason or report.status)
            time.sleep(0.2)

    racer = threading.Thread(target=scheduled)
    racer.start()
    sent = [mid]
    for n in range(2, 8):
        mid, mime = mail(n, A)
        srv.add_message(A, mime)
        sent.append(mid)
        time.sleep(0.15)
    racer.join(60)
    rt.close()
    wait_for(lambda: set(sent) <= message_ids(data), 30, "every message")
    summary = run.stop()
    assert set(outcomes) <= {"ok", "busy"}, outcomes
    assert summary.mailboxes[0].busy >= 1
    clean = clean_run(srv, tmp_path, [A])
    assert snapshot(data) == snapshot(clean), diff_snapshots(snapshot(clean), snapshot(data))
    assert billed_units(data) == billed_units(clean) == len(message_ids(clean))
    state.close()


def test_fallbacks_to_pull_and_polling_are_reported(ews, tmp_path, watching, caplog):
    srv = ews([f"{A}=generate:2", f"{B}=generate:2"], notifications={"streaming_supported": False})
    srv.refuse_subscribe(mailbox=B, code="ErrorAccessDenied")  # B cannot subscribe at all
    data = watch_config(srv, tmp_path, [A, B])
    with caplog.at_level(logging.INFO, logger="exchange_sync.watch"):
        run = watching(data)
        wait_for(lambda: watch_modes(data) == {A: "pull", B: "polling"}, 60, "A on pull, B polled")
        sent = []
        for n, box in ((1, A), (2, B)):
            mid, mime = mail(n, box)
            srv.add_message(box, mime)
            sent.append(mid)
        wait_for(lambda: set(sent) <= message_ids(data), 30, "mail of both mailboxes")
        summary = run.stop()
    modes = {m.mailbox: m for m in summary.mailboxes}
    assert modes[A].events >= 1, "A's mail came through GetEvents"
    assert "streaming refused" in (modes[A].reason or "")
    assert "ErrorAccessDenied" in (modes[B].reason or "")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(B in w and "polled every" in w for w in warnings), warnings
    assert any(A in w and "pull notifications" in w for w in warnings), warnings
    from exchange_sync.pipeline.status import integration_status

    status = {m["mailbox"]: m["watch"] for m in integration_status(parse_config(data))["mailboxes"]}
    assert status[B]["mode"] == "stopped" and status[B]["last_sync_at"] is not None
    assert "GetEvents" in srv.operations()


def test_more_connections_than_the_account_may_open_are_polled_and_reported(ews, tmp_path, watching):
    # One streaming connection per account, one mailbox per connection: the second group's
    # GetStreamingEvents is refused with ErrorExceededConnectionCount; its mailbox is polled meanwhile.
    srv = ews([f"{A}=", f"{B}="], notifications={"connection_limit": 1})
    data = watch_config(srv, tmp_path, [A, B], mailboxes_per_connection=1)
    run = watching(data)
    wait_for(lambda: sorted(map(str, watch_modes(data).values())) == ["polling", "streaming"], 60,
             "one streaming, one polled")
    sent = []
    for n, box in ((1, A), (2, B)):
        mid, mime = mail(n, box)
        srv.add_message(box, mime)
        sent.append(mid)
    wait_for(lambda: set(sent) <= message_ids(data), 30, "mail of both mailboxes")
    summary = run.stop()
    polled = [m for m in summary.mailboxes if m.mode == "polling"]
    assert len(polled) == 1 and "ErrorExceededConnectionCount" in (polled[0].reason or ""), summary.mailboxes


def test_bad_credentials_stop_the_watch_with_the_reason(ews, tmp_path, monkeypatch):
    from exchange_sync.watch import run_watch

    srv = ews([f"{A}="])
    data = watch_config(srv, tmp_path, [A])
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    summary = run_watch(parse_config(data), duration_s=60)  # stops at once, on the first 401
    assert summary.stopped_by == "error" and summary.error.startswith("invalid_exchange_credentials: "), summary
    assert "not-the-password" not in summary.model_dump_json()
