"""Helpers for tests and benchmarks: run the EWS test server as a subprocess and talk to it.

    from ews_testserver.testing import running_server, exchangelib_account

    with running_server(mailboxes=["user@example.com=generate:1000"], tls=True) as srv:
        acc = exchangelib_account(srv, "user@example.com", "secret", "user@example.com")
        ...
        srv.move("user@example.com", "<id@x>", "Archive")
        assert all(not e["write"] for e in srv.log())

The server is started with ``<python> -m exchange_sync ews-server ...`` (the real CLI, through
``testserver_core.testing.launch_cli_server``) and stopped with SIGTERM; ``srv.returncode`` is its
exit status afterwards.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import requests
import requests.adapters

from testserver_core.testing import RunningServerBase, launch_cli_server


@dataclass
class RunningServer(RunningServerBase):
    """The EWS test server's ``/admin`` client: the shared routes plus copy, notifications and accounts."""

    def copy(self, mailbox: str, message_id: str, folder: str) -> dict[str, Any]:
        return self.admin("POST", "/copy", {"mailbox": mailbox, "message_id": message_id, "folder": folder})

    # -- notifications (subscriptions, streaming connections; see docs/ews-test-server.md) --------
    def notifications(self) -> dict[str, Any]:
        """Subscriptions, open streaming connections, ended subscriptions (why), settings, counters."""
        return self.admin("GET", "/notifications")

    def set_notifications(self, **settings: Any) -> dict[str, Any]:
        """Notification knobs, e.g. ``heartbeat_s=0.5, minute_s=2, streaming_expiry_s=5, connection_limit=2``."""
        return self.admin("PUT", "/notifications/config", settings)

    def kill_subscriptions(self, subscription_id: str | None = None, mailbox: str | None = None) -> list[str]:
        """End subscriptions (one, a mailbox's, or all): next use -> ErrorSubscriptionNotFound; an open
        stream gets an error message for them. Returns the ids killed."""
        payload = {k: v for k, v in (("subscription_id", subscription_id), ("mailbox", mailbox)) if v is not None}
        return self.admin("POST", "/notifications/kill", payload)["killed"]

    def drop_streams(self, mailbox: str | None = None) -> int:
        """Close open GetStreamingEvents sockets mid-stream (all, or those serving ``mailbox``)."""
        return self.admin("POST", "/notifications/drop", {"mailbox": mailbox} if mailbox else {})["dropped"]

    def refuse_subscribe(self, mailbox: str = "*", code: str = "ErrorAccessDenied", count: int = 0) -> None:
        """Subscribe for ``mailbox`` ("*": any) answers ``code`` (``count`` times; 0: always)."""
        self.admin("PUT", "/notifications/refuse", [{"mailbox": mailbox, "code": code, "count": count}])

    def clear_refusals(self) -> None:
        self.admin("PUT", "/notifications/refuse", [])

    def set_password(self, username: str, password: str, impersonation: bool | None = None) -> None:
        payload: dict[str, Any] = {"username": username, "password": password}
        if impersonation is not None:
            payload["impersonation"] = impersonation
        self.admin("POST", "/accounts", payload)

    def grant(self, username: str, mailbox: str) -> None:
        self.admin("POST", "/grants", {"username": username, "mailbox": mailbox})

    def issue_token(self, username: str) -> str:
        return self.admin("POST", "/tokens", {"username": username})["access_token"]


def server_args(
    *, accounts: Sequence[str] = ("user@example.com:secret",), mailboxes: Sequence[str] = (),
    grants: Sequence[str] = (), tls: bool = False, auth: str | None = None, ciphers: str | None = None,
    min_tls: str | None = None, max_tls: str | None = None, cert_type: str | None = None,
    seed: int | None = None, verbose: bool = False, extra_args: Sequence[str] = (),
    exchange_version: str | None = None,
) -> list[str]:
    args = ["ews-server"]
    for a in accounts:
        args += ["--account", a]
    for mb in mailboxes or ("user@example.com=generate:20",):
        args += ["--mailbox", mb]
    for g in grants:
        args += ["--grant", g]
    if tls:
        args.append("--tls")
    for opt, value in (("--auth", auth), ("--ciphers", ciphers), ("--min-tls", min_tls), ("--max-tls", max_tls),
                       ("--cert-type", cert_type), ("--seed", seed), ("--exchange-version", exchange_version)):
        if value is not None:
            args += [opt, str(value)]
    if verbose:
        args.append("--verbose")
    return args + list(extra_args)


