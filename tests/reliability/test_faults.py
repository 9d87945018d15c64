"""Server faults during a real flow run (through the session's Prefect API) against the EWS test server
(HTTPS + NTLM), each driven from outside: the server's fault plans, its admin API (delete a message,
remove a mailbox, change the password) and a corrupted watermark in the checkpoint database.

After each: the store equals a clean run's on the same mail, and usage units equal the number of
distinct comments (nothing lost, nothing duplicated, nothing billed twice). No timing assertions:
outcomes, fault counters and the server's operation log; pytest-timeout bounds the fail-fast cases.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable

import pytest

from ews_testserver.testing import running_server
from tests.support.pipeline import (
    ACCOUNT,
    PASSWORD_ENV,
    billed_units,
    diff_snapshots,
    make_config,
    snapshot,
)

pytestmark = pytest.mark.timeout(180)

PASSWORD = "faults-" + secrets.token_hex(8)
AP = "ap@example.com"


@pytest.fixture(scope="module")
def srv():
    mailboxes = [f"{AP}=generate:12", "gone@example.com=generate:6", "doomed@example.com=generate:6"]
    grants = [f"{ACCOUNT}={m.split('=')[0]}" for m in mailboxes]
    with running_server(accounts=[f"{ACCOUNT}:{PASSWORD}"], mailboxes=mailboxes, grants=grants, tls=True,
                        auth="ntlm") as server:
        yield server


@pytest.fixture(scope="module")
def env_password():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PASSWORD_ENV, PASSWORD)
        yield


@pytest.fixture
def run(prefect_api, env_password, srv) -> Callable[..., tuple[dict | None, int]]:
    from exchange_sync.cli.common import run_flow
    from exchange_sync.config import parse_config

    def go(data: dict):
        return run_flow(parse_config(data))

    yield go
    srv.clear_faults()


def config(srv, path, mailboxes=(AP,), **extra) -> dict:
    # Small pages and GetItem chunks: many requests for the faults to hit; 4 connections in flight.
    return make_config(srv, path, list(mailboxes), batch_size=5, fetch_chunk_size=2,
                       concurrency={"mailboxes": 1, "connections_per_server": 4}, **extra)


@pytest.fixture(scope="module")
def clean_ap(srv, tmp_path_factory, prefect_api, env_password):
    """The store of an uninterrupted run of ``ap@example.com`` (its mail never changes in this module)."""
    from exchange_sync.cli.common import run_flow
    from exchange_sync.config import parse_config

    data = config(srv, tmp_path_factory.mktemp("clean-ap"))
    summary, code = run_flow(parse_config(data))
    assert code == 0, summary
    snap = snapshot(data)
    assert len(snap) >= 12 and billed_units(data) == len(snap)
    return snap


def assert_equals_clean(data: dict, clean: dict) -> None:
    got = snapshot(data)
    assert got == clean, diff_snapshots(clean, got)
    assert billed_units(data) == len(got), "usage units must equal the number of distinct comments"


# ---- throttling and transport faults: retried, the run completes ------------------------------------------
FAULT_PLANS = {
    "server_busy_backoff": [{"operation": "GetItem", "kind": "server_busy", "back_off_ms": 300, "after": 1,
                             "count": 3}],
    "http_503_retry_after": [{"operation": "SyncFolderItems", "kind": "http_503", "retry_after_s": 1, "after": 2,
                              "count": 2}],
    "dropped_connections": [{"operation": "GetItem", "kind": "drop", "after": 2, "count": 2},
                            {"operation": "SyncFolderItems", "kind": "drop", "after": 3, "count": 1}],
    "read_timeout": [{"operation": "GetItem", "kind": "slow", "delay_s": 8, "after": 1, "count": 1}],
    # The slow rule makes the parallel GetItem chunks overlap on the server, so some arrive over the budget.
    "exceeded_connection_count": [{"operation": "GetItem", "kind": "connection_count", "max_concurrent": 1,
                                   "count": 3},
                                  {"operation": "GetItem", "kind": "slow", "delay_s": 0.3, "count": 0}],
}


@pytest.mark.parametrize("plan", list(FAULT_PLANS))
def test_transient_faults_are_retried_and_the_store_equals_a_clean_run(srv, run, clean_ap, tmp_path, plan):
    extra = {"connection": {"timeout_s": 3}} if plan == "read_timeout" else {}
    data = config(srv, tmp_path, **extra)
    srv.set_faults(FAULT_PLANS[plan])
    mark = srv.last_seq()
    summary, code = run(data)
    assert code == 0, summary
    assert srv.faults()[0]["fired"] >= 1, f"the fault plan never fired: {srv.faults()}"
    log = srv.log(mark)
    main_kind = FAULT_PLANS[plan][0]["kind"]
    faulted = [e for e in log if e.get("fault") == main_kind]
    if plan == "read_timeout":
        # The delayed response goes to a socket the client already gave up on (timeout_s 3 < delay 8 s):
        # the server may not log it; the completed run and equal store show the request was sent again.
        assert not faulted or faulted[0]["operation"] == "GetItem"
    else:
        assert faulted, "no request was faulted"
    # Every faulted operation was sent again and succeeded afterwards.
    for op in {e["operation"] for e in faulted}:
        first = min(e["seq"] for e in faulted if e["operation"] == op)
        assert any(e["operation"] == op and e.get("status") == 200 and e["seq"] > first for e in log), op
    assert_equals_clean(data, clean_ap)


# ---- ErrorInvalidSyncStateData: the folder is resynced without duplicates or double billing -----------
def test_invalid_sync_state_resyncs_the_folder_without_duplicates_or_billing(srv, run, clean_ap, tmp_path):
    from exchange_sync.config import parse_config
    from exchange_sync.pipeline.runtime import checkpoint_store

    data = config(srv, tmp_path)
    _, code = run(data)
    assert code == 0
    store = checkpoint_store(parse_config(data))
    states = {f.folder_path: f for f in store.list_folder_states("e2e") if f.mailbox == AP}
    assert states["Inbox"].sync_state and states["Archive"].sync_state
    # A garbage state, and a valid state of another folder (both rejected by Exchange).
    store.set_folder_state(states["Inbox"].model_copy(update={"sync_state": "H4sIAAAAAAAEAGNgYGBgAAAAAP//AwA="}))
    store.set_folder_state(states["Archive"].model_copy(update={"sync_state": states["Inbox"].sync_state}))
    store.close()
    mark = srv.last_seq()
    summary, code = run(data)
    assert code == 0, summary
    rejected = [e for e in srv.log(mark) if e.get("response_code") == "ErrorInvalidSyncStateData"]
    assert len(rejected) == 2, srv.log(mark)
    assert summary["totals"]["new"] == 0 and summary["totals"]["units"] == 0
    assert summary["totals"]["unchanged"] >= 1  # the resynced folders' comments were seen again, unchanged
    assert_equals_clean(data, clean_ap)
    # The rewritten watermarks are good again: the next poll is quiet.
    mark = srv.last_seq()
    summary, code = run(data)
    assert code == 0 and "GetItem" not in srv.operations(mark)
    assert not [e for e in srv.log(mark) if e.get("response_code") == "ErrorInvalidSyncStateData"]


# ---- changes between SyncFolderItems and GetItem, driven by a hook on the first fetch -----------------------
@pytest.fixture
def on_first_fetch(monkeypatch):
    """``on_first_fetch(mailbox, action)``: run ``action(refs)`` once, just before that mailbox's first GetItem."""
    from exchange_sync.sources.ews.source import MailboxSession

    original = MailboxSession.fetch
    hooks: dict[str, Callable] = {}
    lock = threading.Lock()

    def fetch(self, refs, folder, **kw):
        with lock:
            action = hooks.pop(self.email, None) if refs else None
        if action is not None:
            action(refs)
        return original(self, refs, folder, **kw)

    monkeypatch.setattr(MailboxSession, "fetch", fetch)
    return lambda mailbox, action: hooks.__setitem__(mailbox, action)


