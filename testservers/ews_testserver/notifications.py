"""EWS notifications: Subscribe, Unsubscribe, GetEvents (pull) and GetStreamingEvents (streaming).

How it is modelled (and why):
- Every change to a mailbox (``MailStore.on_change``) becomes the events Exchange raises for it
  (a delivery: CreatedEvent + NewMailEvent for the item, ModifiedEvent with UnreadCount for the
  folder; a move: MovedEvent with OldItemId/OldParentFolderId + ModifiedEvent for both folders; ...),
  appended to that mailbox's event log with a per-mailbox sequence number. A log exists only once a
  mailbox has a subscription, so loading 100,000 generated messages costs nothing here.
- A subscription is a cursor into its mailbox's log plus a filter (folders or all folders, event
  types). Pull: the cursor is the client's watermark (base64 of mailbox index + sequence, 20
  characters like Exchange's). Streaming: the cursor advances when a chunk carrying the events was
  written, so events raised while no connection is open wait for the next one (as Exchange buffers
  them until the subscription expires).
- A streaming connection is one thread (the HTTP handler's) waiting on its own wake-up flag; the
  server writes each message as one chunk holding one complete SOAP envelope (``server.py``).
- Expiry is checked lazily on every use and by the admin listing: a streaming subscription dies
  ``streaming_expiry_s`` (Exchange: 30 minutes) after its last connection closed (or after its
  creation if it never had one); a pull subscription ``Timeout`` minutes after its last GetEvents.
  ``minute_s`` scales every protocol minute (ConnectionTimeout, Timeout) so tests run in seconds.

Shapes follow Microsoft's schemas (MS-OXWSNTIF) and docs: streaming events carry no Watermark
(the EWS Managed API reads TimeStamp first), pull events do; a GetEvents without new events answers
one StatusEvent carrying the current watermark.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import struct
import threading
import time
import zlib
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lxml import etree

from testserver_core.mailstore import Folder, Mailbox, StoreChange

from .soap import ResponseError, SoapFault, error_message, m, response_root, sub, success_message, t

if TYPE_CHECKING:
    from .operations import Context

FAULT_KINDS = ("drop_stream", "kill_subscription")  # fault plan kinds the hub acts on (faults.py)
STREAM_BATCH = 50  # events per subscription per message ("the first 50 events from the queue", Microsoft)
EVENT_TYPES = ("CopiedEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent", "NewMailEvent",
               "FreeBusyChangedEvent")

TEXTS = {
    "ErrorSubscriptionNotFound": "The specified subscription was not found.",
    "ErrorInvalidSubscription": "The subscription is invalid.",
    "ErrorInvalidPullSubscriptionId": "The subscription ID is not a valid pull subscription ID.",
    "ErrorExpiredSubscription": "The subscription has expired.",
    "ErrorSubscriptionAccessDenied": "You don't have permission to use this subscription.",
    "ErrorExceededSubscriptionCount": "You have exceeded the maximum number of subscriptions for your account.",
    "ErrorExceededConnectionCount": ("You have exceeded the available concurrent connections for your account.  "
                                     "Try again once your other requests have completed."),
    "ErrorNewEventStreamConnectionOpened": ("A new event stream connection has been opened for this subscription; "
                                            "this connection no longer serves it."),
    "ErrorInvalidWatermark": "The watermark is invalid.",
    "ErrorReadEventsFailed": "The events since this watermark can no longer be read.",
    "ErrorInvalidSubscriptionRequest": "The subscription request is invalid.",
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorInvalidRequest": "The request is invalid.",
}


def _text(code: str) -> str:
    return TEXTS.get(code, code)


# ---------------------------------------------------------------------------------------------
# Knobs

@dataclass
class NotificationConfig:
    """Set with ``PUT /admin/notifications/config`` (any subset); defaults are Exchange's."""

    heartbeat_s: float = 30.0  # ConnectionStatus OK keep-alive when nothing else was sent
    minute_s: float = 60.0  # length of a protocol minute (ConnectionTimeout, pull Timeout)
    streaming_expiry_s: float = 1800.0  # a streaming subscription's life after its last connection closed
    connection_limit: int = 10  # concurrent streaming connections per budget (account or impersonated mailbox)
    max_subscriptions: int = 5000  # live subscriptions per budget (EWSMaxSubscriptions: 5000 on-premises, 20 Online)
    max_pull_events: int = 50  # events per GetEvents response (MoreEvents=true beyond)
    log_retention: int = 100_000  # events kept per mailbox (older watermarks: ErrorReadEventsFailed)
    streaming_supported: bool = True  # False: answer as a server without streaming (before Exchange 2010 SP1)
    require_affinity: bool = False  # True: requests routed away from a subscription's server do not find it
    # What using an expired subscription answers: Exchange has dropped it (ErrorSubscriptionNotFound),
    # or, set to ErrorExpiredSubscription, what a server that still knows it says.
    expired_code: str = "ErrorSubscriptionNotFound"

    _TYPES = {"heartbeat_s": float, "minute_s": float, "streaming_expiry_s": float, "connection_limit": int, "max_subscriptions": int,
              "max_pull_events": int, "log_retention": int, "streaming_supported": bool,
              "require_affinity": bool, "expired_code": str}

    def update(self, data: Mapping[str, Any]) -> None:
        unknown = set(data) - set(self._TYPES)
        if unknown:
            raise ValueError(f"unknown notification settings {sorted(unknown)}")
        for key, value in data.items():
            kind = self._TYPES[key]
            if kind is str:
                if value not in ("ErrorSubscriptionNotFound", "ErrorExpiredSubscription"):
                    raise ValueError(f"{key} must be ErrorSubscriptionNotFound or ErrorExpiredSubscription")
                setattr(self, key, value)
                continue
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
                setattr(self, key, value)
                continue
            number = kind(value)
            if number <= 0:
                raise ValueError(f"{key} must be positive")
            setattr(self, key, number)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._TYPES}


