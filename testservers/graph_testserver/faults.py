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
- ``forbidden``: HTTP 403 ``ErrorAccessDenied`` (a request budget for tests: ``after`` N requests, every
  later one is refused, so a client that loops fails fast instead of hanging).
- ``drop``: the connection is closed without a response (not for batch sub-requests: their batch is dropped).
- ``slow``: the response is delayed by ``delay_s`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from testserver_core.faults import FaultPlan, FaultRuleBase

__all__ = ["KINDS", "FaultPlan", "FaultRule"]

KINDS = ("throttle", "http_503", "gone", "unauthorized", "forbidden", "drop", "slow")


@dataclass
class FaultRule(FaultRuleBase):
    KINDS = KINDS

    kind: str
    operation: str = "*"
    after: int = 0
    count: int = 1
    retry_after_s: int = 1
    delay_s: float = 2.0
    seen: int = 0
    fired: int = 0
