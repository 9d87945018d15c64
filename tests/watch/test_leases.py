"""The mailbox lease on a real SQLite state database: exclusive, released, and a crashed holder's
lease expires (at once when the holder was a process of this host that is gone)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from exchange_sync.store import SqlStore
from exchange_sync.store.engine import write_transaction
from exchange_sync.store.leases import LeaseBusy, hold_mailbox, lease_rows, try_take


@pytest.fixture
def state(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield store
    store.close()


def take(state, owner: str, ttl_s: float) -> str | None:
    with write_transaction(state.engine) as conn:
        return try_take(conn, "i", "a@example.com", owner, ttl_s)


def test_one_holder_at_a_time_and_released_after(state):
    with hold_mailbox(state, "i", "a@example.com", purpose="watch", ttl_s=30) as owner:
        with pytest.raises(LeaseBusy, match="watch on"):
            with hold_mailbox(state, "i", "a@example.com", purpose="run", ttl_s=30, wait_s=0.3):
                pass
        with hold_mailbox(state, "i", "b@example.com", purpose="run", ttl_s=30):
            pass  # another mailbox is another lease
        assert [r.owner for r in lease_rows(state, "i") if r.mailbox == "a@example.com"] == [owner]
    with hold_mailbox(state, "i", "a@example.com", purpose="run", ttl_s=30):
        pass


def test_a_crashed_holder_on_another_host_is_waited_for_until_its_lease_expires(state):
    assert take(state, "elsewhere:4242:1:feedbeef:run", ttl_s=1.5) is None  # a holder that then "crashed"
    with pytest.raises(LeaseBusy):
        with hold_mailbox(state, "i", "a@example.com", purpose="watch", ttl_s=30, wait_s=0):
            pass
    started = time.monotonic()
    with hold_mailbox(state, "i", "a@example.com", purpose="watch", ttl_s=30, wait_s=10, poll_s=0.1):
        assert time.monotonic() - started < 10


def test_a_holder_process_of_this_host_that_is_gone_is_taken_over_at_once(state):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    assert take(state, f"{socket.gethostname()}:{pid}:1:deadbeef:run", ttl_s=3600) is None
    with hold_mailbox(state, "i", "a@example.com", purpose="watch", ttl_s=30, wait_s=0):
        pass
    # A live holder of this host (this very process) is not taken over.
    assert take(state, f"{socket.gethostname()}:{os.getpid()}:-:cafe:run", ttl_s=3600) is None
    with pytest.raises(LeaseBusy):
        with hold_mailbox(state, "i", "a@example.com", purpose="watch", ttl_s=30, wait_s=0):
            pass


def test_the_lease_is_renewed_while_held(state):
    with hold_mailbox(state, "i", "a@example.com", purpose="run", ttl_s=6) as owner:
        first = next(r.expires_at for r in lease_rows(state, "i"))
        time.sleep(2.5)  # the renewer runs every ttl / 3
        row = next(r for r in lease_rows(state, "i"))
        assert row.owner == owner and row.expires_at > first


def test_status_shows_a_watch_that_went_silent_as_stale(tmp_path, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from sqlalchemy import update

    from exchange_sync.config import parse_config
    from exchange_sync.pipeline.status import integration_status
    from exchange_sync.store.leases import watch_state
    from exchange_sync.store.schema import mailbox_leases

    monkeypatch.setenv("LEASE_TEST_PW", "x")
    config = parse_config({
        "name": "i", "mailboxes": [{"email": "a@example.com"}, {"email": "b@example.com"}],
        "connection": {"server_url": "https://mail.example.com/EWS/Exchange.asmx", "username": "svc",
                       "password": {"env": "LEASE_TEST_PW"}, "access_type": "delegate"},
        "destination": {"url": f"sqlite:///{tmp_path / 'comments.db'}"},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"}})
    store = SqlStore(config.state.url)
    for mailbox in ("a@example.com", "b@example.com"):
        watch_state(store, "i", mailbox, watch_mode="streaming", watch_owner="elsewhere:1:1:abc:watch")
    with write_transaction(store.engine) as conn:  # b's watcher last wrote 10 minutes ago
        conn.execute(update(mailbox_leases).where(mailbox_leases.c.mailbox == "b@example.com")
                     .values(watch_updated_at=datetime.now(timezone.utc) - timedelta(minutes=10)))
    store.close()
    modes = {m["mailbox"]: m["watch"]["mode"] for m in integration_status(config)["mailboxes"]}
    assert modes == {"a@example.com": "streaming", "b@example.com": "stale"}