# ---------------------------------------------------------------------------------------------
# Events

Ref = tuple[str, str]  # (Id, ChangeKey)


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    kind: str  # element name: NewMailEvent, CreatedEvent, ...
    timestamp: str
    folders: tuple[int, ...]  # folder numbers whose subscribers see it
    parent: Ref
    item: Ref | None = None
    folder: Ref | None = None
    old_item: Ref | None = None
    old_parent: Ref | None = None
    unread: int | None = None

    def write(self, parent: etree._Element, watermark: str | None) -> None:
        """The event element in the order of BaseObjectChangedEventType / MovedCopiedEventType."""
        el = sub(parent, self.kind)
        if watermark is not None:
            sub(el, "Watermark", watermark)
        sub(el, "TimeStamp", self.timestamp)
        if self.item is not None:
            sub(el, "ItemId", Id=self.item[0], ChangeKey=self.item[1])
        else:
            assert self.folder is not None
            sub(el, "FolderId", Id=self.folder[0], ChangeKey=self.folder[1])
        sub(el, "ParentFolderId", Id=self.parent[0], ChangeKey=self.parent[1])
        if self.kind in ("MovedEvent", "CopiedEvent"):
            assert self.old_item is not None and self.old_parent is not None
            sub(el, "OldItemId", Id=self.old_item[0], ChangeKey=self.old_item[1])
            sub(el, "OldParentFolderId", Id=self.old_parent[0], ChangeKey=self.old_parent[1])
        if self.kind == "ModifiedEvent" and self.unread is not None:
            sub(el, "UnreadCount", str(self.unread))


def _fref(folder: Folder) -> Ref:
    return folder.folder_id, folder.change_key


def _folder_event(kind: str, folder: Folder, stamp: str) -> tuple:
    parent = folder.parent or folder
    unread = folder.unread if kind == "ModifiedEvent" and folder.tag in ("Folder", "TasksFolder", "SearchFolder") else None
    return (kind, stamp, (folder.num, parent.num), _fref(parent), None, _fref(folder), None, None, unread)


def events_for(change: StoreChange) -> list[tuple]:
    """The events Exchange raises for one store change, as Event fields without the sequence."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    folder, item = change.folder, change.item
    out: list[tuple] = []

    def item_event(kind: str, where: Folder, old: Folder | None = None) -> tuple:
        assert item is not None
        folders = (where.num,) if old is None else (where.num, old.num)
        old_item = (change.old_item.item_id, change.old_item.change_key) if change.old_item is not None else None
        return (kind, stamp, folders, _fref(where), (item.item_id, item.change_key), None, old_item,
                _fref(old) if old is not None else None, None)

    if change.kind == "created":
        out.append(item_event("CreatedEvent", folder))
        if folder.is_mail:
            out.append(item_event("NewMailEvent", folder))
        out.append(_folder_event("ModifiedEvent", folder, stamp))
    elif change.kind == "modified":
        out.append(item_event("ModifiedEvent", folder))
    elif change.kind == "read":
        out.append(item_event("ModifiedEvent", folder))
        out.append(_folder_event("ModifiedEvent", folder, stamp))
    elif change.kind == "deleted":
        out.append(item_event("DeletedEvent", folder))
        out.append(_folder_event("ModifiedEvent", folder, stamp))
    elif change.kind in ("moved", "copied"):
        assert change.old_folder is not None
        out.append(item_event("MovedEvent" if change.kind == "moved" else "CopiedEvent", folder, change.old_folder))
        if change.kind == "moved":
            out.append(_folder_event("ModifiedEvent", change.old_folder, stamp))
        out.append(_folder_event("ModifiedEvent", folder, stamp))
    elif change.kind == "folder_created":
        out.append(_folder_event("CreatedEvent", folder, stamp))
        if folder.parent is not None:
            out.append(_folder_event("ModifiedEvent", folder.parent, stamp))
    return out


class EventLog:
    """One mailbox's events, numbered from 1; the oldest are dropped beyond the retention."""

    def __init__(self, mailbox_index: int) -> None:
        self.mailbox_index = mailbox_index
        self.seqs: list[int] = []
        self.events: list[Event] = []
        self.head = 0  # last sequence number issued
        self.floor = 0  # events with seq <= floor are gone

    def append(self, fields: tuple, retention: int) -> None:
        self.head += 1
        self.seqs.append(self.head)
        self.events.append(Event(self.head, *fields))
        if len(self.events) > retention * 2:  # trim in batches: O(1) amortised
            drop = len(self.events) - retention
            self.floor = self.seqs[drop - 1]
            del self.seqs[:drop], self.events[:drop]

    def after(self, seq: int) -> list[Event]:
        return self.events[bisect_right(self.seqs, seq):]


