"""Control API under /admin (JSON in and out, bearer admin token checked by the server)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import loaders
from .faults import FaultRule
from .mailstore import Mailbox, StoreError, rewrite_body, rewrite_subject

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
    missing = [k for k in keys if not body.get(k) and body.get(k) != 0]
    if missing:
        raise AdminError(400, f"missing fields: {', '.join(missing)}")
    return body


def _mailbox(state: ServerState, address: str) -> Mailbox:
    mbx = state.store.get_mailbox(address)
    if mbx is None:
        raise AdminError(404, f"no mailbox {address}")
    return mbx


def _items(state: ServerState, body: dict) -> tuple[Mailbox, list]:
    mbx = _mailbox(state, body["mailbox"])
    items = state.store.find_by_message_id(mbx, body["message_id"])
    if not items:
        raise AdminError(404, f"no message {body['message_id']} in {mbx.address}")
    return mbx, items


def _folder(mbx: Mailbox, path: str, create: bool):
    try:
        return mbx.folder_by_path(path, create=create)
    except StoreError as exc:
        raise AdminError(404, exc.text) from exc


def handle(state: ServerState, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    store = state.store
    route = (method, path.rstrip("/") or "/admin")
    if route == ("GET", "/admin") or route == ("GET", "/admin/health"):
        return 200, {"ok": True, "mailboxes": len(store.mailboxes), "in_flight": state.in_flight}
    if route == ("POST", "/admin/messages"):
        b = _require(body, "mailbox", "mime_base64")
        mbx = _mailbox(state, b["mailbox"])
        try:
            raw = base64.b64decode(b["mime_base64"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise AdminError(400, "mime_base64 is not valid base64") from exc
        received = None
        if b.get("received"):
            received = datetime.fromisoformat(str(b["received"]).replace("Z", "+00:00"))
        with store.lock:
            folder = _folder(mbx, b.get("folder") or "Inbox", create=True)
            item = loaders.add_raw(store, folder, raw, received=received, is_read=bool(b.get("is_read", False)))
        return 200, {"item_id": item.item_id, "message_id": item.meta.message_id, "folder_id": folder.folder_id}
    if route == ("POST", "/admin/move"):
        b = _require(body, "mailbox", "message_id", "folder")
        with store.lock:
            mbx, items = _items(state, b)
            target = _folder(mbx, b["folder"], create=bool(b.get("create", False)))
            new = [store.move_item(it, target) for it in items if it.folder is not target]
        return 200, {"moved": len(new), "item_ids": [it.item_id for it in new]}
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
        return 200, {"edited": len(items), "item_ids": [it.item_id for it in items],
                     "change_keys": [it.change_key for it in items]}
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
        return 200, {"folder_id": folder.folder_id, "path": folder.path}
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
        since = int(query.get("since", ["0"])[0])
        return 200, state.log_since(since)
    if route == ("DELETE", "/admin/log"):
        state.clear_log()
        return 200, {"cleared": True}
    if route == ("GET", "/admin/mailboxes"):
        with store.lock:
            return 200, [
                {"address": mbx.address, "folders": [
                    {"path": f.path, "folder_id": f.folder_id, "folder_class": f.folder_class,
                     "distinguished": f.distinguished, "count": len(f.items), "unread": f.unread}
                    for f in mbx.walk(mbx.msg_root)]}
                for mbx in store.mailboxes.values()
            ]
    if route == ("POST", "/admin/mailboxes"):
        b = _require(body, "mailbox")
        mbx = store.add_mailbox(b["mailbox"])
        return 200, {"mailbox": mbx.address}
    if route == ("POST", "/admin/mailboxes/delete"):
        b = _require(body, "mailbox")
        if not store.remove_mailbox(b["mailbox"]):
            raise AdminError(404, f"no mailbox {b['mailbox']}")
        return 200, {"deleted": b["mailbox"]}
    if route == ("POST", "/admin/accounts"):
        b = _require(body, "username", "password")
        acc = state.accounts.set_password(b["username"], b["password"])
        if "impersonation" in b:
            acc.impersonation = bool(b["impersonation"])
        return 200, {"username": acc.username, "impersonation": acc.impersonation}
    if route == ("POST", "/admin/grants"):
        b = _require(body, "username", "mailbox")
        state.accounts.grant(b["username"], b["mailbox"])
        return 200, {"granted": True}
    if route == ("POST", "/admin/tokens"):
        b = _require(body, "username")
        if state.accounts.find(b["username"]) is None:
            raise AdminError(404, f"no account {b['username']}")
        return 200, {"access_token": state.accounts.issue_token(b["username"]), "token_type": "Bearer"}
    raise AdminError(404, f"no route {method} {path}")
