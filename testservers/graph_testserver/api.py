"""Graph v1.0 routes: users, mailFolders (+childFolders, delta), messages (delta, list, get, $value), $batch.

``handle`` answers one request (a top-level one or a ``$batch`` sub-request) as a ``Reply``; the HTTP
layer (server.py) does auth, faults, the per-mailbox concurrency limit and logging around it.
Only GET is served on mailbox resources: any write answers 403 (the sync must never need one).

Like Graph (references in docs/graph.md):
- paths are accepted in both URL forms Graph accepts, ``/users/{id}/mailFolders/{id}/...`` and the OData
  key form ``/users('{id}')/mailFolders('{id}')/...`` (segment names case-insensitive, ``delta()`` too);
- ``@odata.nextLink`` / ``@odata.deltaLink`` are absolute, in the key form, and carry only an opaque
  ``$skiptoken`` / ``$deltatoken`` (the token encodes ``$select`` and the position), as in Microsoft's
  delta examples; list paging links keep their query (``%24skip``);
- JSON bodies carry ``@odata.context``, messages ``@odata.etag`` (and ``@odata.type`` in delta), with
  Graph's ``Content-Type: application/json; odata.metadata=minimal; ...``; errors carry ``innerError``
  {date, request-id, client-request-id}.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from testserver_core.mailstore import Folder, Item, Mailbox

from .resources import (DEFAULT_MESSAGE_PROPS, FOLDER_PROPS, MESSAGE_PROPS, change_key, folder_json, message_json,
                        parse_select, user_json)
from .store import DeltaToken, GraphStore, GraphStoreError, b64url, unb64url

MAX_PAGE = 1000
# What Graph sends for JSON (see the JSON batching docs' sub-response headers).
ODATA_JSON = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
ERROR_JSON = "application/json"
# Segment names are case-insensitive in Graph URLs (Microsoft's own examples use /me/mailfolders/...).
_SEGMENTS = {n.lower(): n for n in ("users", "mailFolders", "childFolders", "messages", "delta", "$value", "$batch",
                                    "me")}
_KEY_SEGMENT = re.compile(r"^([A-Za-z$][\w.$]*)\((.*)\)$", re.S)


@dataclass
class Request:
    method: str
    path: str  # after /v1.0 as sent, e.g. /users('a%40b.c')/mailFolders('inbox')/messages/delta
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    base_url: str  # https://host:port/v1.0

    @property
    def parts(self) -> list[str]:
        return split_path(self.path)


def split_path(path: str) -> list[str]:
    """Path segments with OData keys split out and decoded: ``/users('a%40b')/mailFolders/x`` and
    ``/users/a%40b/mailFolders('x')`` both give ``["users", "a@b", "mailFolders", "x"]``."""
    out: list[str] = []
    for raw in path.strip("/").split("/"):
        if not raw:
            continue
        seg = urllib.parse.unquote(raw)
        m = _KEY_SEGMENT.match(seg)
        if m:
            name, key = m.group(1), m.group(2)
            out.append(_SEGMENTS.get(name.lower(), name))
            if key:
                if len(key) >= 2 and key[0] == key[-1] == "'":
                    key = key[1:-1].replace("''", "'")
                out.append(key)
        else:
            out.append(_SEGMENTS.get(seg.lower(), seg))
    return out


def odata_key(value: str) -> str:
    """``('value')`` as Graph writes keys in links and contexts (quotes doubled, then percent-encoded)."""
    return "('" + urllib.parse.quote(value.replace("'", "''"), safe="") + "')"


@dataclass
class Reply:
    status: int
    raw: bytes = b""
    content_type: str = ERROR_JSON
    headers: dict[str, str] = field(default_factory=dict)
    operation: str = "?"
    mailbox: str | None = None
    items: int = 0
    data: Any = None  # the JSON document of a JSON reply (serialised when sent)

    @classmethod
    def json(cls, status: int, data: Any, content_type: str = ODATA_JSON, **kw: Any) -> Reply:
        return cls(status, b"", content_type, data=data, **kw)

    @property
    def is_json(self) -> bool:
        return self.data is not None

    @property
    def body(self) -> bytes:
        return json.dumps(self.data).encode() if self.data is not None else self.raw


def error(status: int, code: str, message: str, **kw: Any) -> Reply:
    """A Graph error body (``innerError``: date, request-id, client-request-id as Graph sends them; the
    HTTP layer puts the request's own client-request-id in when it sent one)."""
    rid = str(uuid.uuid4())
    inner = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"), "request-id": rid,
             "client-request-id": rid}
    return Reply.json(status, {"error": {"code": code, "message": message, "innerError": inner}},
                      content_type=ERROR_JSON, **kw)


