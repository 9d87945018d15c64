"""The HTTPS server: Graph v1.0 under /v1.0, the Entra ID token + discovery endpoints, /admin.

One port plays both graph.microsoft.com and login.microsoftonline.com (``authority`` =
``https://127.0.0.1:PORT``). Plumbing (threaded stdlib server, TLS handshake in the connection
thread, trustme certificates, request log) is shared with the EWS test server: ``testserver_core.server``.
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
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testserver_core import audit
from testserver_core.admin import serve_admin
from testserver_core.server import BackgroundServer, BaseHandler, RequestLog, ThreadedServer, make_tls_context
from testserver_core.server import now_iso as _now

from . import admin
from . import csdl
from .api import GraphApi, Reply, Request, batch_body, error, operation_of, split_path
from .auth import AuthRegistry, TokenError, parse_app
from .faults import FaultPlan, FaultRule
from .store import GraphStore, load_mailboxes

log = logging.getLogger("graph_testserver")

MAX_BATCH = 20


@dataclass
class GraphServerConfig:
    host: str = "127.0.0.1"
    port: int = 0
    apps: list[str] = field(default_factory=list)  # CLIENT_ID:SECRET | CLIENT_ID:cert=PEM
    mailboxes: list[str] = field(default_factory=list)  # ADDRESS=PATH | ADDRESS=generate:N | ADDRESS=
    policies: list[str] = field(default_factory=list)  # CLIENT_ID=ADDR[,ADDR...]: application access policy
    tenant_id: str | None = None
    seed: int = 4711
    admin_token: str | None = None
    token_lifetime_s: int = 3599
    mailbox_concurrency: int = 4  # Outlook's limit per app and mailbox; 0 disables


class ServerState(RequestLog):
    def __init__(self, config: GraphServerConfig) -> None:
        super().__init__()
        self.config = config
        self.store = GraphStore()
        self.api = GraphApi(self.store)
        self.auth = AuthRegistry(tenant_id=config.tenant_id or str(uuid.uuid4()),
                                 token_lifetime_s=config.token_lifetime_s)
        self.faults = FaultPlan()
        self.admin_token = config.admin_token or secrets.token_urlsafe(24)
        self.mailbox_concurrency = config.mailbox_concurrency
        self._lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}

    def enter(self, mailbox: str, weight: int) -> bool:
        """Count a request against the mailbox's concurrency; False (and nothing counted) if over the limit."""
        with self._lock:
            now = self.in_flight.get(mailbox, 0) + weight
            if self.mailbox_concurrency and now > self.mailbox_concurrency:
                return False
            self.in_flight[mailbox] = now
            self.max_in_flight[mailbox] = max(self.max_in_flight.get(mailbox, 0), now)
            return True

    def leave(self, mailbox: str, weight: int) -> None:
        with self._lock:
            self.in_flight[mailbox] -= weight


