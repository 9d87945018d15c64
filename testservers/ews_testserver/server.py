"""The HTTP(S) server: EWS endpoint, control API and a minimal OAuth2 token endpoint on one port.

Why the stdlib ThreadingHTTPServer: NTLM authenticates a TCP *connection*, and a
BaseHTTPRequestHandler instance lives exactly as long as its connection, so per-connection
auth state is just an attribute of the handler. HTTP/1.1 keep-alive is kept on every response,
including 401s (Content-Length: 0, never ``Connection: close``): exchangelib treats a non-200
response with ``Connection: close`` as throttling, and NTLM needs the same connection.
TLS is negotiated in the connection's own thread (not in accept()), so one slow or failing
handshake does not stall the listener.
"""

from __future__ import annotations

import json
import logging
import secrets
import ssl
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testserver_core import audit
from testserver_core.admin import serve_admin
from testserver_core.mailstore import WELL_KNOWN_2013, WELL_KNOWN_ONLINE, MailStore
from testserver_core.server import BackgroundServer, BaseHandler, RequestLog, ThreadedServer, make_tls_context
from testserver_core.server import now_iso as _now

from . import admin, schema, soap
from .auth import Account, AccountRegistry, NtlmAcceptor, parse_account, parse_basic
from .faults import FaultPlan
from .notifications import FAULT_KINDS as NOTIFICATION_FAULTS, NotificationHub
from .operations import WRITE_OPERATIONS, Context, dispatch
from .streaming import serve_stream

log = logging.getLogger("ews_testserver")

EWS_PATH = "/ews/exchange.asmx"


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    tls: bool = False
    cert: str | None = None
    key: str | None = None
    ciphers: str | None = None
    min_tls: str | None = None
    max_tls: str | None = None
    cert_type: str = "rsa"
    auth: tuple[str, ...] = ("ntlm", "basic")
    accounts: list[str] = field(default_factory=list)
    mailboxes: list[str] = field(default_factory=list)  # ADDRESS=PATH | ADDRESS=generate:N
    grants: list[str] = field(default_factory=list)  # USER=ADDRESS
    seed: int = 4711
    admin_token: str | None = None
    exchange_version: str = schema.DEFAULT_PROFILE  # Exchange2010_SP2 | Exchange2013 | Exchange2016 | Exchange2019 | Online


class ServerState(RequestLog):
    def __init__(self, config: ServerConfig) -> None:
        super().__init__()
        self.config = config
        self.profile = schema.profile(config.exchange_version)
        self.server_version = self.profile.server_version_info()
        self.schema = schema.compiled(self.profile.name)  # compiled once, at start
        # Exchange 2013 and later mailboxes have Sync Issues (Conflicts, Local Failures, Server
        # Failures) and Conversation History, addressable by their 2013 DistinguishedFolderIds.
        # Online mailboxes also have the Archive folder ("archive").
        extra = (WELL_KNOWN_2013 if self.profile.rank >= 1 else ()) + (WELL_KNOWN_ONLINE if self.profile.name == "Online" else ())
        self.store = MailStore(extra_folders=extra)
        self.accounts = AccountRegistry()
        self.faults = FaultPlan()
        # Subscriptions and events (notifications.py): every mailbox change raises the events
        # Exchange raises for it to the subscriptions on that mailbox.
        self.hub = NotificationHub()
        self.store.on_change = self.hub.on_change
        self.admin_token = config.admin_token or secrets.token_urlsafe(24)
        self._inflight = 0
        self._inflight_lock = threading.Lock()

    def enter(self) -> int:
        with self._inflight_lock:
            self._inflight += 1
            return self._inflight

    @property
    def in_flight(self) -> int:
        """EWS requests being served right now (after authentication)."""
        with self._inflight_lock:
            return self._inflight

    def leave(self) -> None:
        with self._inflight_lock:
            self._inflight -= 1


