"""Control API under /admin: the EWS test server's routes (same bodies), plus Graph-specific ones.

Mail routes reuse the EWS test server's loaders and MIME rewriting; a move keeps the message's
immutable id (``GraphStore.move_keep_id``). Graph-only routes: ``POST /admin/tokens/expire`` (every
issued access token answers 401 from now on), ``POST /admin/delta/expire`` (every delta/skip token
answers 410), ``POST /admin/policy`` (application access policy), ``POST /admin/concurrency``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ews_testserver import loaders
from ews_testserver.mailstore import Mailbox, StoreError, rewrite_body, rewrite_subject

from .faults import FaultRule
from .store import GraphStore

if TYPE_CHECKING:
    from .server import ServerState


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _require(body: Any, *keys: str) -> dict:
    if not isinstance(body, dict):
        raise AdminError(400, "the request body must be a JSON object")
    missing = [k for k in keys if body.get(k) in (None, "")]
    if missing:
        raise AdminError(400, f"missing fields: {', '.join(missing)}")
    return body


def _mailbox(state: ServerState, address: str) -> Mailbox:
    mbx = state.store.mail.get_mailbox(address)
    if mbx is None:
        raise AdminError(404, f"no mailbox {address}")
    return mbx


def _items(state: ServerState, body: dict) -> tuple[Mailbox, list]:
    mbx = _mailbox(state, body["mailbox"])
    items = state.store.mail.find_by_message_id(mbx, body["message_id"])
    if not items:
        raise AdminError(404, f"no message {body['message_id']} in {mbx.address}")
    return mbx, items


def _folder(mbx: Mailbox, path: str, create: bool):
    try:
        return mbx.folder_by_path(path, create=create)
    except StoreError as exc:
        raise AdminError(404, exc.text) from exc


def handle(state: ServerState, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
    gstore = state.store
    store = gstore.mail
    route = (method, path.rstrip("/") or "/admin")
    if route in (("GET", "/admin"), ("GET", "/admin/health")):
        return 200, {"ok": True, "mailboxes": len(store.mailboxes), "in_flight": dict(state.in_flight),
                     "max_in_flight": dict(state.max_in_flight), "tokens_issued": state.auth.issued}
    if route == ("POST", "/admin/messages"):
        b = _require(body, "mailbox", "mime_base64")
        mbx = _mailbox(state, b["mailbox"])
        try:
            raw = base64.b64decode(b["mime_base64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise AdminError(400, "mime_base64 is not valid base64") from exc
        received = datetime.fromisoformat(str(b["received"]).replace("Z", "+00:00")) if b.get("received") else None
        with store.lock:
            folder = _folder(mbx, b.get("folder") or "Inbox", create=True)
            item = loaders.add_raw(store, folder, raw, received=received, is_read=bool(b.get("is_read", False)))
        return 200, {"item_id": GraphStore.message_id(item), "message_id": item.meta.message_id,
                     "folder_id": GraphStore.folder_id(folder)}
    if route == ("POST", "/admin/move"):
        b = _require(body, "mailbox", "message_id", "folder")
        with store.lock:
            mbx, items = _items(state, b)
            target = _folder(mbx, b["folder"], create=bool(b.get("create", False)))
            moved = [gstore.move_keep_id(it, target) for it in items if it.folder is not target]
        return 200, {"moved": len(moved), "item_ids": [GraphStore.message_id(it) for it in moved]}
    if route == ("POST", "/admin/edit"):
        b = _require(body, "mailbox", "message_id")
        if "subject" not in b and "body" not in b:
            raise AdminError(400, "give subject and/or body")
        with store.lock:
            _mbx, items = _items(state, b)
            for it in items:
                raw = it.raw
                if "body" in b:
                    raw = rewrite_body(raw, str(b["body"]))
                if "subject" in b:
                    raw = rewrite_subject(raw, str(b["subject"]))
                store.update_item(it, raw)
        return 200, {"edited": len(items), "item_ids": [GraphStore.message_id(it) for it in items]}
    if route == ("POST", "/admin/read"):
        b = _require(body, "mailbox", "message_id")
        with store.lock:
            _mbx, items = _items(state, b)
            for it in items:
                store.set_read(it, bool(b.get("is_read", True)))
        return 200, {"updated": len(items)}
    if route == ("POST", "/admin/delete"):
        b = _require(body, "mailbox", "message_id")
        with store.lock:
            _mbx, items = _items(state, b)
            for it in items:
                store.delete_item(it)
        return 200, {"deleted": len(items)}
    if route == ("POST", "/admin/folders"):
        b = _require(body, "mailbox", "path")
        with store.lock:
            folder = _folder(_mailbox(state, b["mailbox"]), b["path"], create=True)
        return 200, {"folder_id": GraphStore.folder_id(folder), "path": folder.path}
    if route == ("PUT", "/admin/faults"):
        if not isinstance(body, list):
            raise AdminError(400, "the fault plan must be a JSON list")
        try:
            rules = [FaultRule.from_json(r) for r in body]
        except (ValueError, TypeError) as exc:
            raise AdminError(400, str(exc)) from exc
        state.faults.set(rules)
        return 200, state.faults.snapshot()
    if route == ("GET", "/admin/faults"):
        return 200, state.faults.snapshot()
    if route == ("GET", "/admin/log"):
        return 200, state.log_since(int(query.get("since", "0")))
    if route == ("DELETE", "/admin/log"):
        state.clear_log()
        return 200, {"cleared": True}
    if route == ("GET", "/admin/mailboxes"):
        with store.lock:
            return 200, [
                {"address": mbx.address, "folders": [
                    {"path": f.path, "folder_id": GraphStore.folder_id(f), "count": len(f.items), "unread": f.unread}
                    for f in gstore.mail_folders(mbx)]}
                for mbx in store.mailboxes.values()
            ]
    if route == ("POST", "/admin/mailboxes"):
        b = _require(body, "mailbox")
        return 200, {"mailbox": store.add_mailbox(b["mailbox"]).address}
    if route == ("POST", "/admin/mailboxes/delete"):
        b = _require(body, "mailbox")
        if not store.remove_mailbox(b["mailbox"]):
            raise AdminError(404, f"no mailbox {b['mailbox']}")
        return 200, {"deleted": b["mailbox"]}
    if route == ("POST", "/admin/tokens/expire"):
        return 200, {"expired": state.auth.expire_all()}
    if route == ("POST", "/admin/delta/expire"):
        return 200, {"generation": gstore.expire_states()}
    if route == ("POST", "/admin/policy"):
        b = _require(body, "client_id")
        app = state.auth.apps.get(b["client_id"])
        if app is None:
            raise AdminError(404, f"no app {b['client_id']}")
        scope = b.get("mailboxes")
        app.mailboxes = None if scope is None else {str(m).lower() for m in scope}
        return 200, {"client_id": app.client_id, "mailboxes": sorted(app.mailboxes) if app.mailboxes else None}
    if route == ("POST", "/admin/apps"):
        b = _require(body, "client_id", "secret")
        from .auth import App

        existing = state.auth.apps.get(b["client_id"])
        state.auth.add(App(b["client_id"], secret=str(b["secret"]), mailboxes=existing.mailboxes if existing else None))
        return 200, {"client_id": b["client_id"]}
    if route == ("POST", "/admin/concurrency"):
        b = _require(body, "limit")
        state.mailbox_concurrency = int(b["limit"])
        return 200, {"limit": state.mailbox_concurrency}
    raise AdminError(404, f"no route {method} {path}")