_PREFER_PAGE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.I)
_FILTER_TERM = re.compile(r"^\s*receivedDateTime\s+(ge|gt|le|lt)\s+(\S+)\s*$", re.I)


def prefers_immutable(headers: dict[str, str]) -> bool:
    return 'idtype="immutableid"' in headers.get("prefer", "").replace(" ", "").lower()


def page_size(headers: dict[str, str], default: int) -> int:
    m = _PREFER_PAGE.search(headers.get("prefer", ""))
    return max(1, min(MAX_PAGE, int(m.group(1)))) if m else default


def operation_of(method: str, path: str) -> str:
    p = "/" + "/".join(seg.replace("/", "%2F") for seg in split_path(path))
    if p == "/$batch":
        return "batch"
    if re.fullmatch(r"/users/[^/]+", p):
        return "user.get"
    if p.endswith("/messages/delta"):
        return "messages.delta"
    if p.endswith("/mailFolders/delta"):
        return "mailFolders.delta"
    if p.endswith("/$value"):
        return "message.value"
    if re.search(r"/messages/[^/]+$", p):
        return "message.get"
    if p.endswith("/messages"):
        return "messages.list"
    if p.endswith("/mailFolders") or p.endswith("/childFolders"):
        return "mailFolders.list"
    if "/mailFolders/" in p:
        return "mailFolders.get"
    return method.lower() + ":" + p


