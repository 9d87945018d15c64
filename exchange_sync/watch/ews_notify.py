"""EWS notifications: streaming subscription groups and pull subscriptions, turned into sync hints.

``StreamGroup`` (one thread per group of <= ``watch.mailboxes_per_connection`` mailboxes): subscribes
each member to its synced folders (streaming, with the group's affinity), then keeps ONE
GetStreamingEvents connection open for all of them, reconnecting when Exchange closes it at
``watch.connection_timeout_min``. Every item event becomes a hint for its folder (the old folder too
for moves); a folder event asks for a folder-list refresh and a full catch-up.

Resilience (each case ends in a catch-up sync of the members concerned, so nothing is missed):
- subscription gone (ErrorSubscriptionNotFound, expired, unsubscribed, missed events): resubscribe;
- connection dropped, timed out, or refused by throttling (ErrorServerBusy, ErrorExceededConnectionCount):
  back off (tenacity's exponential wait with jitter, at least the server's BackOffMilliseconds, at
  most ``watch.resubscribe_max_backoff_s``), reconnect with the same subscriptions, resubscribe if
  they are gone;
- a member whose Subscribe is refused for good (old server, rights, quota) leaves the group: the
  watcher falls back to pull notifications, then to polling, and says so (log line + status).

``PullWatcher`` (one thread): pull subscriptions (GetEvents every ``watch.pull_interval_s``) for the
mailboxes that cannot stream, with the same rules.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, Literal, Protocol

import requests
from exchangelib import errors as ews
from tenacity import wait_exponential_jitter

from exchange_sync.sources.ews.errors import REJECTED
from exchange_sync.watch.ews_services import (
    AffinityGroup,
    GroupUnsubscribe,
    PullEvents,
    PullSubscribe,
    StreamingEvents,
    StreamingSubscribe,
)

log = logging.getLogger("exchange_sync.watch")

# A streaming connection silent this long is dead (Exchange sends keep-alives on an idle connection).
READ_TIMEOUT_S = 150.0
PULL_TIMEOUT_MIN = 10  # a pull subscription expires this long after its last GetEvents
DISCOVERY_WORKERS = 4  # folder discoveries in parallel at start (the sync source's connections)

Verdict = Literal["fatal", "skip", "fallback", "resubscribe", "retry"]

_GONE = (ews.ErrorSubscriptionNotFound, ews.ErrorInvalidSubscription, ews.ErrorExpiredSubscription,
         ews.ErrorSubscriptionUnsubsribed, ews.ErrorMissedNotificationEvents, ews.ErrorInvalidPullSubscriptionId,
         ews.ErrorInvalidWatermark, ews.ErrorNewEventStreamConnectionOpened, ews.ErrorReadEventsFailed)
_REFUSED = (ews.ErrorSubscriptionDelegateAccessNotSupported, ews.ErrorSubscriptionAccessDenied,
            ews.ErrorInvalidSubscriptionRequest, ews.ErrorExceededSubscriptionCount, ews.ErrorProxyRequestNotAllowed,
            NotImplementedError, *REJECTED)
_THROTTLED = (ews.ErrorServerBusy, ews.ErrorExceededConnectionCount, ews.ErrorTooManyObjectsOpened, ews.RateLimitError)
_DENIED = (ews.ErrorAccessDenied, ews.ErrorImpersonateUserDenied, ews.ErrorImpersonationFailed,
           ews.ErrorInvalidMailbox)


def classify(exc: BaseException) -> Verdict:
    """What a notification request's failure means for the mailbox."""
    if isinstance(exc, (ews.UnauthorizedError,)):
        return "fatal"
    if isinstance(exc, _GONE):
        return "resubscribe"
    if isinstance(exc, ews.ErrorFolderNotFound):
        return "retry"  # a synced folder was deleted: the folder list is refreshed before the next try
    if isinstance(exc, _REFUSED):
        return "fallback"
    if isinstance(exc, (ews.ErrorNonExistentMailbox, ews.ErrorInvalidSmtpAddress)):
        return "skip"
    if isinstance(exc, _DENIED):
        return "fallback"
    if isinstance(exc, (*_THROTTLED, ews.ErrorTimeoutExpired, ews.TransportError, ews.ErrorInternalServerTransientError,
                        ews.ErrorMailboxStoreUnavailable, ews.ErrorMailboxMoveInProgress, ews.MalformedResponseError,
                        ews.SOAPError, requests.RequestException, OSError)):
        return "retry"
    if isinstance(exc, ews.EWSError):
        return "fallback"  # an error Exchange will answer again: don't hammer it, poll instead
    return "retry"


def describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__