def encode_watermark(mailbox_index: int, seq: int) -> str:
    body = struct.pack(">IQ", mailbox_index, seq)
    return base64.b64encode(body + bytes([zlib.crc32(body) & 0xFF])).decode()


def decode_watermark(value: str) -> tuple[int, int]:
    """(mailbox index, sequence); ValueError when it is not one of ours."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except ValueError as exc:
        raise ValueError("malformed watermark") from exc
    if len(raw) != 13 or raw[12] != zlib.crc32(raw[:12]) & 0xFF:
        raise ValueError("malformed watermark")
    index, seq = struct.unpack(">IQ", raw[:12])
    return index, seq


# Subscription ids look like Exchange's (base64 of a length-prefixed server FQDN and a GUID).
_SERVER_FQDN = b"ews-testserver.local"


def new_subscription_id() -> str:
    raw = bytes([len(_SERVER_FQDN), 0]) + _SERVER_FQDN + b"\x10\x00\x00\x00" + secrets.token_bytes(16) + secrets.token_bytes(8)
    return base64.b64encode(raw).decode()


def _well_formed_id(value: str) -> bool:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        return False
    return len(raw) > 2 and raw[0] + 2 <= len(raw)


# ---------------------------------------------------------------------------------------------
# Subscriptions and connections

@dataclass(eq=False)
class Subscription:
    id: str
    kind: str  # "streaming" | "pull"
    owner: str  # the account that created it (lower case); only it may use it
    mailbox: Mailbox
    folders: frozenset[int] | None  # None: all folders
    event_types: frozenset[str]
    cursor: int  # streaming: last event delivered; pull: the subscription's starting point
    timeout_min: int = 0  # pull only
    created: float = field(default_factory=time.monotonic)
    last_use: float = field(default_factory=time.monotonic)  # pull: last GetEvents; streaming: last close
    connection: StreamConnection | None = None
    backend: str = ""  # the "mailbox server" holding it (affinity, see route_of)
    budget: str = ""  # whose EWSMaxSubscriptions budget it counts against (budget_of)
    delivered: int = 0

    def wants(self, ev: Event) -> bool:
        if ev.kind not in self.event_types:
            return False
        return self.folders is None or any(f in self.folders for f in ev.folders)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "owner": self.owner, "mailbox": self.mailbox.address,
                "backend": self.backend,
                "all_folders": self.folders is None, "folders": sorted(self.folders or ()),
                "event_types": sorted(self.event_types), "delivered": self.delivered,
                "connected": self.connection is not None, "timeout_minutes": self.timeout_min or None}


_connection_numbers = itertools.count(1)


@dataclass(eq=False)
class StreamConnection:
    budget: str  # whose connection budget it counts against
    account: str
    subs: dict[str, Subscription]
    deadline: float
    next_heartbeat: float
    number: int = field(default_factory=lambda: next(_connection_numbers))
    wake: threading.Event = field(default_factory=threading.Event)
    errors: list[tuple[str, list[str]]] = field(default_factory=list)  # (code, subscription ids) to send
    drop: bool = False  # close the socket mid-stream
    fault_at: float | None = None  # a fault plan rule's action is due (monotonic time)
    fault_kind: str | None = None
    end: str | None = None  # why it ended
    opened: float = field(default_factory=time.time)
    sent: int = 0  # messages written
    events: int = 0

    def describe(self) -> dict[str, Any]:
        return {"number": self.number, "account": self.account, "budget": self.budget,
                "subscriptions": list(self.subs), "messages": self.sent, "events": self.events}


@dataclass
class Refusal:
    """Subscribe for ``mailbox`` ("*": any) answers ``code`` (count <= 0: every time)."""

    mailbox: str = "*"
    code: str = "ErrorAccessDenied"
    count: int = 0
    fired: int = 0


class NotificationHub:
    """All subscriptions, event logs and streaming connections of one server."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.config = NotificationConfig()
        self.logs: dict[int, EventLog] = {}
        self.subs: dict[str, Subscription] = {}
        self.by_mailbox: dict[int, set[Subscription]] = {}
        self.connections: set[StreamConnection] = set()
        self.refusals: list[Refusal] = []
        self.ended: dict[str, str] = {}  # subscription id -> why it is gone (killed, expired, unsubscribed)
        self.counters = {"events": 0, "streams_opened": 0, "streams_dropped": 0, "subscriptions": 0}

    # -- events in ------------------------------------------------------------------------------
    def on_change(self, change: StoreChange) -> None:
        """MailStore.on_change: called under the store lock."""
        mbx = change.folder.mailbox
        log = self.logs.get(mbx.index)
        if log is None:  # nobody ever subscribed to this mailbox
            return
        with self.lock:
            for fields_ in events_for(change):
                log.append(fields_, self.config.log_retention)
                self.counters["events"] += 1
            for s in self.by_mailbox.get(mbx.index, ()):
                if s.connection is not None:
                    s.connection.wake.set()

    def _log(self, mbx: Mailbox) -> EventLog:
        log = self.logs.get(mbx.index)
        if log is None:
            log = self.logs[mbx.index] = EventLog(mbx.index)
        return log

    # -- lifecycle ------------------------------------------------------------------------------
    def _expired(self, s: Subscription, now: float) -> bool:
        if s.kind == "pull":
            return now - s.last_use > s.timeout_min * self.config.minute_s
        return s.connection is None and now - s.last_use > self.config.streaming_expiry_s

    def sweep(self) -> None:
        now = time.monotonic()
        with self.lock:
            for s in [s for s in self.subs.values() if self._expired(s, now)]:
                self._remove(s, "expired")

    def _remove(self, s: Subscription, why: str) -> None:
        self.subs.pop(s.id, None)
        self.by_mailbox.get(s.mailbox.index, set()).discard(s)
        self.ended[s.id] = why
        if s.connection is not None:
            conn = s.connection
            conn.subs.pop(s.id, None)
            if why in ("killed", "unsubscribed"):
                conn.errors.append(("ErrorSubscriptionNotFound", [s.id]))
            conn.wake.set()
            s.connection = None

    def _lookup(self, sid: str, owner: str, route: Callable[[str], str] | None = None) -> Subscription:
        if not _well_formed_id(sid):
            raise ResponseError("ErrorInvalidSubscription", _text("ErrorInvalidSubscription"))
        s = self.subs.get(sid.strip())
        if s is None:
            code = self.config.expired_code if self.ended.get(sid.strip()) == "expired" else "ErrorSubscriptionNotFound"
            raise ResponseError(code, _text(code))
        if self.config.require_affinity and route is not None and route(s.mailbox.address) != s.backend:
            # Routed to another mailbox server, which does not hold this subscription.
            raise ResponseError("ErrorSubscriptionNotFound", _text("ErrorSubscriptionNotFound"))
        if s.owner != owner:
            raise ResponseError("ErrorSubscriptionAccessDenied", _text("ErrorSubscriptionAccessDenied"))
        return s

    # -- admin ----------------------------------------------------------------------------------
    def kill(self, subscription_id: str | None = None, mailbox: str | None = None) -> list[str]:
        """End subscriptions (by id, by mailbox, or all): their next use answers ErrorSubscriptionNotFound,
        an open stream gets an error message for them."""
        with self.lock:
            victims = [s for s in self.subs.values()
                       if (subscription_id is None or s.id == subscription_id)
                       and (mailbox is None or s.mailbox.address.lower() == mailbox.lower())]
            for s in victims:
                self._remove(s, "killed")
            return [s.id for s in victims]

    def drop_connections(self, mailbox: str | None = None) -> int:
        """Close streaming sockets mid-stream (no final chunk); the subscriptions survive."""
        with self.lock:
            hit = [c for c in self.connections
                   if mailbox is None or any(s.mailbox.address.lower() == mailbox.lower() for s in c.subs.values())]
            for c in hit:
                c.drop = True
                c.wake.set()
            return len(hit)

    def fault_request(self, kind: str, body: etree._Element) -> None:
        """A fault plan rule fired on GetEvents/Unsubscribe: kill_subscription ends its subscription first."""
        sid = (body.findtext(m("SubscriptionId")) or "").strip()
        if kind == "kill_subscription" and sid:
            self.kill(sid)

    def schedule_fault(self, conn: StreamConnection, kind: str, delay_s: float) -> None:
        with self.lock:
            conn.fault_at, conn.fault_kind = time.monotonic() + max(0.0, delay_s), kind
            conn.wake.set()

    def close_all(self) -> None:
        """Server stop: every open stream ends (with ConnectionStatus Closed)."""
        with self.lock:
            for c in self.connections:
                c.deadline = 0.0
                c.wake.set()

    def snapshot(self) -> dict[str, Any]:
        self.sweep()
        with self.lock:
            return {"config": self.config.to_json(),
                    "subscriptions": [s.describe() for s in self.subs.values()],
                    "connections": [c.describe() for c in self.connections],
                    "ended": dict(self.ended), "refusals": [asdict(r) for r in self.refusals],
                    "counters": dict(self.counters)}

    def refused(self, address: str) -> str | None:
        with self.lock:
            for r in self.refusals:
                if r.mailbox not in ("*", address.lower()):
                    continue
                if r.count > 0 and r.fired >= r.count:
                    continue
                r.fired += 1
                return r.code
        return None

    # -- streaming connections ---------------------------------------------------------------------
    def open_stream(self, ids: list[str], owner: str, budget: str, timeout_min: int,
                    route: Callable[[str], str] | None = None
                    ) -> tuple[StreamConnection | None, str | None, list[str]]:
        """(connection, None, []) or (None, error code, the subscription ids in error)."""
        self.sweep()
        with self.lock:
            bad: list[str] = []
            code = None
            found: list[Subscription] = []
            for sid in ids:
                try:
                    s = self._lookup(sid, owner, route)
                    if s.kind != "streaming":
                        raise ResponseError("ErrorInvalidSubscription", _text("ErrorInvalidSubscription"))
                    found.append(s)
                except ResponseError as exc:
                    code = code or exc.code
                    bad.append(sid)
            if bad:
                return None, code, bad
            if sum(1 for c in self.connections if c.budget == budget) >= self.config.connection_limit:
                return None, "ErrorExceededConnectionCount", []
            now = time.monotonic()
            conn = StreamConnection(budget=budget, account=owner, subs={}, deadline=now + timeout_min * self.config.minute_s,
                                    next_heartbeat=now + self.config.heartbeat_s)
            for s in found:
                old = s.connection
                if old is not None and old is not conn:
                    # Exchange moves the subscription to the new connection and tells the old one.
                    old.subs.pop(s.id, None)
                    old.errors.append(("ErrorNewEventStreamConnectionOpened", [s.id]))
                    old.wake.set()
                s.connection = conn
                conn.subs[s.id] = s
            self.connections.add(conn)
            self.counters["streams_opened"] += 1
            return conn, None, []

    def next_message(self, conn: StreamConnection, peer_gone: Callable[[], bool] | None = None) -> tuple[str, Any]:
        """Block until the connection has something to send: ("events", {sub: [Event]}), ("error", (code,
        ids)), ("heartbeat", None), ("closed", None: ConnectionTimeout reached), ("drop", None), ("end", None:
        no subscriptions left), ("gone", None: ``peer_gone()`` says the client closed its end)."""
        while True:
            with self.lock:
                if conn.fault_at is not None and time.monotonic() >= conn.fault_at:
                    conn.fault_at = None
                    if conn.fault_kind == "drop_stream":
                        conn.drop = True
                    else:
                        for s in list(conn.subs.values()):
                            self._remove(s, "killed")
                if conn.drop:
                    return "drop", None
                if conn.errors:
                    code, ids = conn.errors.pop(0)
                    # The last message of a stream whose subscriptions are all gone says Closed.
                    return "error", (code, ids, not conn.subs and not conn.errors)
                pending: dict[Subscription, list[Event]] = {}
                for s in conn.subs.values():
                    log = self.logs.get(s.mailbox.index)
                    evs = [e for e in (log.after(s.cursor) if log is not None else []) if s.wants(e)]
                    if evs:
                        pending[s] = evs[:STREAM_BATCH]
                    elif log is not None and log.head > s.cursor:
                        s.cursor = log.head  # nothing it wants: skip ahead
                if pending:
                    return "events", pending
                if not conn.subs:
                    return "end", None
                now = time.monotonic()
                if now >= conn.deadline:
                    return "closed", None
                if now >= conn.next_heartbeat:
                    conn.next_heartbeat = now + self.config.heartbeat_s
                    return "heartbeat", None
                wait = min(conn.deadline, conn.next_heartbeat, conn.fault_at or conn.deadline) - now
                conn.wake.clear()
            # Look at the socket now and then: a client that hung up frees its connection slot at once
            # (as IIS notices a closed connection), not at the next heartbeat.
            if peer_gone is not None:
                wait = min(wait, 0.2)
            conn.wake.wait(wait)
            if peer_gone is not None and peer_gone():
                return "gone", None

    def delivered(self, conn: StreamConnection, pending: dict[Subscription, list[Event]]) -> None:
        """The chunk with these events was written: advance the cursors."""
        with self.lock:
            for s, evs in pending.items():
                s.cursor = max(s.cursor, evs[-1].seq)
                s.delivered += len(evs)
                conn.events += len(evs)
            conn.next_heartbeat = time.monotonic() + self.config.heartbeat_s

    def close_stream(self, conn: StreamConnection, why: str) -> None:
        with self.lock:
            conn.end = why
            self.connections.discard(conn)
            if why == "drop":
                self.counters["streams_dropped"] += 1
            now = time.monotonic()
            for s in list(conn.subs.values()):
                if s.connection is conn:
                    s.connection = None
                    s.last_use = now  # the expiry clock starts when the last connection closes


