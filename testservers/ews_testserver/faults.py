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
- ``drop_stream`` (GetStreamingEvents): the stream is served, and its socket closed mid-stream
  ``delay_s`` seconds after it opened (the subscriptions survive).
- ``kill_subscription``: GetStreamingEvents: the stream's subscriptions are killed ``delay_s`` seconds
  after it opened (an error message for them, then ErrorSubscriptionNotFound on any use); GetEvents,
  Unsubscribe: the request's subscription is killed before the request is answered.
"""

from __future__ import annotations

from dataclasses import dataclass

from testserver_core.faults import FaultPlan, FaultRuleBase

__all__ = ["KINDS", "FaultPlan", "FaultRule"]

KINDS = ("server_busy", "connection_count", "http_503", "drop", "slow", "drop_stream", "kill_subscription")


@dataclass
class FaultRule(FaultRuleBase):
    KINDS = KINDS

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

    def eligible(self, in_flight: int) -> bool:
        # connection_count: only requests over the concurrency budget count (and fire).
        return not (self.kind == "connection_count" and in_flight <= self.max_concurrent)
