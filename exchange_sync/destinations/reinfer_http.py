"""HTTP to a Re:infer / Communications Mining tenant, shared by its two destinations (the comments
``sync`` endpoint and the bucket ``emails`` endpoint): a session per thread with the bearer token,
retries with tenacity, and the errors a caller acts on.

* ``429``, ``409``, ``5xx`` and connection errors are retried with exponential backoff, honouring
  ``Retry-After`` (as the platform's own CLI does: ``reinfer/cli`` ``api/src/retry.rs`` retries
  server errors, 429 and 409); after ``max_attempts`` a ``ReinferError`` names the last status.
* A refusal **for quota** (HTTP 402, 403 or 429 whose message mentions a quota) is
  ``ReinferQuotaError`` at once: a tenant's comment quota is a hard limit (``reinfer/cli``
  ``TenantQuotaKind``: ``comments``, ``comments_per_source``) that no retry lifts. The pipeline
  records it as ``comment_quota_hit`` and pauses the integration.
* Any other ``401``/``403`` is ``ReinferAuthError`` at once (the token).

The token is only ever put in the ``Authorization`` header (never in ``repr``, errors or logs).
"""

from __future__ import annotations

import email.utils
import logging
import threading
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
QUOTA_STATUSES = frozenset({402, 403, 429})


class ReinferError(RuntimeError):
    """The API refused a request, or kept failing after the retries."""


class ReinferAuthError(ReinferError):
    """The API rejected the token (401/403): retrying cannot help."""

    reason = "destination_unauthorized"


class ReinferUnavailable(ReinferError):
    """429/5xx/connection errors through every retry: the API is down for every mailbox."""

    reason = "destination_unavailable"


class ReinferQuotaError(ReinferError):
    """The API refused for quota (``comment_quota_hit``): retrying cannot help until the quota is raised."""

    reason = "comment_quota_hit"


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - datetime.now(timezone.utc)).total_seconds(), 0.0)


def api_message(response: requests.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return body["message"][:500]
    except ValueError:
        pass
    return (response.text or response.reason or "")[:200]


def is_quota_refusal(status: int, message: str) -> bool:
    return status in QUOTA_STATUSES and "quota" in message.lower()


class ReinferHttp:
    """Requests to ``base_url`` with the token, retries and error classes above. ``target`` names
    what is written to (``project/source`` or ``bucket owner/name``) in error messages."""

    def __init__(self, base_url: str, token: str, *, target: str, verify: bool | str = True, timeout: float = 120.0,
                 max_attempts: int = 8, backoff_base: float = 1.0, backoff_max: float = 60.0) -> None:
        if not token:
            raise ValueError("an API token is required")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.target = target
        self.verify = verify
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self._token}"
            session.headers["User-Agent"] = "exchange-sync"
            session.verify = self.verify
            self._local.session = session
        return session

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.backoff_max)
        return min(self.backoff_base * 2 ** (state.attempt_number - 1), self.backoff_max)

    def _request(self, method: str, url: str, *, body: Callable[[], Any] | None = None, **kwargs: Any) -> requests.Response:
        """One request with retries; returns a response with a non-retryable status. ``body``: a
        factory of a fresh (streamed) request body per attempt, closed after it (a retry re-reads)."""

        def attempt() -> requests.Response:
            data = body() if body is not None else None
            try:
                if data is not None:
                    kwargs["data"] = data
                response = self._session().request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise _Retryable(f"{type(exc).__name__} talking to {self.base_url}") from exc
            finally:
                if data is not None and hasattr(data, "close"):
                    data.close()
            status = response.status_code
            if status in QUOTA_STATUSES or status in RETRY_STATUSES or status == 401:
                message = api_message(response)
                if is_quota_refusal(status, message):
                    raise ReinferQuotaError(f"{self.base_url} refused to load more into {self.target} for quota "
                                            f"(HTTP {status}: {message}); raise the quota, then start the integration")
                if status in RETRY_STATUSES:
                    log.info("%s %s -> HTTP %s: %s; will retry", method, url, status, message)
                    raise _Retryable(f"HTTP {status}: {message}", retry_after_seconds(response.headers.get("Retry-After")))
                if status in (401, 403):
                    raise ReinferAuthError(f"{self.base_url} rejected the API token for {self.target} (HTTP {status}: "
                                           f"{message}); check the token and its permissions")
            return response

        retrying = Retrying(stop=stop_after_attempt(self.max_attempts), wait=self._wait,
                            retry=retry_if_exception_type(_Retryable), reraise=True)
        try:
            return retrying(attempt)
        except _Retryable as exc:
            raise ReinferUnavailable(f"{method} {url} still failing after {self.max_attempts} attempts: {exc}") from exc