# ---------------------------------------------------------------------------------------------
# Operations (HANDLERS in operations.py)

def _hub(ctx: Context) -> NotificationHub:
    if ctx.hub is None:
        raise SoapFault("ErrorInvalidOperation", "Notifications are not enabled on this server.")
    return ctx.hub


def _check_version(ctx: Context, what: str) -> None:
    """Streaming notifications exist from Exchange 2010 SP1 on."""
    from .schema import _RANK

    hub = _hub(ctx)
    if not hub.config.streaming_supported:
        # What a server without streaming answers: the elements are not in its schema.
        raise SoapFault("ErrorSchemaValidation",
                        f"The request failed schema validation: The '{what}' element is not declared.",
                        message="The request failed schema validation.", violation=(1, 1, f"The '{what}' element is not declared."))
    version = ctx.request.requested_version
    if version is not None and _RANK.get(version, 0) < _RANK["Exchange2010_SP1"]:
        raise SoapFault("ErrorInvalidRequest", _text("ErrorInvalidRequest"))


def _owner(ctx: Context) -> str:
    return ctx.principal.username.lower()


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1")


def subscribe(ctx: Context) -> etree._Element:
    from .operations import _resolve_folder

    hub = _hub(ctx)
    hub.sweep()  # expired subscriptions no longer count against the budget
    resp, msgs = response_root("Subscribe")
    body = ctx.request.body
    req = body[0] if len(body) else None
    kind = etree.QName(req).localname if req is not None else ""
    try:
        if kind == "PushSubscriptionRequest":
            raise ResponseError("ErrorInvalidSubscriptionRequest",
                                "The EWS test server does not make outbound connections: push subscriptions are refused.")
        if kind not in ("StreamingSubscriptionRequest", "PullSubscriptionRequest"):
            raise ResponseError("ErrorInvalidSubscriptionRequest", _text("ErrorInvalidSubscriptionRequest"))
        streaming = kind == "StreamingSubscriptionRequest"
        if streaming:
            _check_version(ctx, "http://schemas.microsoft.com/exchange/services/2006/types:StreamingSubscriptionRequest")
        all_folders = _flag(req.get("SubscribeToAllFolders"))
        folder_ids = req.find(t("FolderIds"))
        folders: list[Folder] = [_resolve_folder(ctx, el) for el in (folder_ids if folder_ids is not None else [])]
        if all_folders and folders:
            mbx = folders[0].mailbox
        elif all_folders:
            # The caller's own mailbox, or the impersonated one: X-AnchorMailbox only routes, so a
            # delegate (service account) subscribing "all folders" does not get the target mailbox.
            imp = ctx.check_impersonation()
            address = imp.address if imp is not None else ctx.principal.own_address
            if not address:
                raise ResponseError("ErrorNonExistentMailbox",
                                    "SubscribeToAllFolders subscribes the caller's own or the impersonated mailbox; "
                                    "the caller has none.")
            mbx = ctx.mailbox(address)
        elif not folders:
            raise ResponseError("ErrorInvalidSubscriptionRequest", "Give FolderIds or SubscribeToAllFolders=\"true\".")
        else:
            mbx = folders[0].mailbox
            if any(f.mailbox is not mbx for f in folders):
                raise ResponseError("ErrorInvalidSubscriptionRequest",
                                    "A subscription covers folders of one mailbox only.")
        refused = hub.refused(mbx.address)
        if refused is not None:
            raise ResponseError(refused, _text(refused))
        types_el = req.find(t("EventTypes"))
        event_types = frozenset((el.text or "").strip() for el in (types_el if types_el is not None else []))
        timeout = 0
        with hub.lock:
            budget = budget_of(ctx)
            if sum(1 for x in hub.subs.values() if x.budget == budget) >= hub.config.max_subscriptions:
                raise ResponseError("ErrorExceededSubscriptionCount", _text("ErrorExceededSubscriptionCount"))
            log = hub._log(mbx)
            cursor = log.head
            if not streaming:
                timeout = int((req.findtext(t("Timeout")) or "30").strip())
                wm = req.findtext(t("Watermark"))
                if wm:
                    cursor = _check_watermark(hub, mbx, wm)
            s = Subscription(id=new_subscription_id(), kind="streaming" if streaming else "pull", owner=_owner(ctx),
                             mailbox=mbx, folders=None if all_folders else frozenset(f.num for f in folders),
                             event_types=event_types, cursor=cursor, timeout_min=timeout,
                             backend=_affinity(ctx, mbx), budget=budget)
            hub.subs[s.id] = s
            hub.by_mailbox.setdefault(mbx.index, set()).add(s)
            hub.counters["subscriptions"] += 1
    except ResponseError as exc:
        error_message(msgs, "Subscribe", exc.code, exc.text)
        ctx.response_codes.append(exc.code)
        return resp
    msg = success_message(msgs, "Subscribe")
    etree.SubElement(msg, m("SubscriptionId")).text = s.id
    if not streaming:
        etree.SubElement(msg, m("Watermark")).text = encode_watermark(mbx.index, cursor)
    ctx.items += 1
    return resp


