"""The API's front door: a pure ASGI middleware that runs before FastAPI sees a request.

In this order, and before a single byte of the body is read:

1. **Host** (``--no-auth`` only): the ``Host`` header must name the loopback address the server is
   bound to (``127.0.0.1``, ``localhost``, ``::1``), so a page on another site whose DNS name
   rebinds to 127.0.0.1 cannot read the comments through the victim's browser.
2. **Token**: ``/api/...`` needs ``Authorization: Bearer <token>``; ``/openapi.json`` the bearer
   token or the page cookie. A request without it gets its 401 at once and its body is never read
   (uvicorn stops reading the socket after ~64 KiB of unread body: the memory of an unauthenticated
   request does not grow with what the client sends).
3. **Body limits per route** (``ROUTE_LIMITS``): a declared ``Content-Length`` over the limit is a
   413 without reading; otherwise the body is read here, counted while it streams in, and refused
   with 413 the moment it passes the limit. The sync route also refuses a body with more JSON
   separators than ``MAX_SYNC_JSON_VALUES`` (each JSON value costs ~50-100 bytes once parsed: this
   bounds the parsed size of a body however it is shaped). An attachment upload
   (``PUT /api/_private/sources/id:.../attachments/<i>``, 32 MiB) with a declared ``Content-Length``
   within the limit is passed through unread (the server reads no more than declared and the route
   spools the multipart part to a temporary file): it is never held whole in memory here. At most ``SYNC_PARSE_SLOTS`` sync bodies
   are read and parsed at once; the others wait their turn.

The body that passed is handed to the application from memory, so FastAPI's own parsing never
reads more than the limit. Access is logged here (``exchange_sync.api.access``) as method, path
and status: never the query string (the page used to accept ``?token=``; it no longer does, and a
token someone puts in a URL anyway is not written to a log).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exchange_sync.api.auth import PAGE_COOKIE, page_cookie_value, token_matches
from exchange_sync.api.errors import error_response

access_log = logging.getLogger("exchange_sync.api.access")

KIB = 1024
MIB = 1024 * KIB

# The documented maximum of one sync request (docs/comments-api.md): 16,384 comments, 16 MiB of
# JSON, at most 1,000,000 JSON separators ('{', '[', ',' and ':' bytes: an upper bound of the number
# of values). The Re:infer destination sends batches of 8 MiB by default.
MAX_SYNC_BYTES = 16 * MIB
MAX_SYNC_JSON_VALUES = 1_000_000
MAX_LOGIN_BYTES = 16 * KIB
# One attachment upload (multipart, one file): the default attachments.max_bytes (25 MiB) and room.
MAX_ATTACHMENT_UPLOAD_BYTES = 32 * MIB
MAX_OTHER_BYTES = 64 * KIB  # no other route takes a body; a small one is tolerated and ignored
SYNC_PARSE_SLOTS = 2

_SYNC_PATH = re.compile(r"^/api/v1/sources/[^/]+/[^/]+/sync/?$")
_BUCKET_EMAILS_PATH = re.compile(r"^/api/_private/buckets/[^/]+/[^/]+/emails/?$")
_ATTACHMENT_UPLOAD_PATH = re.compile(r"^/api/_private/sources/id:[^/]+/comments/[^/]+/attachments/[^/]+/?$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def route_limit(method: str, path: str) -> int:
    if method == "POST" and _SYNC_PATH.match(path):
        return MAX_SYNC_BYTES
    if method == "PUT" and _BUCKET_EMAILS_PATH.match(path):  # raw emails: the sync route's limits
        return MAX_SYNC_BYTES
    if method == "PUT" and _ATTACHMENT_UPLOAD_PATH.match(path):
        return MAX_ATTACHMENT_UPLOAD_BYTES
    if method == "POST" and path == "/login":
        return MAX_LOGIN_BYTES
    return MAX_OTHER_BYTES


def host_of(header: str) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1', '[::1]:8000' -> '::1', 'Localhost.' -> 'localhost'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


def _headers(scope: Scope) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.lower(), value)
    return found


def _cookie(header: bytes | None, name: str) -> str | None:
    if not header:
        return None
    for part in header.decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip('"')
    return None


def _bearer(header: bytes | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _printable(text: str, limit: int = 300) -> str:
    text = text[:limit]
    return "".join(c if c.isprintable() and c not in "\"\\" else f"\\x{ord(c):02x}" for c in text)


@dataclass
class _Refusal:
    status: int
    message: str


class ApiGate:
    def __init__(self, app: ASGIApp, *, token: str | None, allowed_hosts: frozenset[str] | None,
                 max_sync_bytes: int = MAX_SYNC_BYTES, max_sync_values: int = MAX_SYNC_JSON_VALUES) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = allowed_hosts
        self.max_sync_bytes = max_sync_bytes
        self.max_sync_values = max_sync_values
        self._sync_slots: asyncio.Semaphore | None = None

    def _limit(self, method: str, path: str) -> int:
        limit = route_limit(method, path)
        return self.max_sync_bytes if limit == MAX_SYNC_BYTES else limit

    def _check(self, scope: Scope, headers: dict[bytes, bytes]) -> _Refusal | None:
        if self.allowed_hosts is not None:
            host = host_of(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed_hosts:
                return _Refusal(421, "this server answers only requests addressed to its loopback address "
                                     f"({', '.join(sorted(self.allowed_hosts))})")
        if self.token is None:
            return None
        path: str = scope["path"]
        if path.startswith("/api/") or path == "/api":
            presented = _bearer(headers.get(b"authorization"))
            if presented is None:
                return _Refusal(401, "missing bearer token: send 'Authorization: Bearer <token>'")
            if not token_matches(presented, self.token):
                return _Refusal(401, "invalid API token")
        elif path == "/openapi.json":
            presented = _bearer(headers.get(b"authorization"))
            cookie = _cookie(headers.get(b"cookie"), PAGE_COOKIE)
            cookie_ok = cookie is not None and hmac.compare_digest(
                cookie.encode("latin-1", "replace"), page_cookie_value(self.token).encode())
            if not cookie_ok and not token_matches(presented, self.token):
                return _Refusal(401, "missing or invalid bearer token")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status_box = [0]

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, logged_send)
        finally:
            client = scope.get("client")
            access_log.info('%s - "%s %s" %d', f"{client[0]}:{client[1]}" if client else "-", scope["method"],
                            _printable(scope["path"]), status_box[0])

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        refusal = self._check(scope, headers)
        if refusal is not None:
            extra = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
            await error_response(refusal.status, refusal.message, extra)(scope, receive, send)
            return
        limit = self._limit(scope["method"], scope["path"])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await error_response(400, "invalid Content-Length")(scope, receive, send)
                return
            if size > limit:
                await error_response(413, f"request body larger than {limit} bytes")(scope, receive, send)
                return
        if declared is not None and scope["method"] == "PUT" and _ATTACHMENT_UPLOAD_PATH.match(scope["path"]):
            # An upload with a declared length within the limit streams through (the server reads no
            # more than Content-Length); the application spools it, so it is never whole in memory here.
            await self.app(scope, receive, send)
            return
        is_sync = limit == self.max_sync_bytes and scope["method"] in ("POST", "PUT")
        if not is_sync:
            await self._forward(scope, receive, send, limit, count_values=False)
            return
        if self._sync_slots is None:
            self._sync_slots = asyncio.Semaphore(SYNC_PARSE_SLOTS)
        async with self._sync_slots:
            await self._forward(scope, receive, send, limit, count_values=True)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, limit: int, *, count_values: bool) -> None:
        chunks: list[bytes] = []
        received = 0
        values = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await error_response(413, f"request body larger than {limit} bytes")(scope, receive, send)
                return
            if count_values and chunk:
                values += chunk.count(b"{") + chunk.count(b"[") + chunk.count(b",") + chunk.count(b":")
                if values > self.max_sync_values:
                    await error_response(
                        413, f"request body has more than {self.max_sync_values} JSON values: split the batch"
                    )(scope, receive, send)
                    return
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        del chunks
        delivered = False

        async def replay() -> Message:
            nonlocal delivered, body
            if not delivered:
                delivered = True
                message = {"type": "http.request", "body": body, "more_body": False}
                body = b""
                return message
            return await receive()

        await self.app(scope, replay, send)
