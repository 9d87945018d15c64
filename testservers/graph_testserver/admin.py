"""Control API under /admin: the EWS test server's routes (same bodies), plus Graph-specific ones.

Mail and fault-plan routes are the ones the EWS test server answers too (``testserver_core.admin.MailRoutes``) with
Graph ids; a move keeps the message's immutable id (``GraphStore.move_keep_id``). Graph-only routes:
``POST /admin/tokens/expire`` (every issued access token answers 401 from now on), ``POST /admin/delta/expire``
(every delta/skip token answers 410), ``POST /admin/policy`` (application access policy), ``POST /admin/concurrency``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from testserver_core.admin import AdminError, MailRoutes
from testserver_core.mailstore import Folder, Item, MailStore

from .faults import FaultRule
from .store import GraphStore

if TYPE_CHECKING:
    from .server import ServerState

__all__ = ["AdminError", "handle"]


class GraphRoutes(MailRoutes):
    fault_rule = FaultRule

    def missing(self, value: Any) -> bool:
        return value in (None, "")

    def since(self, query: dict[str, str]) -> int:
        return int(query.get("since", "0"))

    def mail_store(self, state: ServerState) -> MailStore:
        return state.store.mail

    def item_id(self, item: Item) -> str:
        return GraphStore.message_id(item)

    def folder_id(self, folder: Folder) -> str:
        return GraphStore.folder_id(folder)

    def move(self, state: ServerState, item: Item, target: Folder) -> Item:
        return state.store.move_keep_id(item, target)


ROUTES = GraphRoutes()
_require = ROUTES.require


def handle(state: ServerState, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
    gstore = state.store
    store = gstore.mail
    route = (method, path.rstrip("/") or "/admin")
    if route in (("GET", "/admin"), ("GET", "/admin/health")):
        return 200, {"ok": True, "mailboxes": len(store.mailboxes), "in_flight": dict(state.in_flight),
                     "max_in_flight": dict(state.max_in_flight), "tokens_issued": state.auth.issued}
    shared = ROUTES.handle(state, method, path, query, body)
    if shared is not None:
        return shared
    if route == ("GET", "/admin/mailboxes"):
        with store.lock:
            return 200, [
                {"address": mbx.address, "folders": [
                    {"path": f.path, "folder_id": GraphStore.folder_id(f), "count": len(f.items), "unread": f.unread}
                    for f in gstore.mail_folders(mbx)]}
                for mbx in store.mailboxes.values()
            ]
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