def backend_of(address: str) -> str:
    """The (pretend) mailbox server an address routes to, as an X-BackEndOverrideCookie value."""
    crc = zlib.crc32(address.strip().lower().encode())
    return f"MBX{crc:08X}.ews-testserver.local~{crc}"


def route_of(ctx: Context, fallback: str) -> str:
    """Where Exchange 2013+ routes a notification request: the X-BackEndOverrideCookie (header or cookie)
    when X-PreferServerAffinity is true, else the X-AnchorMailbox's server, else ``fallback``'s."""
    headers = ctx.headers if ctx.headers is not None else {}
    if _flag(headers.get("X-PreferServerAffinity")):
        given = headers.get("X-BackEndOverrideCookie") or _cookie(headers.get("Cookie", ""), "X-BackEndOverrideCookie")
        if given:
            return given.strip()
    return backend_of(ctx.anchor or ctx.request.impersonate or fallback)


def _affinity(ctx: Context, mbx: Mailbox) -> str:
    """The backend a new subscription lives on. X-PreferServerAffinity with X-AnchorMailbox and no
    X-BackEndOverrideCookie: the response sets that cookie, which the client sends with the group's
    other Subscribe and GetStreamingEvents/GetEvents requests."""
    headers = ctx.headers if ctx.headers is not None else {}
    route = route_of(ctx, mbx.address)
    given = headers.get("X-BackEndOverrideCookie") or _cookie(headers.get("Cookie", ""), "X-BackEndOverrideCookie")
    if _flag(headers.get("X-PreferServerAffinity")) and ctx.anchor and not given:
        ctx.set_cookies.append(f"X-BackEndOverrideCookie={route}; path=/; HttpOnly")
    return route


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _check_watermark(hub: NotificationHub, mbx: Mailbox, value: str) -> int:
    try:
        index, seq = decode_watermark(value)
    except ValueError as exc:
        raise ResponseError("ErrorInvalidWatermark", _text("ErrorInvalidWatermark")) from exc
    log = hub._log(mbx)
    if index != mbx.index or seq > log.head:
        raise ResponseError("ErrorInvalidWatermark", _text("ErrorInvalidWatermark"))
    if seq < log.floor:
        raise ResponseError("ErrorReadEventsFailed", _text("ErrorReadEventsFailed"))
    return seq


