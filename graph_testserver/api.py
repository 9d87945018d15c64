"""Graph v1.0 routes: users, mailFolders (+childFolders, delta), messages (delta, list, get, $value), $batch.

``handle`` answers one request (a top-level one or a ``$batch`` sub-request) as a ``Reply``; the HTTP
layer (server.py) does auth, faults, the per-mailbox concurrency limit and logging around it.
Only GET is served on mailbox resources: any write answers 403 (the sync must never need one).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ews_testserver.mailstore import Folder, Item, Mailbox

from .resources import (DEFAULT_MESSAGE_PROPS, FOLDER_PROPS, MESSAGE_PROPS, folder_json, message_json,
                        parse_select, user_json)
from .store import DeltaToken, GraphStore, GraphStoreError, b64url, unb64url

MAX_PAGE = 1000


@dataclass
class Request:
    method: str
    path: str  # after /v1.0, e.g. /users/a@b.c/mailFolders/inbox/messages/delta
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    base_url: str  # https://host:port/v1.0


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    operation: str = "?"
    mailbox: str | None = None
    items: int = 0

    @classmethod
    def json(cls, status: int, data: Any, **kw: Any) -> Reply:
        return cls(status, json.dumps(data).encode(), "application/json", **kw)


def error(status: int, code: str, message: str, **kw: Any) -> Reply:
    return Reply.json(status, {"error": {"code": code, "message": message,
                                         "innerError": {"request-id": "00000000-0000-0000-0000-000000000000"}}}, **kw)


_PREFER_PAGE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.I)
_FILTER_TERM = re.compile(r"^\s*receivedDateTime\s+(ge|gt|le|lt)\s+(\S+)\s*$", re.I)


def prefers_immutable(headers: dict[str, str]) -> bool:
    return 'idtype="immutableid"' in headers.get("prefer", "").replace(" ", "").lower()


def page_size(headers: dict[str, str], default: int) -> int:
    m = _PREFER_PAGE.search(headers.get("prefer", ""))
    return max(1, min(MAX_PAGE, int(m.group(1)))) if m else default


def operation_of(method: str, path: str) -> str:
    p = path.rstrip("/")
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
        parts = [urllib.parse.unquote(p) for p in req.path.strip("/").split("/")]
        mailbox = parts[1] if len(parts) >= 2 and parts[0] == "users" else None
        try:
            reply = self._route(req, parts)
        except GraphStoreError as exc:
            reply = error(exc.status, exc.code, exc.message)
        reply.operation, reply.mailbox = op, mailbox.lower() if mailbox else None
        if reply.status == 200 and prefers_immutable(req.headers) and op != "message.value":
            reply.headers.setdefault("Preference-Applied", 'IdType="ImmutableId"')
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
            rest = parts[2:]
            if not rest:
                return Reply.json(200, user_json(mbx))
            if rest[0] == "mailFolders":
                return self._folders(req, mbx, rest[1:])
            if rest[0] == "messages" and len(rest) >= 2:
                return self._message(req, mbx, store.item(mbx, rest[1]), rest[2:])
        return error(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")

    def _folders(self, req: Request, mbx: Mailbox, rest: list[str]) -> Reply:
        store = self.store
        if not rest:
            return self._folder_list(req, mbx, mbx.msg_root)
        if rest == ["delta"]:
            return self._folder_delta(req, mbx)
        folder = store.folder(mbx, rest[0])
        tail = rest[1:]
        if not tail:
            return Reply.json(200, folder_json(folder, mbx, _select(req, FOLDER_PROPS, None)))
        if tail == ["childFolders"]:
            return self._folder_list(req, mbx, folder)
        if tail == ["messages", "delta"]:
            return self._message_delta(req, mbx, folder)
        if tail == ["messages"]:
            return self._message_list(req, mbx, folder)
        if tail[0] == "messages" and len(tail) >= 2:
            item = store.item(mbx, tail[1])
            if item.folder is not folder:
                raise GraphStoreError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            return self._message(req, mbx, item, tail[2:])
        return error(400, "BadRequest", f"Resource not found for the segment '{tail[0]}'.")

    # -- folders -----------------------------------------------------------------------------
    def _folder_list(self, req: Request, mbx: Mailbox, parent: Folder) -> Reply:
        children = [c for c in parent.children if self.store.is_mail_folder(c)]
        top = int(req.query.get("$top", "10"))
        skip = int(req.query.get("$skip", "0"))
        page = children[skip: skip + top]
        select = _select(req, FOLDER_PROPS, None)
        data: dict[str, Any] = {"value": [folder_json(f, mbx, select) for f in page]}
        if skip + top < len(children):
            data["@odata.nextLink"] = _link(req, {**req.query, "$skip": str(skip + top)})
        return Reply.json(200, data, items=len(page))

    def _folder_delta(self, req: Request, mbx: Mailbox) -> Reply:
        """All mail folders in one round (parents first); a later round reports folders created since."""
        token = req.query.get("$deltatoken") or req.query.get("$skiptoken")
        since, offset = 0, 0
        if token:
            try:
                gen, since, offset = (int(x) for x in unb64url(token).split(":"))
            except (ValueError, UnicodeDecodeError):
                raise GraphStoreError(400, "BadRequest", "The delta token is malformed.") from None
            if gen != self.store.generation:
                raise GraphStoreError(410, "SyncStateNotFound", "The sync state generation is not found.")
        folders = [f for f in self.store.mail_folders(mbx) if f.created_hseq > since]
        size = page_size(req.headers, 100)
        page = folders[offset: offset + size]
        select = _select(req, FOLDER_PROPS, None)
        data: dict[str, Any] = {"value": [folder_json(f, mbx, select) for f in page]}
        base = {k: v for k, v in req.query.items() if k not in ("$deltatoken", "$skiptoken")}
        if offset + size < len(folders):
            data["@odata.nextLink"] = _link(req, {**base, "$skiptoken": b64url(f"{self.store.generation}:{since}:{offset + size}")})
        else:
            data["@odata.deltaLink"] = _link(req, {**base, "$deltatoken": b64url(f"{self.store.generation}:{mbx.seq}:0")})
        return Reply.json(200, data, items=len(page))

    # -- messages ----------------------------------------------------------------------------
    def _message_delta(self, req: Request, mbx: Mailbox, folder: Folder) -> Reply:
        immutable = prefers_immutable(req.headers)
        raw = req.query.get("$deltatoken") or req.query.get("$skiptoken")
        if raw:
            token = DeltaToken.decode(raw)
            if _PREFER_PAGE.search(req.headers.get("prefer", "")):
                # The page size follows the request's Prefer header; the token keeps $select.
                token = DeltaToken(token.mailbox, token.folder, token.seq, page_size(req.headers, 10),
                                   token.select, token.generation, token.initial)
        else:
            select = ",".join(parse_select(req.query.get("$select"), MESSAGE_PROPS, DEFAULT_MESSAGE_PROPS))
            token = DeltaToken(mbx.index, folder.num, 0, page_size(req.headers, 10), select, self.store.generation, True)
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
                values.append(self._message_repr(obj, select_list, immutable))
        base = {k: v for k, v in req.query.items() if k not in ("$deltatoken", "$skiptoken", "$select")}
        data: dict[str, Any] = {"@odata.context": f"{req.base_url}/$metadata#Collection(message)", "value": values}
        if done:
            data["@odata.deltaLink"] = _link(req, {**base, "$deltatoken": nxt.encode()})
        else:
            data["@odata.nextLink"] = _link(req, {**base, "$skiptoken": nxt.encode()})
        return Reply.json(200, data, items=len(values))

    def _message_list(self, req: Request, mbx: Mailbox, folder: Folder) -> Reply:
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
        data: dict[str, Any] = {"value": [self._message_repr(it, select, immutable) for it in page]}
        if skip + top < len(items):
            data["@odata.nextLink"] = _link(req, {**req.query, "$skip": str(skip + top)})
        return Reply.json(200, data, items=len(page))

    def _message(self, req: Request, mbx: Mailbox, item: Item, tail: list[str]) -> Reply:
        if tail == ["$value"]:
            return Reply(200, item.raw, "text/plain", items=1)
        if tail:
            return error(400, "BadRequest", f"Resource not found for the segment '{tail[0]}'.")
        select = parse_select(req.query.get("$select"), MESSAGE_PROPS, DEFAULT_MESSAGE_PROPS)
        return Reply.json(200, self._message_repr(item, select, prefers_immutable(req.headers)), items=1)

    def _message_repr(self, item: Item, select: list[str], immutable: bool) -> dict[str, Any]:
        data = message_json(item, select)
        if not immutable:
            # REST ids (no ImmutableId preference) change when the message moves, as in Exchange Online.
            data["id"] = b64url(f"R:{item.folder.mailbox.index}:{item.num}:{item.folder.num}")
        return data


def _select(req: Request, allowed: tuple[str, ...], default: tuple[str, ...] | None) -> list[str] | None:
    value = req.query.get("$select")
    if not value:
        return list(default) if default else None
    return ["id", *[p.strip() for p in value.split(",") if p.strip() in allowed and p.strip() != "id"]]


def _cmp(op: str, a: datetime, b: datetime) -> bool:
    return {"ge": a >= b, "gt": a > b, "le": a <= b, "lt": a < b}[op]


def _link(req: Request, query: dict[str, str]) -> str:
    return f"{req.base_url}{req.path}?{urllib.parse.urlencode(query, safe='$,()')}"


def batch_body(reply: Reply) -> Any:
    """A sub-response body inside a $batch response: JSON inline, anything else base64 (as Graph does)."""
    if reply.content_type.startswith("application/json"):
        return json.loads(reply.body) if reply.body else None
    return base64.b64encode(reply.body).decode()