def _classified(hub: Any, mailbox: str, exc: BaseException) -> tuple[str, str]:
    """(verdict, reason) of a failed notification request; a folder gone makes the mailbox's next
    sync rediscover its folders."""
    if isinstance(exc, ews.ErrorFolderNotFound):
        hub.hint(mailbox, None, refresh_folders=True)
    return getattr(exc, "verdict", None) or classify(exc), getattr(exc, "reason_text", None) or describe(exc)

class Backoff:
    """Doubling waits with jitter (tenacity), reset after a success; never below the server's hint."""

    def __init__(self, cap_s: float) -> None:
        self.wait = wait_exponential_jitter(initial=1, max=cap_s, jitter=1)
        self.cap_s = cap_s
        self.attempt = 0

    def next(self, exc: BaseException | None = None) -> float:
        self.attempt += 1
        seconds = self.wait(SimpleNamespace(attempt_number=self.attempt))
        hint = getattr(exc, "back_off", None) or getattr(exc, "wait", None)
        if isinstance(hint, (int, float)) and hint > seconds:
            seconds = min(float(hint), self.cap_s)
        return seconds

    def reset(self) -> None:
        self.attempt = 0


class Hub(Protocol):
    """What the notification threads need from the watcher."""

    stop: threading.Event

    def account(self, mailbox: str) -> Any: ...
    def folder_ids(self, mailbox: str) -> list[str]: ...
    def hint(self, mailbox: str, folders: set[str] | None, *, event_at: datetime | None = None,
             refresh_folders: bool = False) -> None: ...
    def event_seen(self, mailbox: str, count: int) -> None: ...
    def notified(self, mailbox: str, mode: str) -> None: ...
    def degraded(self, mailbox: str, reason: str) -> None: ...
    def refused(self, mailbox: str, mode: str, reason: str) -> None: ...
    def skipped(self, mailbox: str, reason: str) -> None: ...
    def fatal(self, reason: str, message: str) -> None: ...
    def resubscribed(self, mailbox: str) -> None: ...


def _folders_of(event: Any) -> tuple[set[str], bool]:
    """(folder ids whose content an event may have changed, whether the folder list changed).

    A folder's own ModifiedEvent (its unread count, raised next to every item event) changes no item;
    a folder created, deleted, moved or copied changes the folder list."""
    if getattr(event, "item_id", None) is None and getattr(event, "folder_id", None) is not None:
        return set(), type(event).__name__ != "ModifiedEvent"
    found = set()
    for attr in ("parent_folder_id", "old_parent_folder_id"):
        ref = getattr(event, attr, None)
        if ref is not None and getattr(ref, "id", None):
            found.add(ref.id)
    return found, False


def dispatch(hub: Hub, mailbox: str, events: list[Any]) -> None:
    """Turn one notification's events into hints for ``mailbox``."""
    folders: set[str] = set()
    refresh = False
    first: datetime | None = None
    count = 0
    for event in events or ():
        name = type(event).__name__
        if name == "StatusEvent":
            continue
        count += 1
        ids, folder_event = _folders_of(event)
        folders |= ids
        refresh = refresh or folder_event
        stamp = getattr(event, "timestamp", None)
        if stamp is not None:
            stamp = datetime.fromtimestamp(stamp.timestamp(), tz=timezone.utc)
            # Never in the future of this host (a skewed server clock would make a negative lag).
            stamp = min(stamp, datetime.now(timezone.utc))
            first = stamp if first is None or stamp < first else first
    if not count:
        return
    hub.event_seen(mailbox, count)
    if refresh:
        hub.hint(mailbox, None, event_at=first, refresh_folders=True)
    elif folders:
        hub.hint(mailbox, folders, event_at=first)


@dataclass
class Member:
    mailbox: str
    subscription_id: str | None = None
    folder_ids: list[str] = field(default_factory=list)
    catch_up: bool = True