def unsubscribe(ctx: Context) -> etree._Element:
    hub = _hub(ctx)
    hub.sweep()
    resp, msgs = response_root("Unsubscribe")
    sid = (ctx.request.body.findtext(m("SubscriptionId")) or "").strip()
    try:
        with hub.lock:
            s = hub._lookup(sid, _owner(ctx), lambda a: route_of(ctx, a))
            ctx.mailboxes.add(s.mailbox.address)
            hub._remove(s, "unsubscribed")
    except ResponseError as exc:
        error_message(msgs, "Unsubscribe", exc.code, exc.text)
        ctx.response_codes.append(exc.code)
        return resp
    success_message(msgs, "Unsubscribe")
    return resp


def get_events(ctx: Context) -> etree._Element:
    hub = _hub(ctx)
    hub.sweep()
    resp, msgs = response_root("GetEvents")
    body = ctx.request.body
    sid = (body.findtext(m("SubscriptionId")) or "").strip()
    wm = (body.findtext(m("Watermark")) or "").strip()
    try:
        with hub.lock:
            try:
                s = hub._lookup(sid, _owner(ctx), lambda a: route_of(ctx, a))
            except ResponseError as exc:
                if exc.code == "ErrorInvalidSubscription":
                    raise ResponseError("ErrorInvalidPullSubscriptionId", _text("ErrorInvalidPullSubscriptionId")) from exc
                raise
            if s.kind != "pull":
                raise ResponseError("ErrorInvalidPullSubscriptionId", _text("ErrorInvalidPullSubscriptionId"))
            ctx.mailboxes.add(s.mailbox.address)
            since = _check_watermark(hub, s.mailbox, wm)
            s.last_use = time.monotonic()
            log = hub._log(s.mailbox)
            wanted = [e for e in log.after(since) if s.wants(e)]
            page = wanted[:hub.config.max_pull_events]
            head = log.head
    except ResponseError as exc:
        error_message(msgs, "GetEvents", exc.code, exc.text)
        ctx.response_codes.append(exc.code)
        return resp
    msg = success_message(msgs, "GetEvents")
    note = etree.SubElement(msg, m("Notification"))
    sub(note, "SubscriptionId", s.id)
    sub(note, "PreviousWatermark", wm)
    sub(note, "MoreEvents", "true" if len(wanted) > len(page) else "false")
    if page:
        for ev in page:
            ev.write(note, encode_watermark(s.mailbox.index, ev.seq))
    else:
        # Nothing new: one StatusEvent with the current watermark (the client moves on from there).
        status = sub(note, "StatusEvent")
        sub(status, "Watermark", encode_watermark(s.mailbox.index, head))
    s.delivered += len(page)
    ctx.items += len(page)
    return resp


