"""HTTP to Graph: auth header, per-mailbox concurrency, bounded back-off, error mapping, $batch.

- Outlook allows 4 concurrent requests per app and mailbox. Every request takes a permit of its
  mailbox's ``MailboxGate``; a ``$batch`` takes min(n, 4) permits, because Graph dispatches up to four
  sub-requests of a batch to Outlook at once.
- 429/503/504: wait ``Retry-After`` (or 1, 2, 4 ... s without one); a single wait above
  ``max_backoff_s`` or more than ``max_backoff_s`` in total for one call -> ``ServerUnavailable``.
- Dropped connections / timeouts: ``retry_attempts`` tries (only GETs and $batch of GETs are sent, so
  every request is idempotent). TLS failures are never retried.
- 401: the token is dropped from msal's cache and re-acquired once (a revoked or early-expired token);
  a second 401 is a credentials error.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from ..errors import (FolderNotFound, InvalidCredentials, InvalidSyncState, MailboxAccessDenied, MailboxNotFound,
                      ServerUnavailable, SourceError, tls_error_from)
from .auth import TokenProvider

MAX_CONCURRENT_PER_MAILBOX = 4
MAX_BATCH = 20
_RETRY_STATUS = (429, 503, 504)
_MAILBOX_404 = {"ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "MailboxNotFound", "ResourceNotFound",
                "ErrorNonExistentMailbox", "Request_ResourceNotFound"}


class MailboxGate:
    """A counting gate with weighted acquire (a batch takes several permits at once, atomically)."""

    def __init__(self, permits: int = MAX_CONCURRENT_PER_MAILBOX) -> None:
        self.permits = permits
        self._free = permits
        self._cond = threading.Condition()

    def acquire(self, n: int) -> int:
        n = max(1, min(n, self.permits))
        with self._cond:
            while self._free < n:
                self._cond.wait()
            self._free -= n
        return n

    def release(self, n: int) -> None:
        with self._cond:
            self._free += n
            self._cond.notify_all()


class GraphError(SourceError):
    """A Graph error response we do not map to a more specific SourceError."""

    def __init__(self, status: int, code: str, message: str, mailbox: str | None = None) -> None:
        super().__init__(f"Graph answered HTTP {status} {code}: {message}", mailbox=mailbox)
        self.status = status
        self.code = code


def error_of(status: int, body: Any) -> tuple[str, str]:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return str(err.get("code", "")), str(err.get("message", ""))[:300]
    return "", ""


def map_status(status: int, code: str, message: str, *, mailbox: str | None, operation: str) -> SourceError:
    where = f"{operation} for mailbox {mailbox}" if mailbox else operation
    if status == 401:
        return InvalidCredentials(f"Graph rejected the access token during {where} ({code}: {message}): check the "
                                  "app registration's Mail.Read application permission and admin consent",
                                  mailbox=mailbox)
    if status == 403:
        return MailboxAccessDenied(f"access to mailbox {mailbox} denied by Graph ({code}: {message}); the app needs "
                                   "Mail.Read and an application access policy that includes this mailbox",
                                   mailbox=mailbox)
    if status == 404 and (code in _MAILBOX_404 and operation != "messages.delta"):
        return MailboxNotFound(f"mailbox {mailbox} was not found ({code}: {message})", mailbox=mailbox)
    if status == 404:
        return FolderNotFound(f"not found during {where} ({code}: {message})", mailbox=mailbox)
    if status == 410:
        return InvalidSyncState(f"Graph no longer knows the delta token during {where} ({code}): the folder must be "
                                "resynced", mailbox=mailbox)
    if status in _RETRY_STATUS or status >= 500:
        return ServerUnavailable(f"Graph unavailable during {where}: HTTP {status} {code}: {message}", mailbox=mailbox)
    return GraphError(status, code, message, mailbox)


def retry_after(headers: Any, attempt: int) -> float:
    value = headers.get("Retry-After") if headers else None
    try:
        return max(0.0, float(value)) if value is not None else float(2 ** min(attempt, 6))
    except ValueError:
        return float(2 ** min(attempt, 6))


class Backoff:
    """The back-off budget of ONE call (a page, a batch): bounded per wait and in total."""

    def __init__(self, max_backoff_s: float, what: str, mailbox: str | None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.max_backoff_s = max_backoff_s
        self.total = 0.0
        self.what = what
        self.mailbox = mailbox
        self.sleep = sleep

    def wait(self, seconds: float, status: int) -> None:
        if seconds > self.max_backoff_s or self.total + seconds > self.max_backoff_s:
            raise ServerUnavailable(
                f"Graph kept throttling {self.what} (HTTP {status}, Retry-After {seconds:g} s) beyond "
                f"connection.max_backoff_s={self.max_backoff_s:g}", mailbox=self.mailbox)
        self.total += seconds
        self.sleep(seconds)


class GraphHttp:
    def __init__(self, session: requests.Session, tokens: TokenProvider, *, graph_url: str, timeout_s: float,
                 max_backoff_s: float, retry_attempts: int) -> None:
        self.session = session
        self.tokens = tokens
        self.graph_url = graph_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.retry_attempts = retry_attempts
        self._gates: dict[str, MailboxGate] = {}
        self._gates_lock = threading.Lock()

    def gate(self, mailbox: str) -> MailboxGate:
        with self._gates_lock:
            return self._gates.setdefault(mailbox.lower(), MailboxGate())

    def url(self, path_or_url: str) -> str:
        """An absolute URL (a link Graph gave: sent exactly as given) or a path under ``graph_url``."""
        return path_or_url if path_or_url.startswith(("https://", "http://")) else self.graph_url + path_or_url

    def send(self, method: str, path_or_url: str, *, mailbox: str, operation: str, headers: dict[str, str] | None = None,
             params: dict[str, str] | None = None, body: Any = None, weight: int = 1) -> requests.Response:
        """One logical call, retried within its budget; returns a 2xx response or raises a SourceError."""
        backoff = Backoff(self.max_backoff_s, operation, mailbox)
        gate = self.gate(mailbox)
        refreshed = False
        failures = 0
        attempt = 0
        while True:
            token = self.tokens.token()
            hdrs = {"Authorization": f"Bearer {token}", **(headers or {})}
            held = gate.acquire(weight)
            try:
                resp = self.session.request(method, self.url(path_or_url), headers=hdrs, params=params,
                                            data=None if body is None else json.dumps(body).encode(),
                                            timeout=self.timeout_s)
            except requests.RequestException as exc:
                tls = tls_error_from(exc, self.graph_url)
                if tls is not None:
                    tls.mailbox = mailbox
                    raise tls from None
                failures += 1
                if failures >= self.retry_attempts:
                    raise ServerUnavailable(f"Graph unreachable during {operation} for mailbox {mailbox} after "
                                            f"{failures} attempts: {type(exc).__name__}", mailbox=mailbox) from None
                backoff.wait(min(0.5 * 2 ** (failures - 1), 30.0), 0)
                continue
            finally:
                gate.release(held)
            if resp.status_code < 300:
                return resp
            if resp.status_code == 401 and not refreshed:
                # Token revoked or expired before msal's cached expiry: get a fresh one, once.
                refreshed = True
                self.tokens.invalidate(token)
                continue
            if resp.status_code in _RETRY_STATUS:
                backoff.wait(retry_after(resp.headers, attempt), resp.status_code)
                attempt += 1
                continue
            code, message = error_of(resp.status_code, _json(resp))
            raise map_status(resp.status_code, code, message, mailbox=mailbox, operation=operation)

    def get_json(self, path_or_url: str, **kw: Any) -> dict[str, Any]:
        resp = self.send("GET", path_or_url, **kw)
        data = _json(resp)
        if not isinstance(data, dict):
            raise ServerUnavailable(f"Graph sent a non-JSON answer during {kw.get('operation')}", mailbox=kw.get("mailbox"))
        return data

    def batch(self, requests_: list[dict[str, Any]], *, mailbox: str, operation: str) -> dict[str, dict[str, Any]]:
        """Run sub-requests through ``$batch`` (<= 20 each); sub-responses throttled with 429/503 are resent
        after their Retry-After within one back-off budget. Returns {id: sub-response} (status < 429 or 4xx)."""
        pending = {r["id"]: r for r in requests_}
        done: dict[str, dict[str, Any]] = {}
        backoff = Backoff(self.max_backoff_s, operation, mailbox)
        attempt = 0
        while pending:
            chunk = list(pending.values())[:MAX_BATCH]
            data = _json(self.send("POST", "/$batch", mailbox=mailbox, operation=operation, weight=len(chunk),
                                   headers={"Content-Type": "application/json"}, body={"requests": chunk}))
            waits: list[float] = []
            for sub in (data or {}).get("responses", []):
                sid = str(sub.get("id"))
                if sid not in pending:
                    continue
                status = int(sub.get("status", 0))
                if status in _RETRY_STATUS:
                    waits.append(retry_after(_ci(sub.get("headers")), attempt))
                    continue
                if status == 401:
                    raise map_status(401, *error_of(401, sub.get("body")), mailbox=mailbox, operation=operation)
                done[sid] = sub
                del pending[sid]
            if pending and waits:
                backoff.wait(max(waits), 429)
                attempt += 1
            elif pending and not waits:
                raise ServerUnavailable(f"Graph $batch left {len(pending)} sub-requests unanswered during {operation}",
                                        mailbox=mailbox)
        return done


def _ci(headers: Any) -> dict[str, str]:
    """Case-insensitive header lookup for batch sub-responses (plain dicts)."""
    return requests.structures.CaseInsensitiveDict(headers or {})


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None
