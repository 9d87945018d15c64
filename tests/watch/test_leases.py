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