class StreamGroup:
    def __init__(self, hub: Hub, mailboxes: list[str], *, connection_timeout_min: int, connect_timeout_s: float,
                 backoff_cap_s: float) -> None:
        self.hub = hub
        ordered = sorted(mailboxes)
        self.group = AffinityGroup(anchor=ordered[0])
        self.members: dict[str, Member] = {m: Member(m) for m in ordered}
        self.lock = threading.Lock()
        self.connection_timeout_min = connection_timeout_min
        self.connect_timeout_s = connect_timeout_s
        self.backoff = Backoff(backoff_cap_s)
        self.stream: StreamingEvents | None = None
        self.thread = threading.Thread(target=self._run, name=f"watch-stream-{ordered[0]}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    # ---- subscriptions -----------------------------------------------------------------------
    def _subscribe(self, member: Member) -> Verdict | None:
        try:
            member.folder_ids = self.hub.folder_ids(member.mailbox)
            if not member.folder_ids:
                self.hub.refused(member.mailbox, "streaming", "no folder to watch")
                return "fallback"
            service = StreamingSubscribe(account=self.hub.account(member.mailbox), group=self.group)
            member.subscription_id = service.subscribe(member.folder_ids)
        except Exception as exc:  # noqa: BLE001 - classified
            verdict, why = _classified(self.hub, member.mailbox, exc)
            if verdict == "fatal":
                self.hub.fatal("invalid_exchange_credentials", f"Subscribe for {member.mailbox}: {why}")
            elif verdict == "skip":
                self.hub.skipped(member.mailbox, f"mailbox_not_found: {why}")
            elif verdict == "fallback":
                self.hub.refused(member.mailbox, "streaming", f"Subscribe refused: {why}")
            else:
                self.hub.degraded(member.mailbox, f"Subscribe failed ({why}); retrying")
            return verdict
        self.hub.notified(member.mailbox, "streaming")
        return None

    def _discover(self, members: list[Member]) -> None:
        """Fill the folder cache of many mailboxes at once (a first start discovers each mailbox's folders:
        two requests each); the subscriptions then read it. A failure here is met again, and handled,
        by ``_subscribe``."""
        from concurrent.futures import ThreadPoolExecutor

        def discover(member: Member) -> None:
            try:
                self.hub.folder_ids(member.mailbox)
            except Exception:  # noqa: BLE001 - see above
                pass

        with ThreadPoolExecutor(max_workers=DISCOVERY_WORKERS, thread_name_prefix="watch-folders") as pool:
            list(pool.map(discover, members))

    def _subscribe_missing(self) -> float | None:
        """Subscribe members without a subscription; a wait before retrying transient failures, or None."""
        wait = None
        missing = [m for m in self.members.values() if m.subscription_id is None]
        if len(missing) > 1:
            self._discover(missing)
        for member in list(self.members.values()):
            if self.hub.stop.is_set():
                return None
            if member.subscription_id is not None:
                continue
            verdict = self._subscribe(member)
            if verdict in ("fallback", "skip", "fatal"):
                with self.lock:
                    self.members.pop(member.mailbox, None)
            elif verdict is not None:
                wait = self.backoff.next()
        return wait

    def _catch_up(self) -> None:
        for member in self.members.values():
            if member.subscription_id is not None and member.catch_up:
                member.catch_up = False
                self.hub.hint(member.mailbox, None)

    # ---- the connection ----------------------------------------------------------------------
    def _run(self) -> None:
        while not self.hub.stop.is_set() and self.members:
            retry_in = self._subscribe_missing()
            active = {m.subscription_id: m for m in self.members.values() if m.subscription_id}
            self._catch_up()
            if not active:
                if not self.members:
                    return
                self.hub.stop.wait(retry_in or self.backoff.next())
                continue
            # Members still to subscribe are polled meanwhile: reconnect soon to try them again.
            timeout = 1 if retry_in else self.connection_timeout_min
            try:
                self._stream(active, timeout)
                self.backoff.reset()
            except Exception as exc:  # noqa: BLE001 - classified
                if self.hub.stop.is_set():
                    return
                self._recover(exc, active)

    def _stream(self, active: dict[str, Member], timeout_min: int) -> None:
        anchor = self.group.anchor if self.group.anchor in self.members else next(iter(self.members))
        self.stream = StreamingEvents(account=self.hub.account(anchor), group=self.group,
                                      connect_timeout_s=self.connect_timeout_s, read_timeout_s=READ_TIMEOUT_S,
                                      on_open=lambda: self._opened(active))
        try:
            for notification in self.stream.stream(list(active), timeout_min):
                if self.hub.stop.is_set():
                    return
                member = active.get(notification.subscription_id)
                if member is not None:
                    dispatch(self.hub, member.mailbox, notification.events)
                self.backoff.reset()
        finally:
            stream, self.stream = self.stream, None
            try:
                stream.stop_streaming()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass

    def _opened(self, active: dict[str, Member]) -> None:
        """The server answered the connection with something else than an error: notifications work."""
        self.backoff.reset()
        for member in active.values():
            self.hub.notified(member.mailbox, "streaming")

    def _recover(self, exc: BaseException, active: dict[str, Member]) -> None:
        verdict = classify(exc)
        why = describe(exc)
        if verdict == "fatal":
            self.hub.fatal("invalid_exchange_credentials", f"GetStreamingEvents: {why}")
            return
        for member in active.values():
            member.catch_up = True  # events in flight may be lost: sync everything once reconnected
        if verdict == "fallback":  # GetStreamingEvents itself refused (e.g. not offered): stop trying it
            for member in active.values():
                self._forget(member)
                with self.lock:
                    self.members.pop(member.mailbox, None)
                self.hub.refused(member.mailbox, "streaming", f"GetStreamingEvents refused: {why}")
            return
        if verdict in ("resubscribe", "skip"):
            # Which subscription failed is not reliably said: renew all of the connection's.
            log.warning("watch: streaming subscriptions of %d mailbox(es) lost (%s); resubscribing", len(active), why)
            for member in active.values():
                self._forget(member)
                self.hub.resubscribed(member.mailbox)
            return
        wait = self.backoff.next(exc)
        # Once per outage at WARNING (the polling fallback logs too); every further attempt at DEBUG.
        log.log(logging.WARNING if self.backoff.attempt == 1 else logging.DEBUG,
                "watch: streaming connection for %d mailbox(es) ended (%s); reconnecting in %.1f s",
                len(active), why, wait)
        for member in active.values():
            self.hub.degraded(member.mailbox, f"streaming connection lost ({why}); reconnecting")
        self.hub.stop.wait(wait)

    def _forget(self, member: Member) -> None:
        old, member.subscription_id = member.subscription_id, None
        if old:
            try:  # best effort: it may be gone already; an orphan expires on its own
                GroupUnsubscribe(account=self.hub.account(member.mailbox), group=self.group).unsubscribe(old)
            except Exception:  # noqa: BLE001
                pass

    def shutdown(self) -> None:
        """Called after ``stop`` is set: end the connection, wait for the thread, unsubscribe."""
        stream = self.stream
        if stream is not None:
            stream.abort()
        self.thread.join(10)
        for member in list(self.members.values()):
            self._forget(member)


@dataclass
class PullMember:
    mailbox: str
    subscription_id: str | None = None
    watermark: str | None = None
    group: AffinityGroup | None = None
    next_try: float = 0.0
    catch_up: bool = True
    backoff: Backoff | None = None


class PullWatcher:
    def __init__(self, hub: Hub, *, interval_s: float, backoff_cap_s: float) -> None:
        self.hub = hub
        self.interval_s = interval_s
        self.backoff_cap_s = backoff_cap_s
        self.members: dict[str, PullMember] = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="watch-pull", daemon=True)
        self.started = False

    def add(self, mailbox: str) -> None:
        with self.lock:
            self.members[mailbox] = PullMember(mailbox, group=AffinityGroup(anchor=mailbox),
                                               backoff=Backoff(self.backoff_cap_s))
            if not self.started:
                self.started = True
                self.thread.start()

    def _run(self) -> None:
        while not self.hub.stop.is_set():
            with self.lock:
                members = list(self.members.values())
            for member in members:
                if self.hub.stop.is_set():
                    return
                if time.monotonic() >= member.next_try:
                    self._tick(member)
            self.hub.stop.wait(self.interval_s)

    def _tick(self, member: PullMember) -> None:
        account = self.hub.account(member.mailbox)
        try:
            if member.subscription_id is None:
                folder_ids = self.hub.folder_ids(member.mailbox)
                member.subscription_id, member.watermark = PullSubscribe(account=account, group=member.group).subscribe(
                    folder_ids, PULL_TIMEOUT_MIN)
                self.hub.notified(member.mailbox, "pull")
            if member.catch_up:
                member.catch_up = False
                self.hub.hint(member.mailbox, None)
            service = PullEvents(account=account, group=member.group)
            while True:
                notification = service.events(member.subscription_id, member.watermark)
                for event in notification.events or ():
                    if getattr(event, "watermark", None):
                        member.watermark = event.watermark
                dispatch(self.hub, member.mailbox, notification.events)
                if not notification.more_events:
                    break
            member.backoff.reset()
        except Exception as exc:  # noqa: BLE001 - classified
            verdict, why = _classified(self.hub, member.mailbox, exc)
            if verdict == "fatal":
                self.hub.fatal("invalid_exchange_credentials", f"pull notifications for {member.mailbox}: {why}")
            elif verdict == "skip":
                self._drop(member)
                self.hub.skipped(member.mailbox, f"mailbox_not_found: {why}")
            elif verdict == "fallback" and member.subscription_id is None:
                self._drop(member)
                self.hub.refused(member.mailbox, "pull", f"pull Subscribe refused: {why}")
            elif verdict in ("resubscribe", "fallback"):
                log.warning("watch: pull subscription of %s lost (%s); resubscribing", member.mailbox, why)
                member.subscription_id, member.watermark, member.catch_up = None, None, True
                self.hub.resubscribed(member.mailbox)
            else:
                member.catch_up = True
                member.next_try = time.monotonic() + member.backoff.next(exc)
                self.hub.degraded(member.mailbox, f"pull notifications failing ({why}); retrying")

    def _drop(self, member: PullMember) -> None:
        with self.lock:
            self.members.pop(member.mailbox, None)

    def shutdown(self) -> None:
        if self.started:
            self.thread.join(10)
        for member in list(self.members.values()):
            if member.subscription_id:
                try:
                    GroupUnsubscribe(account=self.hub.account(member.mailbox), group=member.group).unsubscribe(
                        member.subscription_id)
                except Exception:  # noqa: BLE001 - it expires on its own
                    pass
