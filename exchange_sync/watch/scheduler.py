"""Events -> folder syncs: debounced, coalesced, one sync per mailbox at a time, through the pipeline.

Notifications, pull results and poll ticks all end here as *hints* ("these folders of this mailbox
may have changed", or "all of them"). A hint is never data: the sync it triggers is the pipeline's own
``sync_mailbox`` (SyncFolderItems from the stored watermark, stage -> transform -> load -> commit per
page), so a lost hint costs latency, never mail: the next catch-up or poll finds the change.

- Coalescing: hints of a mailbox merge until its sync starts (many events -> one sync); a hint
  arriving while the mailbox syncs waits for the next sync, which starts right after.
- Debounce: a mailbox's sync starts ``watch.debounce_s`` after the first hint of a batch (not
  after the last one, so a steady stream of events cannot postpone it forever).
- One writer: the sync holds the mailbox's lease (``store.leases``); a mailbox a scheduled run is
  syncing (``busy``) keeps its hints and is tried again a second later.
- Failures keep their hints and are retried with a doubling delay (at most ``watch.poll_interval_s``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from exchange_sync.config import MailboxConfig
from exchange_sync.pipeline.mailbox import sync_mailbox
from exchange_sync.pipeline.runtime import Runtime
from exchange_sync.store.leases import watch_state
from exchange_sync.watch.models import MailboxWatch

log = logging.getLogger("exchange_sync.watch")

BUSY_RETRY_S = 1.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Pending:
    all: bool = False
    folders: set[str] = field(default_factory=set)
    first_event_at: datetime | None = None  # oldest event behind these hints (for the lag)
    last_event_at: datetime | None = None
    due: float = 0.0
    refresh_folders: bool = False

    def merge(self, other: _Pending) -> None:
        self.all = self.all or other.all
        self.folders |= other.folders
        self.refresh_folders = self.refresh_folders or other.refresh_folders
        if other.first_event_at and (self.first_event_at is None or other.first_event_at < self.first_event_at):
            self.first_event_at = other.first_event_at
        if other.last_event_at and (self.last_event_at is None or other.last_event_at > self.last_event_at):
            self.last_event_at = other.last_event_at
        self.due = min(self.due, other.due)


class Fatal(RuntimeError):
    """An integration-wide failure (bad credentials, ...): the watch stops with it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class SyncScheduler:
    def __init__(self, rt: Runtime, mailboxes: dict[str, MailboxConfig], stats: dict[str, MailboxWatch],
                 stop: threading.Event, *, workers: int, on_fatal: Callable[[Fatal], None],
                 on_skipped: Callable[[str, str], None]) -> None:
        self.rt, self.mailboxes, self.stats, self.stop = rt, mailboxes, stats, stop
        self.debounce_s = rt.config.watch.debounce_s
        self.max_retry_s = rt.config.watch.poll_interval_s
        self.on_fatal, self.on_skipped = on_fatal, on_skipped
        self._pending: dict[str, _Pending] = {}
        self._running: set[str] = set()
        self._failures: dict[str, int] = {}
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._work, name=f"watch-sync-{i}", daemon=True)
                         for i in range(max(1, workers))]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    # ---- hints -------------------------------------------------------------------------------
    def hint(self, mailbox: str, folders: set[str] | None = None, *, event_at: datetime | None = None,
             delay: float | None = None, refresh_folders: bool = False) -> None:
        """``folders`` None: all the mailbox's folders (a catch-up). ``event_at``: when the change
        happened (an event's TimeStamp), for the lag; None for catch-ups and polls."""
        if mailbox not in self.mailboxes or self.stop.is_set():
            return
        wait = self.debounce_s if delay is None else delay
        hint = _Pending(all=folders is None, folders=set(folders or ()), first_event_at=event_at,
                        last_event_at=event_at, due=time.monotonic() + wait, refresh_folders=refresh_folders)
        with self._cond:
            current = self._pending.get(mailbox)
            if current is None:
                self._pending[mailbox] = hint
            else:
                current.merge(hint)
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._pending) + len(self._running)

    def idle(self, mailbox: str) -> bool:
        with self._cond:
            return mailbox not in self._pending and mailbox not in self._running

    # ---- workers -----------------------------------------------------------------------------
    def _next(self) -> tuple[str, _Pending] | None:
        with self._cond:
            while not self.stop.is_set():
                now = time.monotonic()
                ready = [(p.due, mb) for mb, p in self._pending.items() if mb not in self._running]
                if ready:
                    due, mailbox = min(ready)
                    if due <= now:
                        self._running.add(mailbox)
                        return mailbox, self._pending.pop(mailbox)
                    self._cond.wait(due - now)
                else:
                    self._cond.wait(1.0)
            return None

    def _work(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            mailbox, pending = job
            try:
                self._sync(mailbox, pending)
            finally:
                with self._cond:
                    self._running.discard(mailbox)
                    self._cond.notify_all()

    def _retry(self, mailbox: str, pending: _Pending, delay: float) -> None:
        pending.due = time.monotonic() + delay
        with self._cond:
            current = self._pending.get(mailbox)
            if current is None:
                self._pending[mailbox] = pending
            else:
                current.merge(pending)
            self._cond.notify()

    def _sync(self, mailbox: str, pending: _Pending) -> None:
        from exchange_sync.sources import InvalidCredentials

        stats = self.stats[mailbox]
        if pending.refresh_folders:
            self.rt.folder_cache.forget(mailbox)  # a folder was created/moved: the next sync rediscovers
        started = time.monotonic()
        try:
            report = sync_mailbox(self.rt, self.mailboxes[mailbox], folders=None if pending.all else pending.folders,
                                  lease_wait_s=0, purpose="watch", stop=self.stop)
            log.debug("watch: sync of %s (%s) took %.3f s: %s, %d items", mailbox,
                      "all folders" if pending.all else f"{len(pending.folders)} folder(s)", time.monotonic() - started,
                      report.reason or report.status, report.items)
        except InvalidCredentials as exc:
            self.on_fatal(Fatal(exc.reason, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - e.g. the state database went away: retried
            report = None
            error = f"{getattr(exc, 'reason', type(exc).__name__)}: {exc}"
        if report is not None and report.status == "skipped" and report.reason == "busy":
            stats.busy += 1
            self._retry(mailbox, pending, BUSY_RETRY_S)
            return
        now = utcnow()
        if report is not None and report.status == "ok":
            self._failures.pop(mailbox, None)
            stats.syncs += 1
            stats.items += report.items
            stats.new += report.counts.new
            stats.updated += report.counts.updated
            stats.last_sync_at = now
            if pending.last_event_at and (stats.last_event_at is None or pending.last_event_at > stats.last_event_at):
                stats.last_event_at = pending.last_event_at
            if pending.first_event_at is not None:
                stats.last_lag_ms = max(0, int((now - pending.first_event_at).total_seconds() * 1000))
            self._record(mailbox, stats)
            return
        if report is not None and report.status == "skipped":  # mailbox_not_found / mailbox_access_denied
            self.on_skipped(mailbox, f"{report.reason}: {report.error}")
            return
        if report is not None:
            error = f"{report.reason}: {report.error}"
        stats.failures += 1
        stats.last_error = error
        count = self._failures[mailbox] = self._failures.get(mailbox, 0) + 1
        delay = min(self.max_retry_s, 2.0 ** count)
        log.warning("watch: sync of %s failed (%s); retried in %.0f s", mailbox, error, delay)
        self._retry(mailbox, pending, delay)

    def _record(self, mailbox: str, stats: MailboxWatch) -> None:
        try:
            watch_state(self.rt.state, self.rt.config.name, mailbox, last_event_at=stats.last_event_at,
                        last_sync_at=stats.last_sync_at, last_lag_ms=stats.last_lag_ms)
        except Exception:  # noqa: BLE001 - status is for people; the sync itself is committed
            log.warning("watch: could not record the watch state of %s", mailbox, exc_info=True)

    def join(self, timeout: float) -> None:
        """After ``stop`` is set: wait for the syncs in flight (each ends after its current page)."""
        with self._cond:
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
