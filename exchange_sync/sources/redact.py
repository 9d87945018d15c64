"""Keep secrets out of exchangelib/requests-oauthlib debug logs.

exchangelib logs request headers at DEBUG (``Authorization: Basic <base64(user:password)>``) and
requests-oauthlib logs the token request body (``client_secret=...``). We attach a filter to those
loggers that rewrites any record containing a registered secret (or its Basic-auth base64 form).
Logger filters are not inherited by child loggers, so each emitting logger is listed explicitly.
"""

from __future__ import annotations

import base64
import logging
import threading

_LOGGERS = (
    "exchangelib",
    "exchangelib.util",
    "exchangelib.util.xml",
    "exchangelib.protocol",
    "exchangelib.services.common",
    "exchangelib.transport",
    "exchangelib.version",
    "requests_oauthlib",
    "requests_oauthlib.oauth2_session",
    "oauthlib",
    "urllib3.connectionpool",
)
_MASK = "***"


class SecretFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__("exchange-sync-secrets")
        self._lock = threading.Lock()
        self._secrets: dict[int, tuple[str, ...]] = {}

    def register(self, owner: object, forms: tuple[str, ...]) -> None:
        with self._lock:
            self._secrets[id(owner)] = tuple(f for f in forms if f)

    def unregister(self, owner: object) -> None:
        with self._lock:
            self._secrets.pop(id(owner), None)

    def _all(self) -> list[str]:
        with self._lock:
            # Longest first so a secret contained in another form is masked as a whole.
            return sorted({s for forms in self._secrets.values() for s in forms}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._all()
        if not secrets:
            return True
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is the logging module's problem, not ours
            return True
        if not any(s in text for s in secrets):
            return True
        for s in secrets:
            text = text.replace(s, _MASK)
        record.msg, record.args = text, ()
        return True


_FILTER = SecretFilter()
_installed = False
_install_lock = threading.Lock()


def secret_forms(username: str | None, secret: str) -> tuple[str, ...]:
    forms = [secret]
    if username is not None:
        for user in (username, "\\" + username):
            raw = f"{user}:{secret}".encode()
            forms.append(base64.b64encode(raw).decode("ascii"))
    return tuple(forms)


def protect(owner: object, username: str | None, secret: str | None) -> None:
    global _installed
    if not secret:
        return
    with _install_lock:
        if not _installed:
            for name in _LOGGERS:
                logging.getLogger(name).addFilter(_FILTER)
            _installed = True
    _FILTER.register(owner, secret_forms(username, secret))


def unprotect(owner: object) -> None:
    _FILTER.unregister(owner)
