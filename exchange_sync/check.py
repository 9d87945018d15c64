"""Connection check: can this integration reach its server and read its mailboxes? (Prefect-free.)

``check_connection(config)`` reports, without reading or writing any mail:

- the server: its version (EWS: the ServerVersionInfo of its answers; Graph: the API version of
  ``graph_url``), the TLS protocol and cipher negotiated with the source's own ``ssl.SSLContext``
  (one TLS handshake, no HTTP request), the auth method and whether the server accepted it;
- per enabled mailbox: ``ok`` with its folder counts (mail folders the sync would take after the
  allow/deny lists, and all folders), or the source's reason (``mailbox_not_found``,
  ``mailbox_access_denied``, ``invalid_exchange_credentials``, ...) with the server's message.

Requests sent: folder discovery only (EWS: GetFolder + FindFolder through ``MailboxSession.all_folders``,
plus exchangelib's ConvertId version probe when no ``exchange_version`` is configured; Graph: the
mailFolders GETs, in one ``$batch`` and delta pages, and the OAuth2 token request).

The first enabled mailbox is checked alone: it also tells whether the credentials are accepted. When
they are not, the other mailboxes are reported ``invalid_exchange_credentials`` without another logon
(repeated failed logons lock service accounts out), and when the server cannot be talked to they are
``not_checked``. The others are then checked in parallel, up to ``concurrency.mailboxes``.

Exit codes (``CheckReport.exit_code``): 0 every enabled mailbox is reachable; 1 the server cannot be
reached or talked to (``server_unavailable``, ``tls_error``); 3 the server answered but some mailboxes
are not reachable (including ``invalid_exchange_credentials``). Problems found before any network
call (an unset secret, an unusable TLS setting) raise ``CheckConfigError``: exit 2 in the CLI.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from exchange_sync.config import IntegrationConfig, MailboxConfig

__all__ = [
    "CheckConfigError",
    "CheckReport",
    "MailboxCheck",
    "ServerCheck",
    "Outcome",
    "Scrubber",
    "check_connection",
    "probe_tls",
    "reach",
]

OK = "ok"
DISABLED = "disabled"
NOT_CHECKED = "not_checked"
CREDENTIALS = "invalid_exchange_credentials"
# Reasons that are about the server, not the mailbox: the check exits 1 on them.
SERVER_REASONS = frozenset({"server_unavailable", "tls_error"})

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_MAILBOXES = 3


class CheckConfigError(Exception):
    """The check cannot start: the configuration cannot be used as it is (no network call was made)."""


@dataclass
class TlsInfo:
    protocol: str
    cipher: str


@dataclass
class ServerError:
    reason: str
    message: str


@dataclass
class ServerCheck:
    url: str
    kind: str
    auth: str
    reachable: bool = False
    version: str | None = None
    build: str | None = None
    tls: TlsInfo | None = None
    tls_note: str | None = None  # why ``tls`` is None (plain http, proxy)
    auth_accepted: bool | None = None
    error: ServerError | None = None

    @property
    def display_version(self) -> str | None:
        if self.version and self.build:
            return f"{self.version} ({self.build})"
        return self.version or self.build


@dataclass
class MailboxCheck:
    email: str
    status: str  # "ok", a SourceError reason, "disabled" or "not_checked"
    reason: str | None = None
    message: str | None = None
    mail_folders: int | None = None
    total_folders: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"email": self.email, "status": self.status, "reason": self.reason}
        if self.message:
            out["message"] = self.message
        if self.status == OK:
            out["folders"] = {"mail": self.mail_folders, "total": self.total_folders}
        return out


@dataclass
class CheckReport:
    integration: str
    server: ServerCheck
    mailboxes: list[MailboxCheck] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if not self.server.reachable or any(m.status in SERVER_REASONS for m in self.mailboxes):
            return EXIT_UNREACHABLE
        if any(m.status not in (OK, DISABLED) for m in self.mailboxes):
            return EXIT_MAILBOXES
        return EXIT_OK

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        s = self.server
        server: dict[str, Any] = {
            "url": s.url,
            "kind": s.kind,
            "reachable": s.reachable,
            "version": s.version,
            "build": s.build,
            "tls": None if s.tls is None else {"protocol": s.tls.protocol, "cipher": s.tls.cipher},
            "auth": {"method": s.auth, "accepted": s.auth_accepted},
        }
        if s.tls is None and s.tls_note:
            server["tls_note"] = s.tls_note
        if s.error is not None:
            server["error"] = {"reason": s.error.reason, "message": s.error.message}
        return {"integration": self.integration, "server": server,
                "mailboxes": [m.to_dict() for m in self.mailboxes], "ok": self.ok}


# ---- dispatch --------------------------------------------------------------------------------------
def check_connection(config: IntegrationConfig) -> CheckReport:
    """Check ``config``'s server and mailboxes with its source's check (``sources.registry``: each source
    package has a ``check`` module built on this one's ``reach``)."""
    from exchange_sync.sources import SourceConfigError, source_kind

    try:
        kind = source_kind(config)
    except SourceConfigError as exc:
        raise CheckConfigError(exc.message) from None
    return kind.check(config)


# ---- TLS ---------------------------------------------------------------------------------------------
def _host_port(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return host, port, (f"{host}:{parts.port}" if parts.port else host)


def _proxied(url: str) -> bool:
    import requests.utils

    return bool(requests.utils.get_environ_proxies(url))


def probe_tls(url: str, ctx: ssl.SSLContext, timeout_s: float) -> TlsInfo:
    """One TCP connection and TLS handshake to ``url``'s host with ``ctx`` (nothing is sent after the
    handshake). Raises ServerUnavailable / TlsError (``exchange_sync.source.errors``) with a plain message."""
    from exchange_sync.sources import ServerUnavailable, TlsError, tls_error_from

    host, port, server = _host_port(url)
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except socket.gaierror as exc:
        raise ServerUnavailable(f"cannot resolve {host}: {exc.strerror or exc}") from None
    except ConnectionRefusedError:
        raise ServerUnavailable(f"cannot connect to {server}: connection refused") from None
    except TimeoutError:
        raise ServerUnavailable(f"cannot connect to {server}: no answer within {timeout_s:g} s "
                                "(connection.timeout_s)") from None
    except OSError as exc:
        raise ServerUnavailable(f"cannot connect to {server}: {exc.strerror or type(exc).__name__}") from None
    try:
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            cipher = tls.cipher()
            return TlsInfo(protocol=tls.version() or "unknown", cipher=cipher[0] if cipher else "unknown")
    except ssl.SSLError as exc:
        raise (tls_error_from(exc, server) or TlsError(f"TLS connection to {server} failed: {exc}")) from None
    except TimeoutError:
        raise ServerUnavailable(f"TLS handshake with {server}: no answer within {timeout_s:g} s "
                                "(connection.timeout_s)") from None
    except OSError as exc:
        raise ServerUnavailable(f"TLS handshake with {server} failed: "
                                f"{exc.strerror or type(exc).__name__} (is the URL really https?)") from None
    finally:
        sock.close()


def _probe(server: ServerCheck, url: str, ctx: ssl.SSLContext, timeout_s: float) -> bool:
    """Fill ``server.tls``; False (with ``server.error``) when the server cannot be reached."""
    from exchange_sync.sources import SourceError

    if urlsplit(url).scheme != "https":
        server.tls_note = "plain http: no TLS"
        return True
    if _proxied(url):
        # requests goes through the proxy: a direct handshake would measure (or fail on) another path.
        server.tls_note = "through an HTTP(S) proxy: not measured"
        return True
    try:
        server.tls = probe_tls(url, ctx, timeout_s)
    except SourceError as exc:
        server.error = ServerError(exc.reason, exc.message)
        return False
    return True


# ---- mailboxes ---------------------------------------------------------------------------------------
class Scrubber:
    """Removes a secret's value from messages (they are built from safe parts; this is a second guard)."""

    def __init__(self, *secrets: str | None) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 3]

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for s in self.secrets:
            text = text.replace(s, "***")
        return text


@dataclass
class Outcome:
    check: MailboxCheck
    session: Any = None


def _check_mailbox(open_mailbox: Callable[[str], Any], mb: MailboxConfig, scrub: Scrubber) -> Outcome:
    from exchange_sync.sources import SourceError
    from exchange_sync.sources.folders import select_mail_folders

    session = None
    try:
        session = open_mailbox(mb.email)
        folders = session.all_folders()
        mail = select_mail_folders(folders, mb.folder_allowlist, list(mb.folder_denylist))
    except SourceError as exc:
        # ``.reason``, not the class: reasons the source learns later are reported as they come.
        reason = getattr(exc, "reason", None) or "exchange_error"
        return Outcome(MailboxCheck(mb.email, reason, reason, scrub(exc.message or str(exc))), session)
    except Exception as exc:  # noqa: BLE001 - a check reports, it does not crash on one mailbox
        return Outcome(MailboxCheck(mb.email, "unexpected_error", "unexpected_error",
                                     scrub(f"{type(exc).__name__}: {exc}"[:500])), session)
    return Outcome(MailboxCheck(mb.email, OK, None, None, len(mail), len(folders)), session)


def _check_mailboxes(config: IntegrationConfig, open_mailbox: Callable[[str], Any],
                     scrub: Scrubber) -> list[Outcome]:
    """The first enabled mailbox alone (credentials, version probe), then the others in parallel."""
    enabled = config.enabled_mailboxes
    if not enabled:
        return []
    first = _check_mailbox(open_mailbox, enabled[0], scrub)
    outcomes = {enabled[0].email: first}
    rest = enabled[1:]
    status = first.check.status
    if status == CREDENTIALS:
        for mb in rest:
            outcomes[mb.email] = Outcome(MailboxCheck(
                mb.email, CREDENTIALS, CREDENTIALS,
                f"not tried: the server refused the credentials for {enabled[0].email}"))
    elif status in SERVER_REASONS:
        for mb in rest:
            outcomes[mb.email] = Outcome(MailboxCheck(mb.email, NOT_CHECKED, status))
    elif rest:
        workers = max(1, min(config.concurrency.mailboxes, len(rest)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check-mailbox") as pool:
            for mb, outcome in zip(rest, pool.map(lambda m: _check_mailbox(open_mailbox, m, scrub), rest)):
                outcomes[mb.email] = outcome
    return [outcomes[mb.email] for mb in enabled]


def reach(config: IntegrationConfig, server: ServerCheck, source: Any, url: str, ctx: ssl.SSLContext,
           scrub: Scrubber) -> tuple[CheckReport, list[Outcome]]:
    """One TLS handshake, then every mailbox through ``source``; no mailbox is tried when the handshake fails."""
    if not _probe(server, url, ctx, config.connection.timeout_s):
        return _finish(config, server, []), []
    server.reachable = True
    outcomes = _check_mailboxes(config, source.open_mailbox, scrub)
    return _finish(config, server, outcomes), outcomes


def _finish(config: IntegrationConfig, server: ServerCheck, outcomes: list[Outcome]) -> CheckReport:
    by_email = {o.check.email: o.check for o in outcomes}
    mailboxes = []
    for mb in config.mailboxes:
        if not mb.enabled:
            mailboxes.append(MailboxCheck(mb.email, DISABLED))
        elif mb.email in by_email:
            mailboxes.append(by_email[mb.email])
        else:  # the server was not reachable: nothing was sent for this mailbox
            mailboxes.append(MailboxCheck(mb.email, NOT_CHECKED, server.error.reason if server.error else None))
    statuses = [o.check.status for o in outcomes]
    answered = [s for s in statuses if s not in SERVER_REASONS and s not in (CREDENTIALS, NOT_CHECKED, "unexpected_error")]
    if answered:
        server.auth_accepted = True
    elif CREDENTIALS in statuses:
        server.auth_accepted = False
    if server.reachable and statuses and all(s in SERVER_REASONS or s == NOT_CHECKED for s in statuses):
        # Not one mailbox got an answer: the endpoint cannot be talked to (e.g. not an EWS endpoint).
        first = outcomes[0].check
        server.reachable = False
        server.error = ServerError(first.status, first.message or first.status)
    return CheckReport(config.name, server, mailboxes)
