"""The per-source exchangelib Protocol: its own TLS adapter, its own retry policy, no global state.

Why not exchangelib's defaults:
- ``BaseProtocol.HTTP_ADAPTER_CLS`` is a class attribute shared by every Protocol in the process, and
  Protocol instances are cached process-wide by (endpoint, credentials). Two integrations with different
  TLS settings in one worker would leak into each other. We make one Protocol *subclass* per EwsSource
  (carrying that source's adapter class and session settings) and instantiate it with
  ``type.__call__`` so exchangelib's ``CachingProtocol`` cache never sees it.
- ``FaultTolerance`` treats HTTP 401 as throttling and can wait an hour; ``FailFast`` retries nothing.
  ``BoundedFaultTolerance`` fails fast on 401 and bounds every wait (single and total per request).
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

import requests
from exchangelib.errors import RateLimitError, SessionPoolMinSizeReached, UnauthorizedError
from exchangelib.protocol import FaultTolerance, Protocol

from ..tls import pin_verify


class BoundedFaultTolerance(FaultTolerance):
    """exchangelib's fault-tolerant policy with three changes:

    1. HTTP 401 is a login failure, always (raised as UnauthorizedError before the parent can call it
       "busy", including the ``Connection: close`` variant that the parent maps to ErrorServerBusy).
    2. A single back-off longer than ``max_wait`` raises RateLimitError at once (parent behaviour).
    3. The *total* back-off of one logical request (one page/chunk call, which the caller brackets with
       ``begin_call()``) is bounded by ``max_wait`` too: a server answering ErrorServerBusy with
       BackOffMilliseconds forever would otherwise loop forever in exchangelib's ``_get_elements``.
    The back-off deadline itself stays shared by all threads of the source (the server asked *us* to slow down).
    """

    def __init__(self, max_wait: float) -> None:
        super().__init__(max_wait=max_wait)
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_local", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._local = threading.local()

    def begin_call(self) -> None:
        self._local.waited = 0.0

    @property
    def waited(self) -> float:
        return getattr(self._local, "waited", 0.0)

    def back_off(self, seconds: float | None) -> None:
        if seconds is None:
            seconds = min(self.DEFAULT_BACKOFF, self.max_wait)
        total = self.waited + seconds
        if seconds > self.max_wait or total > self.max_wait:
            raise RateLimitError(
                f"back-off budget exhausted (asked {seconds:g} s, waited {self.waited:g} s, max {self.max_wait:g} s)",
                wait=seconds,
            )
        self._local.waited = total
        value = datetime.datetime.now() + datetime.timedelta(seconds=seconds)
        with self._back_off_lock:
            # Never shorten a longer deadline another thread was given.
            if self._back_off_until is None or value > self._back_off_until:
                self._back_off_until = value

    def raise_response_errors(self, response: requests.Response) -> None:
        if response.status_code == 401:
            raise UnauthorizedError(f"Invalid credentials for {response.url}")
        return super().raise_response_errors(response)


def make_protocol_class(
    *,
    adapter_cls: type[requests.adapters.HTTPAdapter],
    verify: bool | str,
    timeout_s: float,
    retry_wait_s: float,
) -> type[Protocol]:
    """A Protocol subclass carrying one source's transport settings as class attributes (exchangelib reads
    them through ``cls`` in classmethods such as ``raw_session``/``get_adapter``)."""

    class SourceProtocol(Protocol):
        HTTP_ADAPTER_CLS = adapter_cls
        TIMEOUT = timeout_s
        RETRY_WAIT = retry_wait_s
        USERAGENT = "exchange-sync (exchangelib)"
        # The Version from the last ServerVersionInfo the server sent (fastparse.FastParseMixin).
        reported_version = None

        @classmethod
        def raw_session(cls, prefix, oauth2_client=None, oauth2_session_params=None, oauth2_token_endpoint=None):
            session = super().raw_session(
                prefix,
                oauth2_client=oauth2_client,
                oauth2_session_params=oauth2_session_params,
                oauth2_token_endpoint=oauth2_token_endpoint,
            )
            # requests hands this to urllib3 next to our ssl_context (CERT_NONE vs CERT_REQUIRED, ca_certs);
            # pinned so that REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE cannot override it (trust_env stays on
            # for HTTPS_PROXY / NO_PROXY).
            return pin_verify(session, verify)

        def decrease_poolsize(self) -> None:
            """exchangelib 5.6.0's version deadlocks: it holds the non-reentrant pool lock and calls
            ``get_session()``, which, when every session is out and the pool is below its maximum,
            calls ``increase_poolsize()`` and blocks on that same lock forever. It runs on every
            ErrorServerBusy and ErrorExceededConnectionCount, so throttling during a parallel fetch
            hung the sync (seen in tests/source). Here we wait for a session to come *back* to the
            pool (threads release theirs after each request) and never create one under the lock."""
            if self._session_pool_size <= 1:
                raise SessionPoolMinSizeReached("Session pool size cannot be decreased further")
            with self._session_pool_lock:
                if self._session_pool_size <= 1:
                    return
                session = self._session_pool.get()
                self.close_session(session)
                self._session_pool_size -= 1

    return SourceProtocol


def new_protocol(protocol_cls: type[Protocol], config: Any) -> Protocol:
    """Instantiate without exchangelib's process-wide Protocol cache (CachingProtocol.__call__)."""
    return type.__call__(protocol_cls, config=config)
