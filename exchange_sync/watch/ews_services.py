"""EWS notification requests: exchangelib's Subscribe / GetStreamingEvents / GetEvents / Unsubscribe
services with our payloads (raw FolderIds of the synced folders) and the affinity of a subscription group.

Affinity (Microsoft, "Maintain affinity between a group of subscriptions and the Mailbox server"):
every request of a group carries ``X-AnchorMailbox: <the group's anchor mailbox>`` (the first of the
group in alphabetical order) and ``X-PreferServerAffinity: true``; the anchor's Subscribe response
sets the ``X-BackEndOverrideCookie`` cookie, which every later request of the group sends back, so
the load balancer routes all of them to the Mailbox server that holds the subscriptions. Several
mailboxes' streaming subscriptions can then share one GetStreamingEvents connection. exchangelib
sends the cookie as a header of that name; we send it as the cookie Exchange set *and* as that header.

All of these only create or read notification subscriptions: no mail is ever changed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from exchangelib.properties import Notification
from exchangelib.services import GetEvents, GetStreamingEvents, Unsubscribe
from exchangelib.services.subscribe import SubscribeToPull, SubscribeToStreaming
from exchangelib.util import MNS, add_xml_child, create_element

from exchange_sync.sources.ews.services import folder_id_elem

# Item events that can change what a folder sync returns. FreeBusyChangedEvent is calendar-only.
EVENT_TYPES = ("NewMailEvent", "CreatedEvent", "DeletedEvent", "ModifiedEvent", "MovedEvent", "CopiedEvent")
COOKIE = "X-BackEndOverrideCookie"


@dataclass
class AffinityGroup:
    """The mailboxes whose subscriptions share a Mailbox server affinity (and a streaming connection)."""

    anchor: str
    cookie: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Affinity:
    group: AffinityGroup

    def _extra_headers(self) -> dict[str, str]:
        headers = super()._extra_headers()  # type: ignore[misc]
        headers["X-AnchorMailbox"] = self.group.anchor
        headers["X-PreferServerAffinity"] = "true"
        headers.pop(COOKIE, None)
        if self.group.cookie:
            headers[COOKIE] = self.group.cookie
            headers["Cookie"] = f"{COOKIE}={self.group.cookie}"
        return headers

    def _get_response(self, payload: Any, api_version: str) -> Any:
        response = super()._get_response(payload=payload, api_version=api_version)  # type: ignore[misc]
        value = response.cookies.get(COOKIE)
        if value:
            with self.group.lock:
                if not self.group.cookie:
                    self.group.cookie = value
        return response

    def _handle_response_cookies(self, session: Any) -> None:
        pass  # exchangelib would copy whatever cookie the pooled session holds into the account

    def _get_elements(self, payload: Any) -> Any:
        """One try. exchangelib's loop answers ErrorExceededConnectionCount by shrinking the session pool,
        which waits for a session to come back, and a streaming request holds its session for up to 30
        minutes: the thread would hang. Throttling goes to the watcher's own back-off instead."""
        from oauthlib.oauth2 import TokenExpiredError

        try:
            try:
                yield from self._response_generator(payload=payload)  # type: ignore[attr-defined]
            except TokenExpiredError:  # as exchangelib: a fresh token, once
                yield from self._response_generator(payload=payload)  # type: ignore[attr-defined]
        finally:
            if self.streaming:  # type: ignore[attr-defined]
                self.stop_streaming()  # type: ignore[attr-defined]


def _request_elem(tag: str, folder_ids: Sequence[str]) -> Any:
    request = create_element(tag)
    ids = create_element("t:FolderIds")
    for folder_id in folder_ids:
        ids.append(folder_id_elem(folder_id))
    request.append(ids)
    types = create_element("t:EventTypes")
    for event_type in EVENT_TYPES:
        add_xml_child(types, "t:EventType", event_type)
    request.append(types)
    return request