class EwsHandler(BaseHandler):
    server_version = "Microsoft-IIS/10.0"
    logger = log
    chunked_requests = True
    state: ServerState  # set on the subclass made per server

    def setup(self) -> None:
        super().setup()
        self.ntlm: NtlmAcceptor | None = None
        self.conn_account: Account | None = None  # NTLM: authenticated for this connection
        self.conn_generation = 0

    def _json(self, status: int, data: Any) -> None:
        self._respond(status, json.dumps(data).encode(), "application/json")

    # -- routing ----------------------------------------------------------------------------
    def _route(self, method: str) -> None:
        body = self._read_body()
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        try:
            if path.lower() == EWS_PATH and method == "POST":
                self._ews(body)
            elif path == "/admin" or path.startswith("/admin/"):
                self._admin(method, path, urllib.parse.parse_qs(parsed.query), body)
            elif method == "POST" and "/oauth2/" in path and path.endswith("/token"):
                self._token(body)
            else:
                self._respond(404, b"not found", "text/plain")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    # -- control API ------------------------------------------------------------------------
    def _admin(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> None:
        status, data = serve_admin(admin.handle, self.state, method, path, query, raw,
                                   self.headers.get("Authorization", ""), log)
        self._json(status, data)

    def _token(self, raw: bytes) -> None:
        """OAuth2 client-credentials grant: client_id = account username, client_secret = password."""
        form = urllib.parse.parse_qs(raw.decode("utf-8", "replace"))
        cid = form.get("client_id", [""])[0]
        secret = form.get("client_secret", [""])[0]
        acc = self.state.accounts.check_password(cid, secret) if cid else None
        if form.get("grant_type", [""])[0] != "client_credentials" or acc is None:
            self._json(400, {"error": "invalid_client", "error_description": "bad client credentials"})
            return
        token = self.state.accounts.issue_token(acc.username)
        self._json(200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": token})

    # -- authentication ---------------------------------------------------------------------
    def _challenge(self, token: bytes | None = None) -> None:
        import base64

        if token is not None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", "NTLM " + base64.b64encode(token).decode())
        else:
            self.send_response(401)
            for scheme in self.state.config.auth:
                self.send_header("WWW-Authenticate", "NTLM" if scheme == "ntlm" else 'Basic realm="ews-testserver"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _authenticate(self, op_hint: str) -> Account | None:
        """Return the account, or None after answering 401 (handshake step or failure)."""
        import base64

        allowed = self.state.config.auth
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        if scheme in ("ntlm", "negotiate") and "ntlm" in allowed:
            try:
                token = base64.b64decode(value.strip())
            except ValueError:
                self._challenge()
                return None
            is_type1 = token[8:12] == b"\x01\x00\x00\x00"
            if is_type1 or self.ntlm is None:
                self.ntlm = NtlmAcceptor(self.state.accounts)
                self.conn_account = None
            try:
                out = self.ntlm.step(token)
            except Exception as exc:  # noqa: BLE001 - bad password, unknown user, garbage token
                log.info("NTLM authentication failed: %s", exc)
                self.ntlm = None
                self._auth_failed(op_hint, "ntlm")
                return None
            if not self.ntlm.ctx.complete:
                self._challenge(out or b"")
                return None
            self.conn_account = self.ntlm.account
            self.conn_generation = self.conn_account.generation if self.conn_account else 0
            self.ntlm = None
            return self.conn_account
        if scheme == "basic" and "basic" in allowed:
            creds = parse_basic(value)
            acc = self.state.accounts.check_password(*creds) if creds else None
            if acc is None:
                self._auth_failed(op_hint, "basic")
            return acc
        if scheme == "bearer":
            acc = self.state.accounts.check_token(value.strip())
            if acc is None:
                self._auth_failed(op_hint, "bearer")
            return acc
        if not header and self.conn_account is not None:
            if self.conn_account.generation == self.conn_generation:
                return self.conn_account
            self.conn_account = None  # password changed since this connection authenticated
        self._challenge()
        return None

    def _auth_failed(self, op_hint: str, scheme: str) -> None:
        self.state.record({"operation": op_hint, "account": None, "mailbox": None, "time": _now(),
                           "status": 401, "error": f"{scheme} authentication failed"})
        self._challenge()

    # -- EWS --------------------------------------------------------------------------------
    def _ews(self, raw: bytes) -> None:
        state = self.state
        try:
            request = soap.parse_request(raw)
            op = request.operation
        except soap.SoapFault as exc:
            request, op = None, "?"
            parse_fault = exc
        else:
            parse_fault = None
        acc = self._authenticate(op)
        if acc is None:
            return
        entry: dict[str, Any] = {"operation": op, "account": acc.username, "mailbox": None, "time": _now(),
                                 "write": op in WRITE_OPERATIONS, "anchor": self.headers.get("X-AnchorMailbox")}
        if parse_fault is not None or request is None:
            assert parse_fault is not None
            self._fault(entry, parse_fault, op)
            return
        rejected = self._check_request(request)
        if rejected is not None:
            self._fault(entry, rejected, op)
            return
        if request.impersonate is not None:
            entry["impersonate"] = request.impersonate
        inflight = state.enter()
        try:
            rule = state.faults.match(op, inflight)
            if rule is not None:
                entry["fault"] = rule.kind
                if rule.kind == "slow":
                    time.sleep(rule.delay_s)
                elif rule.kind == "drop":
                    entry["status"] = None
                    state.record(entry)
                    self._drop()
                    return
                elif rule.kind in NOTIFICATION_FAULTS:
                    pass  # acted on by the notification hub below
                elif rule.kind == "http_503":
                    entry["status"] = 503
                    state.record(entry)
                    self._respond(503, b"", None, {"Retry-After": str(rule.retry_after_s)})
                    return
                else:
                    code = "ErrorServerBusy" if rule.kind == "server_busy" else "ErrorExceededConnectionCount"
                    text = ("The server cannot service this request right now. Try again later."
                            if rule.kind == "server_busy" else
                            "You have exceeded the maximum number of concurrent connections for your account.")
                    entry.update(status=500, response_code=code)
                    state.record(entry)
                    body = soap.fault(code, text, rule.back_off_ms if rule.kind == "server_busy" else None,
                                      state.server_version)
                    self._audit_response(op, body)
                    self._respond(500, body, "text/xml; charset=utf-8")
                    return
            ctx = Context(store=state.store, principal=state.accounts.principal(acc, lambda a: state.store.get_mailbox(a) is not None),
                          request=request, anchor=self.headers.get("X-AnchorMailbox"), profile=state.profile,
                          hub=state.hub, headers=self.headers)
            hub_fault = rule if rule is not None and rule.kind in NOTIFICATION_FAULTS else None
            if hub_fault is not None and op != "GetStreamingEvents":
                state.hub.fault_request(hub_fault.kind, request.body)
            if op == "GetStreamingEvents":
                # A long-lived chunked response (streaming.py); it does not count as an in-flight
                # request (Exchange budgets streaming connections apart from EWSMaxConcurrency).
                state.leave()
                try:
                    serve_stream(self, ctx, entry, hub_fault)
                finally:
                    state.enter()
                return
            try:
                ctx.check_impersonation()
                env = soap.build_envelope(dispatch(ctx), state.server_version)
                if audit.enabled():
                    self._audit_tree(op, env)
                body = soap.serialize(env)
                status = 200
                entry["response_code"] = ctx.response_codes[0] if ctx.response_codes else "NoError"
            except soap.SoapFault as exc:
                body = soap.fault(exc.code, exc.text, exc.back_off_ms, state.server_version, exc.message, exc.violation)
                self._audit_response(op, body)
                status = 500
                entry["response_code"] = exc.code
            except Exception as exc:  # noqa: BLE001 - a server bug must surface as a clear error
                log.exception("%s failed", op)
                body = soap.fault("ErrorInternalServerError", f"EWS test server error in {op}: {type(exc).__name__}: {exc}",
                                  server_version=state.server_version)
                status = 500
                entry["response_code"] = "ErrorInternalServerError"
            entry["mailbox"] = sorted(ctx.mailboxes)[0] if ctx.mailboxes else request.impersonate
            if len(ctx.mailboxes) > 1:
                entry["mailboxes"] = sorted(ctx.mailboxes)
            entry["items"] = ctx.items
            entry["status"] = status
            state.record(entry)
            self._respond(status, body, "text/xml; charset=utf-8",
                          {"Set-Cookie": ctx.set_cookies[0]} if ctx.set_cookies else None)
        finally:
            state.leave()


    # -- what Exchange checks before any operation runs ----------------------------------------
    def _check_request(self, request: soap.Request) -> soap.SoapFault | None:
        """RequestServerVersion the server's version does not accept -> ErrorInvalidServerVersion;
        a Header child or the Body's child that fails the profile's schema -> ErrorSchemaValidation
        (for the whole request, with the first violation's line and position, as Exchange answers)."""
        state = self.state
        version = request.requested_version
        if version is not None and version not in state.schema.accepted_versions:
            return soap.SoapFault("ErrorInvalidServerVersion", "The specified server version is invalid.")
        elements = [c for c in (request.header if request.header is not None else []) if isinstance(c.tag, str)
                    and c.tag.startswith(f"{{{soap.T}}}")]
        elements.append(request.body)
        for el in elements:
            violations = schema.validate(el, state.profile.name, request.raw)
            if violations:
                first = violations[0]
                for v in violations:
                    audit.record(server="ews", profile=state.profile.name, direction="request",
                                 operation=request.operation, error=str(v))
                return soap.SoapFault("ErrorSchemaValidation", schema.schema_failure_text(first),
                                      message="The request failed schema validation.",
                                      violation=(first.line, first.position, first.message))
        return None

    def _fault(self, entry: dict[str, Any], fault: soap.SoapFault, op: str) -> None:
        entry.update(status=500, response_code=fault.code)
        self.state.record(entry)
        if fault.code == "ErrorSchemaValidation" and fault.violation is not None and op == "?":
            audit.record(server="ews", profile=self.state.profile.name, direction="request", operation=op,
                         error=fault.text)
        body = soap.fault(fault.code, fault.text, fault.back_off_ms, self.state.server_version, fault.message,
                          fault.violation)
        self._audit_response(op, body)
        self._respond(500, body, "text/xml; charset=utf-8")

    # -- protocol audit of what the server sends ------------------------------------------------
    def _audit_tree(self, op: str, env: Any) -> None:
        problems: list[str] = []
        for el in (env[0][0], env[1][0]):  # Header/ServerVersionInfo, the Body's child
            problems += schema.validate_request(el, self.state.profile.name)
        self._record_response(op, problems, None)

    def _audit_response(self, op: str, body: bytes) -> None:
        if audit.enabled():
            self._record_response(op, schema.validate_response_envelope(body, self.state.profile.name), body)

    def _record_response(self, op: str, problems: list[str], body: bytes | None) -> None:
        for problem in problems:
            audit.record(server="ews", profile=self.state.profile.name, direction="response", operation=op,
                         error=problem, excerpt=body.decode("utf-8", "replace") if body is not None else None)


class EwsServer(BackgroundServer):
    """A configured server. ``start()`` serves in a background thread; ``serve_forever()`` blocks."""

    thread_name = "ews-testserver"

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.state = ServerState(config)
        self.workdir = Path(tempfile.mkdtemp(prefix="ews-testserver-"))
        self.loaded: dict[str, int] = {}
        self._setup_accounts()
        self._load_mailboxes()
        handler = type("Handler", (EwsHandler,), {"state": self.state})
        self.httpd = ThreadedServer((config.host, config.port), handler)
        self.ca_file: str | None = None
        if config.tls:
            self.httpd.ssl_context, self.ca_file = make_tls_context(
                self.workdir, host=config.host, cert=config.cert, key=config.key, cert_type=config.cert_type,
                ciphers=config.ciphers, min_tls=config.min_tls, max_tls=config.max_tls)
        self._thread: threading.Thread | None = None

    def _setup_accounts(self) -> None:
        for spec in self.config.accounts:
            acc = parse_account(spec)
            self.state.accounts.accounts.append(acc)
        for spec in self.config.grants:
            user, sep, address = spec.partition("=")
            if not sep:
                raise ValueError(f"--grant must be USER=ADDRESS, got {spec!r}")
            self.state.accounts.grant(user, address)

    def _load_mailboxes(self) -> None:
        from testserver_core.loaders import load_mailboxes

        self.loaded = load_mailboxes(self.state.store, self.config.mailboxes, self.config.seed)

    @property
    def url(self) -> str:
        return self.base_url + "/EWS/Exchange.asmx"

    def stop(self) -> None:
        self.state.hub.close_all()  # open GetStreamingEvents responses end with ConnectionStatus Closed
        super().stop()

    def info(self) -> dict[str, Any]:
        return {"url": self.url, "admin_url": self.base_url + "/admin", "ca_file": self.ca_file,
                "admin_token": self.state.admin_token, "token_url": self.base_url + "/common/oauth2/v2.0/token",
                "auth": list(self.config.auth), "mailboxes": self.loaded,
                "exchange_version": self.state.profile.name, "server_version": self.state.server_version}