def test_item_deleted_between_sync_and_fetch(srv, run, on_first_fetch, tmp_path, tmp_path_factory):
    mailbox = "gone@example.com"
    deleted: list[str] = []

    def delete_first(refs):
        message_id = refs[0].internet_message_id
        srv.delete(mailbox, message_id)
        deleted.append(message_id)

    on_first_fetch(mailbox, delete_first)
    data = config(srv, tmp_path, [mailbox])
    mark = srv.last_seq()
    summary, code = run(data)
    assert code == 0, summary
    assert deleted
    codes = [e.get("response_code") for e in srv.log(mark) if e["operation"] == "GetItem"]
    assert any("ErrorItemNotFound" in str(c) for c in codes), codes
    got = snapshot(data)
    assert deleted[0].strip().encode().hex() not in got
    # A clean run on the mail as it is now gives the same store.
    reference = config(srv, tmp_path_factory.mktemp("clean-gone"), [mailbox])
    _, code = run(reference)
    assert code == 0
    assert_equals_clean(data, snapshot(reference))
    assert not store_rejections(data), "a vanished item is not a rejection"


def store_rejections(data: dict) -> list:
    from exchange_sync.store import SqlStore

    store = SqlStore(data["state"]["url"])
    try:
        return store.list_rejections(data["name"])
    finally:
        store.close()


def test_mailbox_removed_mid_run_is_skipped_and_the_others_sync(srv, run, on_first_fetch, clean_ap, tmp_path):
    doomed = "doomed@example.com"
    on_first_fetch(doomed, lambda refs: srv.delete_mailbox(doomed))
    data = config(srv, tmp_path, [doomed, AP])
    summary, code = run(data)
    rows = {m["mailbox"]: m for m in summary["mailboxes"]}
    assert rows[doomed]["status"] == "skipped" and rows[doomed]["reason"] == "mailbox_not_found", rows[doomed]
    assert rows[AP]["status"] == "ok"
    assert code == 3  # completed, a mailbox skipped
    got = snapshot(data)
    ap_only = {cid: c for cid, c in got.items() if c["user_properties"]["string:Mailbox"] == AP}
    assert ap_only == clean_ap, diff_snapshots(clean_ap, ap_only)
    assert billed_units(data) == len(got)
    assert not store_rejections(data), "items of a removed mailbox are not rejections"


@pytest.mark.timeout(90)  # fail fast: a 401 is never retried (exchangelib alone would wait up to an hour)
def test_password_changed_mid_run_fails_fast_then_recovers(srv, run, on_first_fetch, clean_ap, tmp_path):
    rotated = "rotated-" + secrets.token_hex(6)
    on_first_fetch(AP, lambda refs: srv.set_password(ACCOUNT, rotated))
    data = config(srv, tmp_path)
    try:
        summary, code = run(data)
    finally:
        srv.set_password(ACCOUNT, PASSWORD)
    assert code == 1
    assert summary["mailboxes"][0]["reason"] == "invalid_exchange_credentials", summary
    assert rotated not in str(summary) and PASSWORD not in str(summary)
    # The operator fixes the password (here: it is rotated back); the rerun completes the sync.
    summary, code = run(data)
    assert code == 0, summary
    assert_equals_clean(data, clean_ap)
