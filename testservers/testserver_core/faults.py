"""Fault plans (``PUT /admin/faults``) shared by the EWS and Graph test servers.

A rule matches requests whose operation equals ``operation`` (or any, for ``"*"``). The first
``after`` matching requests pass untouched; the next ``count`` ones get the fault (``count`` <= 0:
every later matching request). Rules are checked in order; the first one that fires wins.
Each server defines its rule dataclass (kinds, parameters, defaults) with ``FaultRuleBase`` mixed in.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, fields
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="FaultRuleBase")

COUNTERS = ("seen", "fired")  # kept by the plan, not settable through the API


class FaultRuleBase:
    """Mixed into a dataclass with ``kind``, ``operation``, ``after``, ``count``, ``seen``, ``fired``
    and the kinds' parameters (``delay_s`` is a float, ``operation`` a string, every other one an int)."""

    KINDS: ClassVar[tuple[str, ...]] = ()
    kind: str
    operation: str
    after: int
    count: int
    seen: int
    fired: int

    @classmethod
    def from_json(cls: type[R], data: Any) -> R:
        if not isinstance(data, dict):
            raise ValueError("each fault must be a JSON object")
        kind = data.get("kind")
        if kind not in cls.KINDS:
            raise ValueError(f"fault kind must be one of {cls.KINDS}, got {kind!r}")
        allowed = {f.name for f in fields(cls)} - set(COUNTERS)  # type: ignore[arg-type]
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        rule = cls(kind=kind)  # type: ignore[call-arg]
        for key in allowed - {"kind"}:
            if key in data:
                value = data[key]
                setattr(rule, key, str(value) if key == "operation" else (float(value) if key == "delay_s" else int(value)))
        return rule

    def to_json(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    def eligible(self, in_flight: int) -> bool:
        """Whether a request served while ``in_flight`` requests run counts for this rule at all."""
        return True


class FaultPlan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[Any] = []

    def set(self, rules: list[Any]) -> None:
        with self._lock:
            self.rules = rules

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [r.to_json() for r in self.rules]

    def match(self, operation: str, in_flight: int = 0) -> Any:
        """Count this request against the rules; return the rule that fires, if any."""
        with self._lock:
            for rule in self.rules:
                if rule.operation not in ("*", operation):
                    continue
                if not rule.eligible(in_flight):
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                if rule.count > 0 and rule.fired >= rule.count:
                    continue
                rule.fired += 1
                return rule
        return None
