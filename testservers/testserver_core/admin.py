"""The ``/admin`` control API parts both test servers share: the request plumbing (admin bearer token,
JSON body, error mapping) and the routes on mail and fault plans, answered with the same bodies.

Each server subclasses ``MailRoutes`` for what differs (its ids, how a move works, the log query's
shape, body validation) and handles its own routes (health, mailbox listing, accounts/apps...) itself.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from . import loaders
from .mailstore import Folder, Item, Mailbox, MailStore, StoreError, rewrite_body, rewrite_subject


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handle = Callable[[Any, str, str, Any, Any], "tuple[int, Any]"]


def serve_admin(handle: Handle, state: Any, method: str, path: str, query: Any, raw: bytes,
                authorization: str, logger: logging.Logger) -> tuple[int, Any]:
    """(status, JSON data) for an ``/admin`` request: checks the bearer token, parses the body, maps errors."""
    token = authorization[7:].strip() if authorization[:7].lower() == "bearer " else ""
    if not hmac.compare_digest(token.encode(), state.admin_token.encode()):
        return 401, {"error": "admin bearer token required"}
    try:
        payload = json.loads(raw) if raw.strip() else None
    except ValueError:
        return 400, {"error": "body is not JSON"}
    try:
        status, data = handle(state, method, path, query, payload)
    except AdminError as exc:
        status, data = exc.status, {"error": exc.message}
    except Exception as exc:  # noqa: BLE001 - report, do not kill the connection
        logger.exception("admin %s %s failed", method, path)
        status, data = 500, {"error": f"{type(exc).__name__}: {exc}"}
    return status, data


class MailRoutes:
    """``POST /admin/messages|move|edit|read|delete|folders|mailboxes|mailboxes/delete``,
    ``PUT|GET /admin/faults``, ``GET|DELETE /admin/log``."""

    fault_rule: Any  # the server's FaultRule class (has ``from_json``)

    # -- what a server overrides ----------------------------------------------------------------
    def missing(self, value: Any) -> bool:
        """Whether a required body field counts as not given."""
        raise NotImplementedError

    def since(self, query: Any) -> int:
        """The ``since`` parameter of ``GET /admin/log``."""
        raise NotImplementedError

    def mail_store(self, state: Any) -> MailStore:
        return state.store

    def item_id(self, item: Item) -> str:
        return item.item_id

    def folder_id(self, folder: Folder) -> str:
        return folder.folder_id

    def move(self, state: Any, item: Item, target: Folder) -> Item:
        return self.mail_store(state).move_item(item, target)

    def edited(self, items: list[Item]) -> dict[str, Any]:
        return {"edited": len(items), "item_ids": [self.item_id(it) for it in items]}

    # -- lookups ----------------------------------------------------------------------------------
    def require(self, body: Any, *keys: str) -> dict:
        if not isinstance(body, dict):
            raise AdminError(400, "the request body must be a JSON object")
        missing = [k for k in keys if self.missing(body.get(k))]
        if missing:
            raise AdminError(400, f"missing fields: {', '.join(missing)}")
        return body

    def mailbox(self, state: Any, address: str) -> Mailbox:
        mbx = self.mail_store(state).get_mailbox(address)
        if mbx is None:
            raise AdminError(404, f"no mailbox {address}")
        return mbx

    def items(self, state: Any, body: dict) -> tuple[Mailbox, list]:
        mbx = self.mailbox(state, body["mailbox"])
        items = self.mail_store(state).find_by_message_id(mbx, body["message_id"])
        if not items:
            raise AdminError(404, f"no message {body['message_id']} in {mbx.address}")
        return mbx, items

    @staticmethod
    def folder(mbx: Mailbox, path: str, create: bool) -> Folder:
        try:
            return mbx.folder_by_path(path, create=create)
        except StoreError as exc:
            raise AdminError(404, exc.text) from exc

    # -- routes -----------------------------------------------------------------------------------
    def handle(self, state: Any, method: str, path: str, query: Any, body: Any) -> tuple[int, Any] | None:
        """(status, data) if this is one of the shared routes, else None."""
        store = self.mail_store(state)
        route = (method, path.rstrip("/") or "/admin")
        if route == ("POST", "/admin/messages"):
            b = self.require(body, "mailbox", "mime_base64")
            mbx = self.mailbox(state, b["mailbox"])
            try:
                raw = base64.b64decode(b["mime_base64"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise AdminError(400, "mime_base64 is not valid base64") from exc
            received = None
            if b.get("received"):
                received = datetime.fromisoformat(str(b["received"]).replace("Z", "+00:00"))
            with store.lock:
                folder = self.folder(mbx, b.get("folder") or "Inbox", create=True)
                item = loaders.add_raw(store, folder, raw, received=received, is_read=bool(b.get("is_read", False)))
            return 200, {"item_id": self.item_id(item), "message_id": item.meta.message_id,
                         "folder_id": self.folder_id(folder)}
        if route == ("POST", "/admin/move"):
            b = self.require(body, "mailbox", "message_id", "folder")
            with store.lock:
                mbx, items = self.items(state, b)
                target = self.folder(mbx, b["folder"], create=bool(b.get("create", False)))
                moved = [self.move(state, it, target) for it in items if it.folder is not target]
            return 200, {"moved": len(moved), "item_ids": [self.item_id(it) for it in moved]}
        if route == ("POST", "/admin/edit"):
            b = self.require(body, "mailbox", "message_id")
            if "subject" not in b and "body" not in b:
                raise AdminError(400, "give subject and/or body")
            with store.lock:
                _mbx, items = self.items(state, b)
                for it in items:
                    raw = it.raw
                    if "body" in b:
                        raw = rewrite_body(raw, str(b["body"]))
                    if "subject" in b:
                        raw = rewrite_subject(raw, str(b["subject"]))
                    store.update_item(it, raw)
            return 200, self.edited(items)
        if route == ("POST", "/admin/read"):
            b = self.require(body, "mailbox", "message_id")
            with store.lock:
                _mbx, items = self.items(state, b)
                for it in items:
                    store.set_read(it, bool(b.get("is_read", True)))
            return 200, {"updated": len(items)}
        if route == ("POST", "/admin/delete"):
            b = self.require(body, "mailbox", "message_id")
            with store.lock:
                _mbx, items = self.items(state, b)
                for it in items:
                    store.delete_item(it)
            return 200, {"deleted": len(items)}
        if route == ("POST", "/admin/folders"):
            b = self.require(body, "mailbox", "path")
            with store.lock:
                folder = self.folder(self.mailbox(state, b["mailbox"]), b["path"], create=True)
            return 200, {"folder_id": self.folder_id(folder), "path": folder.path}
        if route == ("PUT", "/admin/faults"):
            if not isinstance(body, list):
                raise AdminError(400, "the fault plan must be a JSON list")
            try:
                rules = [self.fault_rule.from_json(r) for r in body]
            except (ValueError, TypeError) as exc:
                raise AdminError(400, str(exc)) from exc
            state.faults.set(rules)
            return 200, state.faults.snapshot()
        if route == ("GET", "/admin/faults"):
            return 200, state.faults.snapshot()
        if route == ("GET", "/admin/log"):
            return 200, state.log_since(self.since(query))
        if route == ("DELETE", "/admin/log"):
            state.clear_log()
            return 200, {"cleared": True}
        if route == ("POST", "/admin/mailboxes"):
            b = self.require(body, "mailbox")
            return 200, {"mailbox": store.add_mailbox(b["mailbox"]).address}
        if route == ("POST", "/admin/mailboxes/delete"):
            b = self.require(body, "mailbox")
            if not store.remove_mailbox(b["mailbox"]):
                raise AdminError(404, f"no mailbox {b['mailbox']}")
            return 200, {"deleted": b["mailbox"]}
        return None