def streaming_request(ctx: Context) -> tuple[list[str], int]:
    """(subscription ids, ConnectionTimeout minutes) of a GetStreamingEvents request (schema-checked)."""
    _check_version(ctx, "http://schemas.microsoft.com/exchange/services/2006/messages:GetStreamingEvents")
    body = ctx.request.body
    ids_el = body.find(m("SubscriptionIds"))
    ids = [(el.text or "").strip() for el in (ids_el if ids_el is not None else [])]
    return ids, int((body.findtext(m("ConnectionTimeout")) or "30").strip())


def stream_message(kind: str, payload: Any) -> etree._Element:
    """The GetStreamingEventsResponse element for one chunk."""
    resp, msgs = response_root("GetStreamingEvents")
    if kind == "error":
        code, ids, closed = payload
        msg = error_message(msgs, "GetStreamingEvents", code, _text(code))
        if ids:
            err = etree.SubElement(msg, m("ErrorSubscriptionIds"))
            for sid in ids:
                sub(err, "SubscriptionId", sid)
        if closed:
            etree.SubElement(msg, m("ConnectionStatus")).text = "Closed"
        return resp
    msg = success_message(msgs, "GetStreamingEvents")
    if kind == "events":
        notes = etree.SubElement(msg, m("Notifications"))
        for s, evs in payload.items():
            note = sub(notes, "Notification")
            sub(note, "SubscriptionId", s.id)
            for ev in evs:
                ev.write(note, None)
        return resp
    etree.SubElement(msg, m("ConnectionStatus")).text = "Closed" if kind == "closed" else "OK"
    return resp


