"""Fault plans for the Graph test server (``PUT /admin/faults``), in the EWS test server's rule format.

A rule matches requests whose operation equals ``operation`` (``"*"``: any; ``$batch`` sub-requests are
matched one by one under their own operation, the envelope as ``batch``). The first ``after`` matching
requests pass; the next ``count`` get the fault (``count`` <= 0: all later ones). First firing rule wins.

Operations: ``token``, ``user.get``, ``mailFolders.list``, ``mailFolders.get``, ``mailFolders.delta``,
``messages.delta``, ``messages.list``, ``message.get``, ``message.value``, ``batch``.

Kinds:
- ``throttle``: HTTP 429 ``TooManyRequests`` (``ApplicationThrottled``) with ``Retry-After: retry_after_s``
  (``retry_after_s`` < 0: no Retry-After header, the client must back off on its own).
- ``http_503``: HTTP 503 ``ServiceUnavailable`` with ``Retry-After: retry_after_s``.
- ``gone``: HTTP 410 ``SyncStateNotFound`` (as Graph answers an expired delta token).
- ``unauthorized``: every issued access token expires now and this request answers 401 ``InvalidAuthenticationToken``.
- ``drop``: the connection is closed without a response (not for batch sub-requests: their batch is dropped).
- ``slow``: the response is delayed by ``delay_s`` seconds.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

KINDS = ("throttle", "http_503", "gone", "unauthorized", "drop", "slow")


@dataclass
class FaultRule:
    kind: str
    operation: str = "*"
    after: int = 0
    count: int = 1
    retry_after_s: int = 1
    delay_s: float = 2.0
    seen: int = 0
    fired: int = 0

    @classmethod
    def from_json(cls, data: object) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError("each fault must be a JSON object")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}, got {kind!r}")
        allowed = {"kind", "operation", "after", "count", "retry_after_s", "delay_s"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        rule = cls(kind=kind)
        for key in allowed - {"kind"}:
            if key in data:
                value = data[key]
                setattr(rule, key, str(value) if key == "operation" else (float(value) if key == "delay_s" else int(value)))
        return rule

    def to_json(self) -> dict:
        return asdict(self)


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []

    def set(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self.rules = rules

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [r.to_json() for r in self.rules]

    def match(self, operation: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.operation not in ("*", operation):
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                if rule.count > 0 and rule.fired >= rule.count:
                    continue
                rule.fired += 1
                return rule
        return None
