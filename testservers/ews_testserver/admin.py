"""Control API under /admin (JSON in and out, bearer admin token checked by the server).

The mail and fault-plan routes are shared with the Graph test server (``common.admin.MailRoutes``);
the EWS-only ones (health, mailbox listing, accounts, grants, tokens) are here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from testserver_core.admin import AdminError, MailRoutes
from testserver_core.mailstore import Item

from . import notifications
from .faults import FaultRule

if TYPE_CHECKING:
    from .server import ServerState

__all__ = ["AdminError", "handle"]


class EwsRoutes(MailRoutes):
    fault_rule = FaultRule

    def missing(self, value: Any) -> bool:
        return not value and value != 0

    def since(self, query: dict[str, list[str]]) -> int:
        return int(query.get("since", ["0"])[0])

    def edited(self, items: list[Item]) -> dict[str, Any]:
        return {**super().edited(items), "change_keys": [it.change_key for it in items]}


ROUTES = EwsRoutes()
_require = ROUTES.require


def handle(state: ServerState, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    store = state.store
    route = (method, path.rstrip("/") or "/admin")
    if route == ("GET", "/admin") or route == ("GET", "/admin/health"):
        return 200, {"ok": True, "mailboxes": len(store.mailboxes), "in_flight": state.in_flight}
    shared = ROUTES.handle(state, method, path, query, body)
    if shared is not None:
        return shared
    if route == ("GET", "/admin/mailboxes"):
        with store.lock:
            return 200, [
                {"address": mbx.address, "folders": [
                    {"path": f.path, "folder_id": f.folder_id, "folder_class": f.folder_class,
                     "distinguished": f.distinguished, "count": len(f.items), "unread": f.unread}
                    for f in mbx.walk(mbx.msg_root)]}
                for mbx in store.mailboxes.values()
            ]
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
    if path == "/admin/notifications" or path.startswith("/admin/notifications/"):
        try:
            answer = notifications.admin(state.hub, method, path, body)
        except (ValueError, TypeError) as exc:
            raise AdminError(400, str(exc)) from exc
        if answer is not None:
            return answer
    if route == ("POST", "/admin/copy"):
        b = _require(body, "mailbox", "message_id", "folder")
        with store.lock:
            mbx, items = ROUTES.items(state, b)
            target = ROUTES.folder(mbx, b["folder"], create=bool(b.get("create", False)))
            copies = [store.copy_item(it, target) for it in items]
        return 200, {"copied": len(copies), "item_ids": [it.item_id for it in copies]}
    if route == ("POST", "/admin/tokens"):
        b = _require(body, "username")
        if state.accounts.find(b["username"]) is None:
            raise AdminError(404, f"no account {b['username']}")
        return 200, {"access_token": state.accounts.issue_token(b["username"]), "token_type": "Bearer"}
    raise AdminError(404, f"no route {method} {path}")
