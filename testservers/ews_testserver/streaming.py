"""The HTTP side of GetStreamingEvents: one long-lived ``Transfer-Encoding: chunked`` response.

Each chunk is one complete SOAP envelope (``<?xml ...?><s:Envelope>...</s:Envelope>``) holding one
GetStreamingEventsResponseMessage: notifications, an error for some subscriptions, a keep-alive
(ConnectionStatus OK) or the last one (ConnectionStatus Closed at ConnectionTimeout). That is what
exchangelib's DocumentYielder and the EWS Managed API read. What to send and when is decided by the
notification hub (``notifications.py``); this module writes it, puts every envelope through the
protocol audit, and closes the socket mid-stream when the fault plan drops connections.
"""

from __future__ import annotations

import logging
import select
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from testserver_core import audit

from . import notifications, soap

if TYPE_CHECKING:
    from .operations import Context
    from .server import EwsHandler

log = logging.getLogger("ews_testserver")
CONTENT_TYPE = "text/xml; charset=utf-8"


def _envelope(handler: EwsHandler, kind: str, payload: Any) -> bytes:
    env = soap.build_envelope(notifications.stream_message(kind, payload), handler.state.server_version)
    if audit.enabled():
        handler._audit_tree("GetStreamingEvents", env)
    return soap.serialize(env)


def _start(handler: EwsHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", CONTENT_TYPE)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.send_header("Cache-Control", "private")
    handler.end_headers()


def _chunk(handler: EwsHandler, data: bytes) -> None:
    handler.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
    handler.wfile.flush()


def _finish(handler: EwsHandler) -> None:
    handler.wfile.write(b"0\r\n\r\n")
    handler.wfile.flush()


def _peer_gone(handler: EwsHandler) -> Callable[[], bool]:
    """Whether the client closed its end: nothing else arrives on a streaming connection, so a readable
    socket means FIN (or a TLS close_notify) or a reset."""
    sock = handler.connection

    def gone() -> bool:
        try:
            readable, _, errored = select.select([sock], [], [sock], 0)
        except (OSError, ValueError):
            return True
        return bool(readable or errored)

    return gone


def serve_stream(handler: EwsHandler, ctx: Context, entry: dict[str, Any], fault: Any = None) -> None:
    """Answer a GetStreamingEvents request on ``handler``'s connection until it ends. ``fault``: a fault
    plan rule of kind drop_stream / kill_subscription, acted on ``fault.delay_s`` after the stream opened."""
    state = handler.state
    hub = state.hub
    try:
        ctx.check_impersonation()
        ids, timeout = notifications.streaming_request(ctx)
    except soap.SoapFault as exc:
        handler._fault(entry, exc, "GetStreamingEvents")
        return
    conn, code, bad = hub.open_stream(ids, ctx.principal.username.lower(), notifications.budget_of(ctx), timeout,
                                      lambda address: notifications.route_of(ctx, address))
    entry.update(status=200, subscriptions=len(ids), mailbox=ctx.request.impersonate,
                 prefer_affinity=ctx.headers.get("X-PreferServerAffinity") if ctx.headers is not None else None,
                 backend_cookie=ctx.headers.get("X-BackEndOverrideCookie") if ctx.headers is not None else None)
    if conn is None:
        assert code is not None
        entry["response_code"] = code
        state.record(entry)
        try:
            _start(handler)
            _chunk(handler, _envelope(handler, "error", (code, bad, True)))
            _finish(handler)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            handler.close_connection = True
        return
    if fault is not None:
        hub.schedule_fault(conn, fault.kind, fault.delay_s)
    entry.update(response_code="NoError", stream=conn.number,
                 mailboxes=sorted({s.mailbox.address for s in conn.subs.values()}))
    state.record(entry)
    why = "closed"
    peer_gone = _peer_gone(handler)
    try:
        _start(handler)
        while True:
            kind, payload = hub.next_message(conn, peer_gone)
            if kind == "gone":
                why = "client closed the connection"
                handler.close_connection = True
                return
            if kind == "drop":
                why = "drop"
                handler._drop()
                return
            if kind == "end":  # every subscription left (killed, unsubscribed, moved to another connection)
                why = "no subscriptions left"
                _finish(handler)
                return
            _chunk(handler, _envelope(handler, kind, payload))
            conn.sent += 1
            if kind == "events":
                hub.delivered(conn, payload)
            elif kind == "closed" or (kind == "error" and payload[2]):
                why = "closed" if kind == "closed" else f"{payload[0]} for its last subscription"
                _finish(handler)
                return
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as exc:
        why = f"client gone ({type(exc).__name__})"
        handler.close_connection = True
    finally:
        hub.close_stream(conn, why)
        log.debug("stream %s ended: %s", conn.number, why)