def _single(results: list[Any]) -> Any:
    if len(results) != 1:
        raise ValueError(f"expected one response message, got {len(results)}")
    if isinstance(results[0], Exception):
        raise results[0]
    return results[0]


class StreamingSubscribe(_Affinity, SubscribeToStreaming):
    def __init__(self, *, account: Any, group: AffinityGroup) -> None:
        super().__init__(account=account)
        self.group = group

    def subscribe(self, folder_ids: Sequence[str]) -> str:
        """A streaming subscription to ``folder_ids``' item events; its SubscriptionId."""
        payload = create_element("m:Subscribe")
        payload.append(_request_elem("m:StreamingSubscriptionRequest", folder_ids))
        return self._elem_to_obj(_single(list(self._get_elements(payload=payload))))


class PullSubscribe(_Affinity, SubscribeToPull):
    def __init__(self, *, account: Any, group: AffinityGroup) -> None:
        super().__init__(account=account)
        self.group = group

    def subscribe(self, folder_ids: Sequence[str], timeout_min: int) -> tuple[str, str]:
        """A pull subscription (expires ``timeout_min`` minutes after the last GetEvents): (id, watermark)."""
        payload = create_element("m:Subscribe")
        request = _request_elem("m:PullSubscriptionRequest", folder_ids)
        add_xml_child(request, "t:Timeout", timeout_min)
        payload.append(request)
        return self._elem_to_obj(_single(list(self._get_elements(payload=payload))))


class StreamingEvents(_Affinity, GetStreamingEvents):
    """GetStreamingEvents of a group's subscriptions. exchangelib reads with a timeout of the whole
    ConnectionTimeout + 60 s; we use ``read_timeout_s`` between chunks: Exchange sends a keep-alive
    while the connection is idle, so a connection silent for that long is dead."""

    def __init__(self, *, account: Any, group: AffinityGroup, connect_timeout_s: float, read_timeout_s: float,
                 on_open: Any = None) -> None:
        super().__init__(account=account)
        self.group = group
        self._timeouts = (connect_timeout_s, read_timeout_s)
        self._on_open = on_open  # called once, on the first message that is not an error (keep-alive or events)

    def _get_element_container(self, message: Any, name: Any = None) -> Any:
        container = super()._get_element_container(message=message, name=name)
        if self._on_open is not None:
            on_open, self._on_open = self._on_open, None
            on_open()
        return container

    def stream(self, subscription_ids: Sequence[str], connection_timeout_min: int):
        """Notifications until the server closes the connection (ConnectionStatus Closed)."""
        generator = self.call(subscription_ids=list(subscription_ids), connection_timeout=connection_timeout_min)
        self.timeout = self._timeouts  # call() set its own; the request is sent on the first next()
        return generator

    def abort(self) -> None:
        """From another thread: end a blocked read now (shutting the socket down wakes the reader)."""
        import socket

        response = self._streaming_response
        raw = getattr(response, "raw", None)
        connection = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class PullEvents(_Affinity, GetEvents):
    def __init__(self, *, account: Any, group: AffinityGroup) -> None:
        super().__init__(account=account)
        self.group = group

    def events(self, subscription_id: str, watermark: str) -> Notification:
        return _single(list(self.call(subscription_id=subscription_id, watermark=watermark)))


class GroupUnsubscribe(_Affinity, Unsubscribe):
    def __init__(self, *, account: Any, group: AffinityGroup) -> None:
        super().__init__(account=account)
        self.group = group

    def unsubscribe(self, subscription_id: str) -> None:
        payload = create_element("m:Unsubscribe")
        add_xml_child(payload, "m:SubscriptionId", subscription_id)
        for result in self._get_elements(payload=payload):
            if isinstance(result, Exception):
                raise result


__all__ = [
    "EVENT_TYPES",
    "MNS",
    "AffinityGroup",
    "GroupUnsubscribe",
    "PullEvents",
    "PullSubscribe",
    "StreamingEvents",
    "StreamingSubscribe",
]
