"""Fixtures for `exchange-sync watch` tests: the EWS test server with fast notification knobs
(a protocol minute of 2 s, heartbeats every 0.5 s), configs for it, and a watch run in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from exchange_sync.config import parse_config
from tests.support.pipeline import all_comments, make_config

FAST = {"heartbeat_s": 0.5, "minute_s": 2.0, "streaming_expiry_s": 30.0}


@pytest.fixture
def ews(ews):
    """tests/support/fixtures.py's ``ews`` with fast notification knobs (``notifications`` adds to them)."""

    def start(mailboxes: list[str], notifications: dict | None = None, **kw: Any):
        return ews(mailboxes, notifications={**FAST, **(notifications or {})}, **kw)

    return start


def watch_config(srv, tmp_path, mailboxes: list[str], access_type: str = "delegate", **watch: Any) -> dict:
    """A config for ``srv``: transforms in the sync threads (no process pool to start), fast watch knobs."""
    settings = {"debounce_s": 0.1, "connection_timeout_min": 1, "poll_interval_s": 1, "pull_interval_s": 1,
                "resubscribe_max_backoff_s": 2, **watch}
    return make_config(srv, tmp_path, mailboxes, transform_workers=0, watch=settings,
                       connection={"access_type": access_type})


class Watching:
    """``run_watch`` in a thread; ``stop()`` returns its summary."""

    def __init__(self, data: dict, **kw: Any) -> None:
        from exchange_sync.watch import run_watch

        self.data, self.event, self.result = data, threading.Event(), {}
        self.thread = threading.Thread(
            target=lambda: self.result.setdefault("summary", run_watch(parse_config(data), stop=self.event, **kw)),
            daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 60):
        self.event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "run_watch did not stop"
        return self.result["summary"]


@pytest.fixture
def watching():
    runs: list[Watching] = []

    def start(data: dict, **kw: Any) -> Watching:
        runs.append(Watching(data, **kw))
        return runs[-1]

    yield start
    for run in runs:
        if run.thread.is_alive():
            run.stop()


def wait_for(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def message_ids(data: dict) -> set[str]:
    return {c.user_properties.get("string:Message ID") for c in all_comments(data).values()}


def folders_of(data: dict) -> dict[str, str]:
    return {c.user_properties.get("string:Message ID"): c.user_properties.get("string:Folder")
            for c in all_comments(data).values()}


def mail(n: int | str, to: str = "a@example.com") -> tuple[str, bytes]:
    mid = f"<watch-{n}@test.example>"
    mime = (f"From: Sender <s@partner.example>\r\nTo: {to}\r\nSubject: watch test {n}\r\nMessage-ID: {mid}\r\n"
            f"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nBody of message {n}.\r\n")
    return mid, mime.encode()


def watch_modes(data: dict) -> dict[str, str | None]:
    from exchange_sync.pipeline.status import integration_status

    return {m["mailbox"]: (m["watch"] or {}).get("mode") for m in integration_status(parse_config(data))["mailboxes"]}