@contextlib.contextmanager
def running_server(startup_timeout: float = 120, notifications: dict[str, Any] | None = None,
                   **kwargs: Any) -> Iterator[RunningServer]:
    """Start ``exchange-sync ews-server`` with the given options (see ``server_args``; e.g.
    ``exchange_version="Exchange2010_SP2"``), yield a ``RunningServer``, and stop it with SIGTERM on exit.
    ``notifications``: knobs applied at start (``RunningServer.set_notifications``)."""
    proc, info = launch_cli_server(server_args(**kwargs), startup_timeout)
    srv = RunningServer(url=info["url"], admin_url=info["admin_url"], ca_file=info.get("ca_file"),
                        admin_token=info["admin_token"], info=info, process=proc)
    try:
        if notifications:
            srv.set_notifications(**notifications)
        yield srv
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------------------
# exchangelib helpers

def tls_adapter(ca_file: str | None, ciphers: str | None = None, min_tls: ssl.TLSVersion | None = None,
                max_tls: ssl.TLSVersion | None = None) -> type[requests.adapters.HTTPAdapter]:
    """An HTTPAdapter class (for ``BaseProtocol.HTTP_ADAPTER_CLS``) trusting ``ca_file``, optionally
    restricted to an OpenSSL cipher string / TLS version range."""

    class CustomTLSAdapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kw: Any) -> Any:
            ctx = ssl.create_default_context(cafile=ca_file)
            if ciphers:
                ctx.set_ciphers(ciphers)
            if min_tls:
                ctx.minimum_version = min_tls
            if max_tls:
                ctx.maximum_version = max_tls
            kw["ssl_context"] = ctx
            return super().init_poolmanager(*args, **kw)

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            # requests would otherwise point verification at certifi's bundle only.
            super().cert_verify(conn, url, ca_file if (verify is True and ca_file) else verify, cert)

    return CustomTLSAdapter


@contextlib.contextmanager
def exchangelib_tls(ca_file: str | None, **kwargs: Any) -> Iterator[None]:
    """Temporarily make exchangelib trust ``ca_file`` (and apply cipher/version limits)."""
    from exchangelib import close_connections
    from exchangelib.protocol import BaseProtocol

    old = BaseProtocol.HTTP_ADAPTER_CLS
    close_connections()
    BaseProtocol.HTTP_ADAPTER_CLS = tls_adapter(ca_file, **kwargs)
    try:
        yield
    finally:
        close_connections()
        BaseProtocol.HTTP_ADAPTER_CLS = old


def exchangelib_account(
    srv: RunningServer, username: str, password: str, mailbox: str, *, auth: str = "basic",
    access_type: str = "delegate", retry_policy: Any = None, version: bool = True, max_connections: int | None = None,
) -> Any:
    """An ``exchangelib.Account`` on the server (``version=False``: let exchangelib probe it).

    For HTTPS, wrap the use in ``exchangelib_tls(srv.ca_file)``.
    """
    from exchangelib import BASIC, DELEGATE, IMPERSONATION, NTLM, Account, Build, Configuration, Credentials, Version

    kwargs: dict[str, Any] = {"service_endpoint": srv.url, "credentials": Credentials(username, password),
                              "auth_type": {"basic": BASIC, "ntlm": NTLM}.get(auth, auth)}
    if version:  # the build the server reports (its --exchange-version profile)
        sv = srv.info.get("server_version") or {"MajorVersion": 15, "MinorVersion": 1, "MajorBuildNumber": 2507,
                                                 "MinorBuildNumber": 6}
        kwargs["version"] = Version(Build(int(sv["MajorVersion"]), int(sv["MinorVersion"]),
                                          int(sv["MajorBuildNumber"]), int(sv["MinorBuildNumber"])))
    if retry_policy is not None:
        kwargs["retry_policy"] = retry_policy
    if max_connections is not None:
        kwargs["max_connections"] = max_connections
    config = Configuration(**kwargs)
    return Account(mailbox, config=config, autodiscover=False,
                   access_type={"delegate": DELEGATE, "impersonation": IMPERSONATION}[access_type])


# ---------------------------------------------------------------------------------------------
# small mail helpers for tests

def make_mime(subject: str, msgid: str, date: str = "Mon, 01 Jan 2024 10:00:00 +0000", body: str = "hello",
              sender: str = "Alice <alice@example.org>", to: str = "user@example.com") -> bytes:
    """A minimal, valid RFC 822 message."""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: {date}\r\nMessage-ID: {msgid}\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def date_n(n: int) -> str:
    """Distinct, increasing RFC 2822 dates, one minute apart from 2024-03-01T00:00Z."""
    import datetime as dt
    import email.utils

    base = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=n)
    return email.utils.format_datetime(base)