def _fault_reply(rule: FaultRule) -> Reply | None:
    """The response a fired rule answers with (None: drop/slow are handled by the caller)."""
    if rule.kind == "throttle":
        headers = {"Retry-After": str(rule.retry_after_s)} if rule.retry_after_s >= 0 else {}
        return error(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.", headers=headers)
    if rule.kind == "http_503":
        return error(503, "ServiceUnavailable", "Service is temporarily unavailable.",
                     headers={"Retry-After": str(max(rule.retry_after_s, 0))})
    if rule.kind == "gone":
        return error(410, "SyncStateNotFound", "The sync state generation is not found.")
    if rule.kind == "unauthorized":
        return error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
    if rule.kind == "forbidden":
        return error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    return None


class GraphHandler(BaseHandler):
    server_version = "Microsoft-HTTPAPI/2.0"
    logger = log
    state: ServerState
    base: str  # https://host:port

    def _send(self, reply: Reply) -> None:
        self._respond(reply.status, reply.body, reply.content_type, reply.headers)

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve("PATCH")

    def _route(self, method: str) -> None:
        raw = self._read_body()
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        try:
            if path.startswith("/v1.0/") or path == "/v1.0":
                self._graph(method, path[len("/v1.0"):] or "/", query, raw)
            elif path == "/admin" or path.startswith("/admin/"):
                self._admin(method, path, query, raw)
            elif method == "POST" and path.endswith("/oauth2/v2.0/token"):
                self._token(path, raw)
            elif method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
                self._discovery(path)
            elif method == "GET" and path.endswith("/discovery/instance"):
                self._send(Reply.json(200, {"tenant_discovery_endpoint":
                                            f"{self.base}/{self.state.auth.tenant_id}/v2.0/.well-known/openid-configuration",
                                            "api-version": "1.1", "metadata": []}, content_type=ENTRA_JSON))
            else:
                self._send(Reply(404, b"not found", "text/plain"))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    # -- Entra ID ---------------------------------------------------------------------------
    def _tenant_ok(self, tenant: str) -> bool:
        return tenant.lower() in (self.state.auth.tenant_id.lower(), "organizations", "common")

    def _discovery(self, path: str) -> None:
        tenant = path.strip("/").split("/")[0]
        if not self._tenant_ok(tenant):
            self._send(Reply.json(400, entra_error("invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not found. "
                                                   "Check to make sure you have the correct tenant ID and are signing "
                                                   "into the correct cloud."), content_type=ENTRA_JSON))
            return
        tid = self.state.auth.tenant_id
        self._send(Reply.json(200, content_type=ENTRA_JSON, data={
            "token_endpoint": f"{self.base}/{tid}/oauth2/v2.0/token",
            "authorization_endpoint": f"{self.base}/{tid}/oauth2/v2.0/authorize",
            "issuer": f"{self.base}/{tid}/v2.0",
            "jwks_uri": f"{self.base}/{tid}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "tenant_region_scope": "EU",
        }))

    def _token(self, path: str, raw: bytes) -> None:
        state = self.state
        tenant = path.strip("/").split("/")[0]
        form = dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace")))
        entry: dict[str, Any] = {"operation": "token", "client_id": form.get("client_id"), "mailbox": None,
                                 "time": _now(), "method": "POST", "path": path, "write": False}
        rule = state.faults.match("token")
        if rule is not None and rule.kind in ("throttle", "http_503"):
            reply = _fault_reply(rule)
            assert reply is not None
            entry.update(status=reply.status, fault=rule.kind)
            state.record(entry)
            self._send(reply)
            return
        try:
            if not self._tenant_ok(tenant):
                raise TokenError(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
            data = state.auth.issue(form, f"{self.base}/{state.auth.tenant_id}/oauth2/v2.0/token")
            status = 200
        except TokenError as exc:
            data = entra_error(exc.error, exc.description)
            status = exc.status
            entry["error"] = exc.error
        entry["status"] = status
        state.record(entry)
        self._send(Reply.json(status, data, content_type=ENTRA_JSON))

    # -- Graph ------------------------------------------------------------------------------
    def _authorize(self) -> tuple[Any, Reply | None]:
        header = self.headers.get("Authorization", "")
        if header[:7].lower() != "bearer ":
            return None, error(401, "InvalidAuthenticationToken", "Access token is empty.")
        app, why = self.state.auth.check(header[7:].strip())
        if app is None:
            return None, error(401, "InvalidAuthenticationToken", why or "Access token validation failure.",
                               headers={"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'})
        return app, None

    def _graph(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        state = self.state
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(method, path, query, headers, self.base + "/v1.0")
        op = operation_of(method, path)
        entry: dict[str, Any] = {"operation": op, "client_id": None, "mailbox": None, "time": _now(),
                                 "method": method, "path": path, "target": self.path,
                                 "write": method != "GET" and op != "batch",
                                 "page_size": None, "immutable": 'immutableid' in headers.get("prefer", "").lower()}
        app, denied = self._authorize()
        if denied is not None:
            entry["status"] = 401
            state.record(entry)
            denied.operation = op
            self._send_graph(denied, headers)
            return
        entry["client_id"] = app.client_id
        if op == "batch" and method == "POST":
            self._batch(app, raw, entry)
            return
        rule = state.faults.match(op)
        if rule is not None:
            entry["fault"] = rule.kind
            if rule.kind == "drop":
                entry["status"] = None
                state.record(entry)
                self._drop()
                return
            if rule.kind == "slow":
                time.sleep(rule.delay_s)
                rule = None
            elif rule.kind == "unauthorized":
                state.auth.expire_all()  # the token expires now: every later use of it is refused too
        reply = _fault_reply(rule) if rule is not None else None
        if reply is None:
            reply = self._dispatch(app, req, weight=1)
        reply.operation = op
        entry.update(status=reply.status, mailbox=reply.mailbox, items=reply.items,
                     page_size=_prefer_size(headers))
        if reply.status >= 400:
            entry["error"] = _code(reply)
        state.record(entry)
        self._send_graph(reply, headers)

    def _send_graph(self, reply: Reply, headers: dict[str, str]) -> None:
        """Graph's per-request ids (response headers, and in an error's innerError), the audit, then send."""
        stamp_ids(reply, headers)
        audit_reply(reply)
        self._send(reply)

    def _dispatch(self, app: Any, req: Request, weight: int) -> Reply:
        """Access policy, the per-mailbox concurrency limit, then the route."""
        parts = req.parts
        mailbox = parts[1].lower() if len(parts) >= 2 and parts[0] == "users" else None
        if mailbox is not None and not app.allows(mailbox):
            reply = error(403, "ErrorAccessDenied", "Access to OData is disabled: the application access policy "
                          "does not allow this app to access the mailbox.")
            reply.mailbox = mailbox
            return reply
        if mailbox is not None and self.state.store.mail.get_mailbox(mailbox) is not None:
            if not self.state.enter(mailbox, weight):
                reply = error(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                              headers={"Retry-After": "1"})
                reply.mailbox = mailbox
                return reply
            try:
                return self.state.api.handle(req)
            finally:
                self.state.leave(mailbox, weight)
        return self.state.api.handle(req)

    def _batch(self, app: Any, raw: bytes, entry: dict[str, Any]) -> None:
        state = self.state
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            payload = json.loads(raw)
            requests = payload["requests"]
            if not isinstance(requests, list) or not requests:
                raise ValueError("requests")
        except (ValueError, KeyError, TypeError):
            reply = error(400, "BadRequest", "Invalid batch payload.")
            entry.update(status=400, error="BadRequest")
            state.record(entry)
            self._send_graph(reply, headers)
            return
        if len(requests) > MAX_BATCH:
            entry.update(status=400, error="BadRequest")
            state.record(entry)
            self._send_graph(error(400, "BadRequest", f"Batch requests cannot contain more than {MAX_BATCH} requests."),
                             headers)
            return
        rule = state.faults.match("batch")
        if rule is not None and rule.kind == "drop":
            entry.update(status=None, fault="drop")
            state.record(entry)
            self._drop()
            return
        if rule is not None and _fault_reply(rule) is not None:
            reply = _fault_reply(rule)
            assert reply is not None
            entry.update(status=reply.status, fault=rule.kind)
            state.record(entry)
            self._send_graph(reply, headers)
            return
        entry.update(status=200, items=len(requests))
        batch_seq = state.record(entry)
        # Graph dispatches up to four sub-requests of a batch to Outlook at once: a batch occupies
        # min(n, 4) of its mailbox's concurrency for its whole duration (sub-requests run in order here).
        per_mailbox: dict[str, int] = {}
        for sub in requests:
            parts = split_path(urllib.parse.urlsplit("/" + str(sub.get("url", "")).lstrip("/")).path)
            if len(parts) >= 2 and parts[0] == "users":
                m = parts[1].lower()
                per_mailbox[m] = per_mailbox.get(m, 0) + 1
        held: list[tuple[str, int]] = []
        throttled_all = False
        for m, n in per_mailbox.items():
            if state.store.mail.get_mailbox(m) is None:
                continue
            w = min(n, 4)
            if state.enter(m, w):
                held.append((m, w))
            else:
                throttled_all = True
        responses = []
        try:
            for sub in requests:
                responses.append(self._sub(app, sub, batch_seq, throttled_all))
        finally:
            for m, w in held:
                state.leave(m, w)
        reply = Reply.json(200, {"responses": responses})
        reply.operation = "batch"
        self._send_graph(reply, headers)

    def _sub(self, app: Any, sub: dict[str, Any], batch_seq: int, throttled: bool) -> dict[str, Any]:
        state = self.state
        sub_id = str(sub.get("id", ""))
        method = str(sub.get("method", "GET")).upper()
        parsed = urllib.parse.urlsplit("/" + str(sub.get("url", "")).lstrip("/"))
        path = parsed.path
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        headers = {str(k).lower(): str(v) for k, v in (sub.get("headers") or {}).items()}
        op = operation_of(method, path)
        entry: dict[str, Any] = {"operation": op, "client_id": app.client_id, "mailbox": None, "time": _now(),
                                 "method": method, "path": path, "target": str(sub.get("url", "")),
                                 "write": method != "GET", "batch": batch_seq,
                                 "immutable": 'immutableid' in headers.get("prefer", "").lower()}
        rule = state.faults.match(op)
        reply = _fault_reply(rule) if rule is not None else None
        if rule is not None:
            entry["fault"] = rule.kind
            if rule.kind == "slow":
                time.sleep(rule.delay_s)
            elif rule.kind == "drop":
                reply = error(504, "GatewayTimeout", "The request timed out.")
        if reply is None and throttled:
            reply = error(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                          headers={"Retry-After": "1"})
        if reply is None:
            # The batch already holds the mailbox's concurrency (weight 0 here: not counted twice).
            reply = self._dispatch(app, Request(method, path, query, headers, self.base + "/v1.0"), weight=0)
        entry.update(status=reply.status, mailbox=reply.mailbox, items=reply.items)
        if reply.status >= 400:
            entry["error"] = _code(reply)
        state.record(entry)
        reply.operation = op
        stamp_ids(reply, headers)
        audit_reply(reply)
        out_headers = {"Content-Type": reply.content_type, **reply.headers}
        return {"id": sub_id, "status": reply.status, "headers": out_headers, "body": batch_body(reply)}

    # -- control API ------------------------------------------------------------------------
    def _admin(self, method: str, path: str, query: dict[str, str], raw: bytes) -> None:
        status, data = serve_admin(admin.handle, self.state, method, path, query, raw,
                                   self.headers.get("Authorization", ""), log)
        self._send(Reply.json(status, data))


def _prefer_size(headers: dict[str, str]) -> int | None:
    import re

    m = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", headers.get("prefer", ""), re.I)
    return int(m.group(1)) if m else None


def _code(reply: Reply) -> str | None:
    try:
        return reply.data["error"]["code"]
    except (KeyError, TypeError):
        return None


# Entra ID's token endpoint answers errors as JSON with these fields (the v2.0 endpoint's "Error response"):
# error, error_description "AADSTSnnnnn: ...\r\nTrace ID: ...\r\nCorrelation ID: ...\r\nTimestamp: ...",
# error_codes [nnnnn], timestamp, trace_id, correlation_id, error_uri.
ENTRA_JSON = "application/json; charset=utf-8"


def entra_error(error_code: str, description: str) -> dict[str, Any]:
    import datetime as _dt
    import re as _re

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    m = _re.match(r"AADSTS(\d+):", description)
    codes = [int(m.group(1))] if m else []
    data: dict[str, Any] = {
        "error": error_code,
        "error_description": f"{description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {now}",
        "error_codes": codes, "timestamp": now, "trace_id": trace, "correlation_id": correlation}
    if codes:
        data["error_uri"] = f"https://login.microsoftonline.com/error?code={codes[0]}"
    return data


def stamp_ids(reply: Reply, headers: dict[str, str]) -> None:
    """``request-id`` / ``client-request-id`` response headers (the client's own id echoed when it sent one),
    and the same ids in an error body's ``innerError``, as Graph does."""
    inner = None
    if isinstance(reply.data, dict) and isinstance(reply.data.get("error"), dict):
        inner = reply.data["error"].get("innerError")
    request_id = inner["request-id"] if isinstance(inner, dict) else str(uuid.uuid4())
    client_id = headers.get("client-request-id") or request_id
    if isinstance(inner, dict):
        inner["client-request-id"] = client_id
    reply.headers.setdefault("request-id", request_id)
    reply.headers.setdefault("client-request-id", client_id)


def audit_reply(reply: Reply) -> None:
    """With the protocol audit on: check the JSON body against Graph's CSDL (a $batch: the envelope; its
    sub-responses are checked one by one as they are made) and report violations."""
    if not audit.enabled() or not reply.is_json:
        return
    if reply.operation == "batch" and reply.status == 200:
        problems = csdl.check_batch(reply.data)
    else:
        problems = csdl.schema().check_response(reply.data, reply.status)
    for problem in problems[:20]:
        audit.record(server="graph", direction="response", operation=reply.operation, error=problem,
                     excerpt=json.dumps(reply.data)[:2000])


class GraphServer(BackgroundServer):
    """A configured server. ``start()`` serves in a background thread; ``serve_forever()`` blocks."""

    thread_name = "graph-testserver"

    def __init__(self, config: GraphServerConfig) -> None:
        self.config = config
        self.state = ServerState(config)
        self.workdir = Path(tempfile.mkdtemp(prefix="graph-testserver-"))
        for spec in config.apps:
            self.state.auth.add(parse_app(spec))
        self.loaded = load_mailboxes(self.state.store.mail, config.mailboxes, config.seed)
        for spec in config.policies:
            client_id, sep, addresses = spec.partition("=")
            app = self.state.auth.apps.get(client_id)
            if not sep or app is None:
                raise ValueError(f"--policy must be CLIENT_ID=ADDRESS[,ADDRESS] for a registered app, got {spec!r}")
            app.mailboxes = {a.strip().lower() for a in addresses.split(",") if a.strip()}
        handler = type("Handler", (GraphHandler,), {"state": self.state, "base": ""})
        self.httpd = ThreadedServer((config.host, config.port), handler)
        ctx, ca_file = make_tls_context(self.workdir, host=config.host)
        self.httpd.ssl_context = ctx
        self.ca_file = ca_file
        handler.base = self.base_url
        self._thread: threading.Thread | None = None

    def info(self) -> dict[str, Any]:
        return {"graph_url": self.base_url + "/v1.0", "authority": self.base_url,
                "tenant_id": self.state.auth.tenant_id, "ca_file": self.ca_file,
                "admin_url": self.base_url + "/admin", "admin_token": self.state.admin_token,
                "mailboxes": self.loaded}
