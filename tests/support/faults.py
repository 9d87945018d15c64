"""A fault-injecting ASGI wrapper for the comments API (tests of retrying clients).

``FaultInjector(app, rules)``: each rule is matched against incoming requests in order; a
matching rule with ``times`` left fires: it answers ``status`` itself *before* the application
sees the request (``after=False``: nothing written), or lets the application handle the request
and then replaces its response with ``status`` (``after=True``: written, but the client is told
it failed - the harder case for a client).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class FaultRule:
    method: str
    path_suffix: str
    status: int
    times: int
    after: bool = False
    skip: int = 0  # let this many matching requests through first
    retry_after: str | None = None
    fired: int = field(default=0)


class FaultInjector:
    def __init__(self, app: ASGIApp, rules: list[FaultRule]) -> None:
        self.app = app
        self.rules = rules
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status sent)
        self._lock = threading.Lock()

    def _pick(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.method == method and path.endswith(rule.path_suffix):
                    if rule.skip > 0:
                        rule.skip -= 1
                        return None
                    if rule.fired < rule.times:
                        rule.fired += 1
                        return rule
            return None

    async def _fail(self, rule: FaultRule, send: Send) -> None:
        body = json.dumps({"status": "error", "message": f"injected fault {rule.status}"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if rule.retry_after is not None:
            headers.append((b"retry-after", rule.retry_after.encode()))
        await send({"type": "http.response.start", "status": rule.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        rule = self._pick(method, path)
        if rule is None:
            # Record before the response leaves: the client may look at `requests` as soon as it
            # has its answer, before this coroutine would get to run again.
            index = len(self.requests)
            self.requests.append((method, path, 0))

            async def record(message: Message) -> None:
                if message["type"] == "http.response.start":
                    self.requests[index] = (method, path, message["status"])
                await send(message)

            await self.app(scope, receive, record)
            return
        if rule.after:
            async def swallow(_message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
        else:
            # Drain the body so the connection stays usable.
            more = True
            while more:
                message = await receive()
                more = message.get("more_body", False) and message["type"] == "http.request"
        self.requests.append((method, path, rule.status))
        await self._fail(rule, send)
