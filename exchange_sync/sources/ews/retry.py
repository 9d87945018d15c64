"""Our retry layer around one idempotent read (one page, one GetItem chunk).

exchangelib retries ErrorServerBusy/503 itself (bounded by BoundedFaultTolerance), but it does not retry
a dropped connection or read timeout while its session pool has one session (ErrorTimeoutExpired is
re-raised, exchangelib issue #1375), and it re-raises ErrorExceededConnectionCount once its pool is at
one session. Those are retried here with exponential waits, at most ``attempts`` times. A back-off
budget exhausted inside exchangelib (RateLimitError) is final: the server told us to stay away.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import requests
from exchangelib import errors as ews
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from ..errors import tls_error_from
from .errors import REJECTED, TRANSIENT, map_exception
from .protocol import BoundedFaultTolerance

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, (ews.RateLimitError, ews.UnauthorizedError, *REJECTED)):
        return False
    if tls_error_from(exc, "") is not None:
        return False
    if isinstance(exc, TRANSIENT):
        return True
    # Connection problems outside post_ratelimited (e.g. the OAuth2 token request).
    return isinstance(exc, (requests.ConnectionError, requests.Timeout)) and not isinstance(
        exc, requests.exceptions.SSLError
    )


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: BoundedFaultTolerance,
    attempts: int,
    max_wait_s: float,
    server: str,
    mailbox: str | None,
    operation: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    def _log(state: object) -> None:
        outcome = getattr(state, "outcome", None)
        exc = outcome.exception() if outcome is not None else None
        log.warning(
            "%s for %s on %s failed (%s), retrying (attempt %s of %s)",
            operation, mailbox or "-", server, type(exc).__name__, getattr(state, "attempt_number", "?"), attempts,
        )

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, min=0.5, max=max(0.5, min(30.0, max_wait_s))),
        retry=retry_if_exception(is_retryable),
        reraise=True,
        sleep=sleep,
        before_sleep=_log,
    )
    try:
        for attempt in retrying:
            with attempt:
                policy.begin_call()
                return fn()
    except Exception as exc:  # noqa: BLE001 - everything leaves as a SourceError
        raise map_exception(exc, server=server, mailbox=mailbox, operation=operation) from exc
    raise AssertionError("unreachable")  # pragma: no cover