class GraphApi:
    def __init__(self, store: GraphStore) -> None:
        self.store = store

    def handle(self, req: Request) -> Reply:
        op = operation_of(req.method, req.path)
        parts = req.parts
        mailbox = parts[1] if len(parts) >= 2 and parts[0] == "users" else None
        try:
            reply = self._route(req, parts)
        except GraphStoreError as exc:
            reply = error(exc.status, exc.code, exc.message)
        reply.operation, reply.mailbox = op, mailbox.lower() if mailbox else None
        if reply.status == 200 and prefers_immutable(req.headers) and op != "message.value":
            reply.headers.setdefault("Preference-Applied", 'IdType="ImmutableId"')
        if reply.is_json and reply.status < 300:
            reply.headers.setdefault("OData-Version", "4.0")
        return reply

    # -- routing -----------------------------------------------------------------------------
    def _route(self, req: Request, parts: list[str]) -> Reply:
        if req.method != "GET":
            return error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if len(parts) < 2 or parts[0] != "users":
            return error(400, "BadRequest", f"Resource not found for the segment '{parts[0] if parts else ''}'.")
        store = self.store
        with store.mail.lock:
            mbx = store.mailbox(parts[1])
            ctx = _Ctx(req, parts[1])
            rest = parts[2:]
            if not rest:
                return Reply.json(200, {"@odata.context": f"{req.base_url}/$metadata#users/$entity", **user_json(mbx)})
            if rest[0] == "mailFolders":
                return self._folders(ctx, mbx, rest[1:])
            if rest[0] == "messages" and len(rest) >= 2:
                return self._message(ctx, mbx, store.item(mbx, rest[1]), rest[2:], f"{ctx.user}/messages")
        return error(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")

    def _folders(self, ctx: _Ctx, mbx: Mailbox, rest: list[str]) -> Reply:
        store = self.store
        req = ctx.req
        if not rest:
            return self._folder_list(ctx, mbx, mbx.msg_root, f"{ctx.user}/mailFolders")
        if rest == ["delta"]:
            return self._folder_delta(ctx, mbx)
        folder = store.folder(mbx, rest[0])
        tail = rest[1:]
        fpath = f"{ctx.user}/mailFolders{odata_key(rest[0])}"
        if not tail:
            select = _select(req, FOLDER_PROPS, None)
            context = f"{ctx.user}/mailFolders{_sel(_asked(req))}/$entity"
            return Reply.json(200, {"@odata.context": ctx.context(context), **folder_json(folder, mbx, select)})
        if tail == ["childFolders"]:
            return self._folder_list(ctx, mbx, folder, f"{fpath}/childFolders")
        if tail == ["messages", "delta"]:
            return self._message_delta(ctx, mbx, folder, f"{fpath}/messages/delta")
        if tail == ["messages"]:
            return self._message_list(ctx, mbx, folder, f"{fpath}/messages")
        if tail[0] == "messages" and len(tail) >= 2:
            item = store.item(mbx, tail[1])
            if item.folder is not folder:
                raise GraphStoreError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            return self._message(ctx, mbx, item, tail[2:], f"{fpath}/messages")
        return error(400, "BadRequest", f"Resource not found for the segment '{tail[0]}'.")

    # -- folders -----------------------------------------------------------------------------
    def _folder_list(self, ctx: _Ctx, mbx: Mailbox, parent: Folder, path: str) -> Reply:
        req = ctx.req
        children = [c for c in parent.children if self.store.is_mail_folder(c)]
        top = int(req.query.get("$top", "10"))
        skip = int(req.query.get("$skip", "0"))
        page = children[skip: skip + top]
        select = _select(req, FOLDER_PROPS, None)
        data: dict[str, Any] = {"@odata.context": ctx.context(f"{path}{_sel(_asked(req))}"),
                                "value": [folder_json(f, mbx, select) for f in page]}
        if skip + top < len(children):
            data["@odata.nextLink"] = ctx.link(path, {**req.query, "$skip": str(skip + top)})
        return Reply.json(200, data, items=len(page))

    def _folder_delta(self, ctx: _Ctx, mbx: Mailbox) -> Reply:
        """All mail folders in one round (parents first); a later round reports folders created since."""
        req = ctx.req
        token = req.query.get("$deltatoken") or req.query.get("$skiptoken")
        since, offset = 0, 0
        select_raw = req.query.get("$select") or ""
        if token:
            try:
                gen, since, offset, select_raw = json.loads(unb64url(token))
                gen, since, offset = int(gen), int(since), int(offset)
            except (ValueError, TypeError, UnicodeDecodeError):
                raise GraphStoreError(400, "BadRequest", "The delta token is malformed.") from None
            if gen != self.store.generation:
                raise GraphStoreError(410, "SyncStateNotFound", "The sync state generation is not found.")
        folders = [f for f in self.store.mail_folders(mbx) if f.created_hseq > since]
        size = page_size(req.headers, 100)
        page = folders[offset: offset + size]
        select = _select_value(select_raw, FOLDER_PROPS)
        values = []
        for f in page:
            values.append({"@odata.type": "#microsoft.graph.mailFolder", **folder_json(f, mbx, select)})
        data: dict[str, Any] = {"@odata.context": ctx.context("Collection(mailFolder)"), "value": values}
        path = f"{ctx.user}/mailFolders/delta"
        if offset + size < len(folders):
            state = b64url(json.dumps([self.store.generation, since, offset + size, select_raw]))
            data["@odata.nextLink"] = ctx.link(path, {"$skiptoken": state})
        else:
            state = b64url(json.dumps([self.store.generation, mbx.seq, 0, select_raw]))
            data["@odata.deltaLink"] = ctx.link(path, {"$deltatoken": state})
        return Reply.json(200, data, items=len(page))

    # -- messages ----------------------------------------------------------------------------
    def _message_delta(self, ctx: _Ctx, mbx: Mailbox, folder: Folder, path: str) -> Reply:
        req = ctx.req
        immutable = prefers_immutable(req.headers)
        raw = req.query.get("$deltatoken") or req.query.get("$skiptoken")
        if raw:
            token = DeltaToken.decode(raw)
            if _PREFER_PAGE.search(req.headers.get("prefer", "")):
                # The page size follows the request's Prefer header; the token keeps $select.
                token = DeltaToken(token.mailbox, token.folder, token.seq, page_size(req.headers, 10),
                                   token.select, token.generation, token.initial, token.cursor)
        else:
            select = ",".join(parse_select(req.query.get("$select"), MESSAGE_PROPS, DEFAULT_MESSAGE_PROPS))
            # The first round: the folder's contents as of now (newest first), then the changes since.
            token = DeltaToken(mbx.index, folder.num, mbx.seq, page_size(req.headers, 10), select, self.store.generation,
                               True, "*")
        changes, nxt, done = self.store.delta_page(folder, token)
        select_list = token.select.split(",")
        values: list[dict[str, Any]] = []
        for kind, obj in changes:
            if kind == "removed":
                assert isinstance(obj, int)
                rid = self.store.removed_id(mbx, obj) if immutable else b64url(f"R:{mbx.index}:{obj}:{folder.num}")
                values.append({"@odata.type": "#microsoft.graph.message", "id": rid, "@removed": {"reason": "deleted"}})
            else:
                assert isinstance(obj, Item)
                values.append({"@odata.type": "#microsoft.graph.message", **self._message_repr(obj, select_list, immutable)})
        # Microsoft's delta examples: the context is the collection's type, the links carry only the token.
        data: dict[str, Any] = {"@odata.context": ctx.context("Collection(message)"), "value": values}
        if done:
            data["@odata.deltaLink"] = ctx.link(path, {"$deltatoken": nxt.encode()})
        else:
            data["@odata.nextLink"] = ctx.link(path, {"$skiptoken": nxt.encode()})
        return Reply.json(200, data, items=len(values))

    def _message_list(self, ctx: _Ctx, mbx: Mailbox, folder: Folder, path: str) -> Reply:
        req = ctx.req
        immutable = prefers_immutable(req.headers)
        lower: list[tuple[str, datetime]] = []
        flt = req.query.get("$filter")
        if flt:
            for term in re.split(r"\s+and\s+", flt, flags=re.I):
                m = _FILTER_TERM.match(term)
                if not m:
                    raise GraphStoreError(400, "ErrorInvalidUrlQueryFilter", f"The filter clause '{term}' is not supported.")
                lower.append((m.group(1).lower(), datetime.fromisoformat(m.group(2).replace("Z", "+00:00"))))
        order = (req.query.get("$orderby") or "receivedDateTime desc").strip().lower()
        if order not in ("receiveddatetime", "receiveddatetime asc", "receiveddatetime desc"):
            raise GraphStoreError(400, "ErrorInvalidUrlQuery", "Only $orderby=receivedDateTime [asc|desc] is supported.")
        items = [it for it in folder.sorted_items() if all(_cmp(op, it.received, v) for op, v in lower)]
        if order.endswith("desc"):
            items.reverse()
        top = max(1, min(MAX_PAGE, int(req.query.get("$top", "10"))))
        skip = int(req.query.get("$skip", "0"))
        page = items[skip: skip + top]
        select = parse_select(req.query.get("$select"), MESSAGE_PROPS, DEFAULT_MESSAGE_PROPS)
        explicit = _asked(req)
        data: dict[str, Any] = {"@odata.context": ctx.context(f"{path}{_sel(explicit)}"),
                                "value": [self._message_repr(it, select, immutable) for it in page]}
        if skip + top < len(items):
            data["@odata.nextLink"] = ctx.link(path, {**req.query, "$skip": str(skip + top)})
        return Reply.json(200, data, items=len(page))

    def _message(self, ctx: _Ctx, mbx: Mailbox, item: Item, tail: list[str], path: str) -> Reply:
        req = ctx.req
        if tail == ["$value"]:
            return Reply(200, item.raw, "text/plain", items=1)
        if tail:
            return error(400, "BadRequest", f"Resource not found for the segment '{tail[0]}'.")
        select = parse_select(req.query.get("$select"), MESSAGE_PROPS, DEFAULT_MESSAGE_PROPS)
        explicit = _asked(req)
        data = {"@odata.context": ctx.context(f"{path}{_sel(explicit)}/$entity"),
                **self._message_repr(item, select, prefers_immutable(req.headers))}
        return Reply.json(200, data, items=1)

    def _message_repr(self, item: Item, select: list[str], immutable: bool) -> dict[str, Any]:
        data = {"@odata.etag": f'W/"{change_key(item)}"', **message_json(item, select)}
        if not immutable:
            # REST ids (no ImmutableId preference) change when the message moves, as in Exchange Online.
            data["id"] = b64url(f"R:{item.folder.mailbox.index}:{item.num}:{item.folder.num}")
        return data


class _Ctx:
    """Per request: the user segment as given, and how links and contexts are written."""

    def __init__(self, req: Request, user: str) -> None:
        self.req = req
        self.user = f"users{odata_key(user)}"

    def context(self, fragment: str) -> str:
        return f"{self.req.base_url}/$metadata#{fragment}"

    def link(self, path: str, query: dict[str, str]) -> str:
        """An absolute link in Graph's form: ``https://host/v1.0/users('x')/...?...`` (``$`` of query
        names percent-encoded as ``%24``, as Graph writes paging links; delta links carry only their token)."""
        if set(query) <= {"$skiptoken", "$deltatoken"}:
            qs = "&".join(f"{k}={v}" for k, v in query.items())  # opaque tokens are URL-safe already
        else:
            qs = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        return f"{self.req.base_url}/{path}?{qs}"


def _asked(req: Request) -> list[str] | None:
    """The $select list as the request gave it (Graph's @odata.context repeats it; ``id`` is sent anyway)."""
    value = req.query.get("$select")
    return [p.strip() for p in value.split(",") if p.strip()] if value else None


def _sel(select: list[str] | None) -> str:
    return f"({','.join(select)})" if select else ""


def _select_value(value: str, allowed: tuple[str, ...]) -> list[str] | None:
    if not value:
        return None
    return ["id", *[p.strip() for p in value.split(",") if p.strip() in allowed and p.strip() != "id"]]


def _select(req: Request, allowed: tuple[str, ...], default: tuple[str, ...] | None) -> list[str] | None:
    value = req.query.get("$select")
    if not value:
        return list(default) if default else None
    return _select_value(value, allowed)


def _cmp(op: str, a: datetime, b: datetime) -> bool:
    return {"ge": a >= b, "gt": a > b, "le": a <= b, "lt": a < b}[op]


def batch_body(reply: Reply) -> Any:
    """A sub-response body inside a $batch response: JSON content types inline as JSON, anything else
    base64-encoded (Microsoft's JSON batching docs; OData JSON 4.01 section 19)."""
    if reply.is_json:
        return reply.data
    return base64.b64encode(reply.raw).decode()
