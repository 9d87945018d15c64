"""Fault injection plans (set with ``PUT /admin/faults``).

A rule matches EWS requests whose operation equals ``operation`` (or any, for ``"*"``). The first
``after`` matching requests pass untouched; the next ``count`` ones get the fault (``count`` <= 0:
every later matching request). Rules are checked in order; the first one that fires wins.

Kinds:
- ``server_busy``: HTTP 500 SOAP fault ErrorServerBusy with ``BackOffMilliseconds`` = back_off_ms.
- ``connection_count``: HTTP 500 SOAP fault ErrorExceededConnectionCount, but only for a request that
  arrives while more than ``max_concurrent`` (default 1) EWS requests are being served at once; only
  such over-budget requests count towards ``after``/``count``. (Real Exchange counts concurrent
  requests per user against EWSMaxConcurrency.)
- ``http_503``: HTTP 503 with ``Retry-After: retry_after_s`` and an empty body.
- ``drop``: the connection is closed without any response.
- ``slow``: the response is delayed by ``delay_s`` seconds, then served normally.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

KINDS = ("server_busy", "connection_count", "http_503", "drop", "slow")


@dataclass
class FaultRule:
    kind: str
    operation: str = "*"
    after: int = 0
    count: int = 1
    back_off_ms: int = 1500
    retry_after_s: int = 2
    delay_s: float = 3.0
    max_concurrent: int = 1
    seen: int = 0
    fired: int = 0

    @classmethod
    def from_json(cls, data: dict) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError("each fault must be a JSON object")
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}, got {kind!r}")
        allowed = {"kind", "operation", "after", "count", "back_off_ms", "retry_after_s", "delay_s", "max_concurrent"}
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

    def match(self, operation: str, in_flight: int) -> FaultRule | None:
        """Count this request against the rules; return the rule that fires, if any."""
        with self._lock:
            for rule in self.rules:
                if rule.operation not in ("*", operation):
                    continue
                if rule.kind == "connection_count" and in_flight <= rule.max_concurrent:
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                if rule.count > 0 and rule.fired >= rule.count:
                    continue
                rule.fired += 1
                return rule
        return None