def budget_of(ctx: Context) -> str:
    """Whose budget (streaming connections, subscriptions) a request uses: the impersonated mailbox's
    (a copy of it per caller, as Exchange does) or the caller's."""
    if ctx.request.impersonate:
        return f"{ctx.principal.username.lower()}>{ctx.request.impersonate.lower()}"
    return ctx.principal.username.lower()


HANDLERS: dict[str, Callable[[Context], etree._Element]] = {
    "Subscribe": subscribe,
    "Unsubscribe": unsubscribe,
    "GetEvents": get_events,
}


# ---------------------------------------------------------------------------------------------
# /admin/notifications

def admin(hub: NotificationHub, method: str, path: str, body: Any) -> tuple[int, Any] | None:
    """``GET /admin/notifications``; ``PUT .../config``; ``POST .../kill``, ``.../drop``; ``PUT|GET .../refuse``.
    None when the path is not one of these."""
    route = (method, path.rstrip("/"))
    if route == ("GET", "/admin/notifications"):
        return 200, hub.snapshot()
    if route == ("PUT", "/admin/notifications/config"):
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object of settings")
        with hub.lock:
            hub.config.update(body)
            for c in hub.connections:  # a shorter heartbeat applies at once
                c.next_heartbeat = min(c.next_heartbeat, time.monotonic() + hub.config.heartbeat_s)
                c.wake.set()
            return 200, hub.config.to_json()
    if route == ("POST", "/admin/notifications/kill"):
        b = body if isinstance(body, dict) else {}
        return 200, {"killed": hub.kill(b.get("subscription_id"), b.get("mailbox"))}
    if route == ("POST", "/admin/notifications/drop"):
        b = body if isinstance(body, dict) else {}
        return 200, {"dropped": hub.drop_connections(b.get("mailbox"))}
    if route == ("PUT", "/admin/notifications/refuse"):
        if not isinstance(body, list):
            raise ValueError("the body must be a JSON list of {mailbox, code, count}")
        rules = []
        for r in body:
            if not isinstance(r, dict) or set(r) - {"mailbox", "code", "count"}:
                raise ValueError("each refusal is {mailbox, code, count}")
            rules.append(Refusal(mailbox=str(r.get("mailbox", "*")).lower(), code=str(r.get("code", "ErrorAccessDenied")),
                                 count=int(r.get("count", 0))))
        with hub.lock:
            hub.refusals = rules
        return 200, [asdict(r) for r in rules]
    if route == ("GET", "/admin/notifications/refuse"):
        with hub.lock:
            return 200, [asdict(r) for r in hub.refusals]
    return None
