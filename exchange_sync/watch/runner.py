"""``run_watch``: keep an integration's mailboxes in sync in real time until stopped.

Per mailbox, how changes are noticed (``watch.mode: auto``): EWS streaming notifications, else EWS
pull notifications, else polling every ``watch.poll_interval_s``; Graph connections poll each
folder's delta every ``watch.graph_interval_s`` within a request budget. Whatever notices a change,
the sync is the pipeline's (``watch.scheduler``), from the stored watermark, under the mailbox lease.
A catch-up sync of every folder runs at start and after every resubscription, so a change made while
nobody listened is synced too. Every change of mode is logged and stored (``exchange-sync status``).
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

from exchange_sync.config import IntegrationConfig, MailboxConfig
from exchange_sync.pipeline.runtime import Runtime
from exchange_sync.store.leases import new_owner, touch_watch, watch_state
from exchange_sync.watch.models import MailboxWatch, WatchSummary
from exchange_sync.watch.scheduler import Fatal, SyncScheduler

log = logging.getLogger("exchange_sync.watch")

STOP_GRACE_S = 120.0  # how long a stop waits for the syncs in flight (each ends after its current page)
PRUNE_EVERY_S = 3600.0
TOUCH_EVERY_S = 60.0  # the watch rows' heartbeat (status shows a watch silent for WATCH_STALE_S as stale)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class GraphMeter:
    """Counts Graph requests per mailbox (a response hook on the source's session) and remembers the
    Retry-After of throttled answers, so polling keeps within ``watch.graph_requests_per_minute``."""

    _USER = re.compile(r"/users/([^/?('\"]+)|/users\('([^']+)'\)")

    def __init__(self, session: Any) -> None:
        self.sent: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self.blocked_until: dict[str, float] = {}
        self.lock = threading.Lock()
        session.hooks.setdefault("response", []).append(self._on_response)

    def _mailboxes(self, request: Any) -> set[str]:
        found = {unquote(a or b).lower() for a, b in self._USER.findall(request.url or "")}
        if not found and request.body:
            body = request.body.decode("utf-8", "replace") if isinstance(request.body, bytes) else str(request.body)
            found = {unquote(a or b).lower() for a, b in self._USER.findall(body)}
        return found

    def _on_response(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        retry_after = None
        if response.status_code in (429, 503, 504):
            try:
                retry_after = float(response.headers.get("Retry-After", "") or 0) or None
            except ValueError:
                retry_after = None
        with self.lock:
            for mailbox in self._mailboxes(response.request):
                self.sent[mailbox].append(now)
                if retry_after:
                    self.blocked_until[mailbox] = max(self.blocked_until.get(mailbox, 0.0), now + retry_after)
        return response

    def used(self, mailbox: str, window_s: float = 60.0) -> int:
        now = time.monotonic()
        with self.lock:
            sent = self.sent[mailbox]
            while sent and sent[0] < now - window_s:
                sent.popleft()
            return len(sent)

    def may_poll(self, mailbox: str, budget_per_minute: int) -> bool:
        if time.monotonic() < self.blocked_until.get(mailbox, 0.0):
            return False  # the server said when to come back (Retry-After)
        return self.used(mailbox) < budget_per_minute

    def total(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.sent.values())


class Watcher:
    """Implements ``ews_notify.Hub``: the notification threads report here."""

    def __init__(self, rt: Runtime, mailboxes: list[MailboxConfig], stop: threading.Event) -> None:
        self.rt = rt
        self.config = rt.config
        self.cfg = rt.config.watch
        self.stop = stop
        self.owner = new_owner("watch")
        self.by_email = {m.email: m for m in mailboxes}
        self.stats = {m.email: MailboxWatch(mailbox=m.email) for m in mailboxes}
        self.error: Fatal | None = None
        self.lock = threading.Lock()
        self.polled: dict[str, float] = {}  # mailbox -> next poll (monotonic)
        self.fallback_reason: dict[str, str] = {}  # why a mailbox is on pull notifications instead of streaming
        self.kind = getattr(self.config.connection, "kind", "ews")
        self.scheduler = SyncScheduler(rt, self.by_email, self.stats, stop, workers=self.config.concurrency.mailboxes,
                                       on_fatal=self._on_fatal, on_skipped=self.skipped)
        self.groups: list[Any] = []
        self.pull: Any = None
        self.meter: GraphMeter | None = None
        self._notify_source: Any = None
        self._accounts: dict[str, Any] = {}
        self._poller = threading.Thread(target=self._poll_loop, name="watch-poll", daemon=True)

    # ---- Hub ---------------------------------------------------------------------------------
    def _source(self) -> Any:
        """A second EWS source for notifications: a GetStreamingEvents request holds its HTTP
        connection for up to 30 minutes, which must not take the syncs' connections."""
        with self.lock:
            if self._notify_source is None:
                from exchange_sync.sources.ews import EwsSource

                groups = max(1, -(-len(self.by_email) // self.cfg.mailboxes_per_connection))
                # It reads the learnt version; the syncs' source keeps it.
                self._notify_source = EwsSource.from_config(self.config, self.rt.checkpoints,
                                                            max_connections=groups + 2, remember=False)
            return self._notify_source

    def account(self, mailbox: str) -> Any:
        with self.lock:
            found = self._accounts.get(mailbox)
        if found is None:
            found = self._source().open_mailbox(mailbox).account
            with self.lock:
                self._accounts[mailbox] = found
        return found

    def folder_ids(self, mailbox: str) -> list[str]:
        """The ids of the folders a sync of ``mailbox`` covers (from the folder cache, discovered if stale)."""
        from exchange_sync.sources import (InvalidCredentials, MailboxAccessDenied, MailboxNotFound, ServerUnavailable)
        from exchange_sync.sources.folders import select_mail_folders

        mb = self.by_email[mailbox]
        try:
            every, _ = self.rt.folder_cache.folders(self.rt.source.open_mailbox(mailbox))
        except (MailboxNotFound, MailboxAccessDenied) as exc:
            exc.verdict, exc.reason_text = "skip", f"{exc.reason}: {exc}"  # type: ignore[attr-defined]
            raise
        except InvalidCredentials as exc:
            exc.verdict, exc.reason_text = "fatal", str(exc)  # type: ignore[attr-defined]
            raise
        except ServerUnavailable as exc:
            exc.verdict = "retry"  # type: ignore[attr-defined]
            raise
        return [f.folder_id for f in select_mail_folders(every, mb.folder_allowlist, list(mb.folder_denylist))]

    def hint(self, mailbox: str, folders: set[str] | None, *, event_at: datetime | None = None,
             refresh_folders: bool = False) -> None:
        self.scheduler.hint(mailbox, folders, event_at=event_at, refresh_folders=refresh_folders)

    def event_seen(self, mailbox: str, count: int) -> None:
        stats = self.stats[mailbox]
        stats.events += count
        stats.last_event_at = utcnow()

    def _set_mode(self, mailbox: str, mode: str, reason: str | None) -> None:
        stats = self.stats[mailbox]
        changed = (stats.mode, stats.reason) != (mode, reason)
        stats.mode, stats.reason = mode, reason  # type: ignore[assignment]
        if changed:
            try:
                watch_state(self.rt.state, self.config.name, mailbox, watch_mode=mode, watch_reason=reason,
                            watch_owner=self.owner)
            except Exception:  # noqa: BLE001 - status only
                log.warning("watch: could not record the mode of %s", mailbox, exc_info=True)

    def notified(self, mailbox: str, mode: str) -> None:
        with self.lock:
            self.polled.pop(mailbox, None)
        if self.stats[mailbox].mode != mode:
            log.info("watch: %s: %s notifications", mailbox, mode)
        self._set_mode(mailbox, mode, self.fallback_reason.get(mailbox) if mode == "pull" else None)

    def degraded(self, mailbox: str, reason: str) -> None:
        """Notifications are failing for now (being retried): poll meanwhile."""
        self._poll(mailbox, reason)

    def refused(self, mailbox: str, mode: str, reason: str) -> None:
        if mode == "streaming" and self.cfg.mode in ("auto", "pull"):
            log.warning("watch: %s cannot use streaming notifications (%s): falling back to pull notifications",
                        mailbox, reason)
            self.fallback_reason[mailbox] = f"streaming refused: {reason}"
            self._set_mode(mailbox, "pull", self.fallback_reason[mailbox])
            self._pull().add(mailbox)
            return
        self._poll(mailbox, reason, permanent=True)

    def _poll(self, mailbox: str, reason: str, permanent: bool = False) -> None:
        with self.lock:
            if mailbox not in self.polled:
                self.polled[mailbox] = time.monotonic() + self.cfg.poll_interval_s
        if self.stats[mailbox].reason != reason:
            log.warning("watch: %s is polled every %g s %s: %s", mailbox, self.cfg.poll_interval_s,
                        "instead of notified" if permanent else "until notifications work again", reason)
        self._set_mode(mailbox, "polling", reason)

    def skipped(self, mailbox: str, reason: str) -> None:
        with self.lock:
            self.polled.pop(mailbox, None)
        log.warning("watch: %s skipped: %s", mailbox, reason)
        self._set_mode(mailbox, "skipped", reason)

    def resubscribed(self, mailbox: str) -> None:
        self.stats[mailbox].resubscribes += 1

    def fatal(self, reason: str, message: str) -> None:
        self._on_fatal(Fatal(reason, message))

    def _on_fatal(self, error: Fatal) -> None:
        with self.lock:
            if self.error is None:
                self.error = error
        log.error("watch stopped: %s", error)
        self.stop.set()

    def _pull(self) -> Any:
        from exchange_sync.watch.ews_notify import PullWatcher

        with self.lock:
            if self.pull is None:
                self.pull = PullWatcher(self, interval_s=self.cfg.pull_interval_s,
                                        backoff_cap_s=self.cfg.resubscribe_max_backoff_s)
            return self.pull

    # ---- polling (fallback, and Graph) -------------------------------------------------------
    def _poll_loop(self) -> None:
        last_prune = last_touch = time.monotonic()
        while not self.stop.wait(0.25):
            now = time.monotonic()
            with self.lock:
                due = [mb for mb, at in self.polled.items() if at <= now]
            for mailbox in due:
                if self.kind == "graph":
                    assert self.meter is not None
                    if not self.scheduler.idle(mailbox) or not self.meter.may_poll(
                            mailbox, self.cfg.graph_requests_per_minute):
                        continue  # syncing, throttled or over budget: looked at again next tick
                    interval = self.cfg.graph_interval_s
                else:
                    interval = self.cfg.poll_interval_s
                with self.lock:
                    if mailbox in self.polled:
                        self.polled[mailbox] = now + interval
                self.scheduler.hint(mailbox, None, delay=0)
            if now - last_prune >= PRUNE_EVERY_S:
                last_prune = now
                self._prune()
            if now - last_touch >= TOUCH_EVERY_S:
                last_touch = now
                try:
                    touch_watch(self.rt.state, self.config.name, self.owner)
                except Exception:  # noqa: BLE001 - status only
                    log.warning("watch: could not refresh the watch state", exc_info=True)

    def _prune(self) -> None:
        keep = self.config.staging.keep_days
        if keep is None:
            return
        try:
            self.rt.staging.prune(self.config.name, utcnow() - timedelta(days=keep))
        except Exception:  # noqa: BLE001 - housekeeping
            log.warning("watch: could not prune staging", exc_info=True)

    # ---- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        from exchange_sync.watch.ews_notify import StreamGroup

        self.scheduler.start()
        threading.Thread(target=self._warm_up, name="watch-warm-up", daemon=True).start()
        emails = sorted(self.by_email)
        if self.kind == "graph":
            self.meter = GraphMeter(self.rt.source.session)
            for mailbox in emails:
                self._set_mode(mailbox, "graph_polling", None)
                self.scheduler.hint(mailbox, None, delay=0)  # the catch-up
                with self.lock:
                    self.polled[mailbox] = time.monotonic() + self.cfg.graph_interval_s
        elif self.cfg.mode == "poll":
            for mailbox in emails:
                self._poll(mailbox, "watch.mode is poll", permanent=True)
                self.scheduler.hint(mailbox, None, delay=0)
        elif self.cfg.mode == "pull" or not self._streaming_possible():
            if self.cfg.mode != "pull":
                log.warning("watch: the server's EWS version has no streaming notifications: pull notifications")
            for mailbox in emails:
                if self.cfg.mode != "pull":
                    self.fallback_reason[mailbox] = "the server's version has no streaming notifications"
                self._set_mode(mailbox, "pull", self.fallback_reason.get(mailbox))
                self._pull().add(mailbox)
        else:
            size = self.cfg.mailboxes_per_connection
            for i in range(0, len(emails), size):
                group = StreamGroup(self, emails[i:i + size], connection_timeout_min=self.cfg.connection_timeout_min,
                                    connect_timeout_s=min(30.0, self.config.connection.timeout_s),
                                    backoff_cap_s=self.cfg.resubscribe_max_backoff_s)
                self.groups.append(group)
                group.start()
        self._poller.start()

    def _warm_up(self) -> None:
        """Start the transform workers (or import the transform here) now: the first mail should not
        wait for a process pool to spawn and a language model to load (~1-20 s on a busy machine)."""
        try:
            import importlib

            # What the first page with mail imports in this process (staging, loading): ~1-2 s cold.
            for name in ("pandas", "pyarrow.parquet", "pyarrow.dataset", "pyarrow.compute", "dateutil.parser"):
                importlib.import_module(name)
            if not self.rt.transformer.workers:
                from exchange_sync.pipeline.transform_worker import warm_up

                warm_up()
        except Exception:  # noqa: BLE001 - the first sync starts them anyway
            log.debug("watch: transform warm-up failed", exc_info=True)

    def _streaming_possible(self) -> bool:
        """Streaming notifications exist from Exchange 2010 SP1 (when the version is known)."""
        version = getattr(self.config.connection, "exchange_version", None)
        if not version:
            from exchange_sync.sources.ews.version_cache import cached_version

            cached = cached_version(self.rt.checkpoints, self.config.name, self.config.connection)
            version = cached[0] if cached else None
        return not version or not (version.startswith("Exchange2007") or version == "Exchange2010")

    def shutdown(self) -> None:
        self.stop.set()
        for group in self.groups:
            group.shutdown()
        if self.pull is not None:
            self.pull.shutdown()
        self.scheduler.join(STOP_GRACE_S)
        self._poller.join(5)
        for mailbox, stats in self.stats.items():  # the summary keeps the last mode; status says stopped
            if stats.mode != "skipped":
                try:
                    watch_state(self.rt.state, self.config.name, mailbox, watch_mode="stopped", watch_reason=None)
                except Exception:  # noqa: BLE001 - status only
                    log.warning("watch: could not record the stop of %s", mailbox, exc_info=True)
        if self._notify_source is not None:
            self._notify_source.close()


def _selected(config: IntegrationConfig, mailboxes: list[str] | None, rt: Runtime) -> tuple[list[MailboxConfig], list[MailboxWatch]]:
    wanted = {m.strip().lower() for m in mailboxes} if mailboxes else None
    chosen = [m for m in config.enabled_mailboxes if wanted is None or m.email in wanted]
    disabled = {h.mailbox: h for h in rt.state.mailbox_health(config.name) if h.disabled}
    skipped = [MailboxWatch(mailbox=m.email, mode="skipped", reason=f"disabled: {disabled[m.email].disabled_reason}")
               for m in chosen if m.email in disabled]
    return [m for m in chosen if m.email not in disabled], skipped


def run_watch(config: IntegrationConfig, *, stop: threading.Event | None = None, duration_s: float | None = None,
              mailboxes: list[str] | None = None) -> WatchSummary:
    """Watch ``config``'s enabled mailboxes until ``stop`` is set or ``duration_s`` has passed.

    Never raises for operational failures: an integration-wide one (bad credentials, a secret or the
    state database missing) stops the watch and is the summary's ``error`` ("<reason>: <message>",
    ``stopped_by`` "error"); mailbox-level ones are per mailbox (``mode`` skipped/polling + ``reason``).
    Stopping lets each sync in flight finish its current page (committed), unsubscribes, returns."""
    from exchange_sync.config import SecretResolutionError, secret_refs
    from exchange_sync.store.engine import StateUnavailable

    stop = stop or threading.Event()
    summary = WatchSummary(integration=config.name, started_at=utcnow())

    def failed(reason: str, message: str) -> WatchSummary:
        summary.stopped_by, summary.error, summary.finished_at = "error", f"{reason}: {message}", utcnow()
        return summary

    for path, ref in secret_refs(config):
        try:
            ref.resolve()
        except SecretResolutionError as exc:
            return failed("secret_unavailable", f"{path}: {exc}")
    try:
        rt = Runtime.open(config)
    except StateUnavailable as exc:
        return failed("state_unavailable", str(exc).removeprefix("state_unavailable: "))
    watcher = None
    try:
        selected, skipped = _selected(config, mailboxes, rt)
        watcher = Watcher(rt, selected, stop)
        deadline = time.monotonic() + duration_s if duration_s is not None else None
        watcher.start()
        log.info("watching %d mailbox(es) of %s", len(selected), config.name)
        while not stop.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                summary.stopped_by = "duration"
                break
            stop.wait(1.0 if remaining is None else min(1.0, remaining))
        watcher.shutdown()
        summary.mailboxes = [*watcher.stats.values(), *skipped]
        if watcher.error is not None:
            summary.stopped_by, summary.error = "error", str(watcher.error)
    finally:
        if watcher is not None and not stop.is_set():
            watcher.shutdown()
        rt.close()
    summary.finished_at = utcnow()
    return summary
