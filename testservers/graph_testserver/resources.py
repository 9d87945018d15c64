"""Graph JSON representations of messages, folders and users (v1.0 property names).

Properties are computed only when ``$select`` asks for them (or all of them without ``$select``):
bodies need a full MIME parse, everything else comes from the cached header metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from testserver_core import mimeinfo
from testserver_core.mailstore import Folder, Item, Mailbox

from .store import GraphStore, iso

MESSAGE_PROPS = (
    "id", "changeKey", "createdDateTime", "lastModifiedDateTime", "receivedDateTime", "sentDateTime",
    "hasAttachments", "internetMessageId", "subject", "bodyPreview", "importance", "parentFolderId",
    "conversationId", "isRead", "isDraft", "from", "sender", "toRecipients", "ccRecipients", "bccRecipients",
    "replyTo", "body", "uniqueBody", "internetMessageHeaders", "webLink", "inferenceClassification", "categories",
    "flag", "isDeliveryReceiptRequested", "isReadReceiptRequested",
)
# What Graph returns without $select (bodies included, headers and uniqueBody not).
DEFAULT_MESSAGE_PROPS = tuple(p for p in MESSAGE_PROPS if p not in ("uniqueBody", "internetMessageHeaders"))
FOLDER_PROPS = ("id", "displayName", "parentFolderId", "childFolderCount", "unreadItemCount", "totalItemCount",
                "isHidden")


def parse_select(value: str | None, allowed: Iterable[str], default: Iterable[str]) -> list[str]:
    if not value:
        return list(default)
    allowed_set = set(allowed)
    wanted = [p.strip() for p in value.split(",") if p.strip()]
    bad = [p for p in wanted if p not in allowed_set]
    if bad:
        from .store import GraphStoreError

        raise GraphStoreError(400, "RequestBroker--ParseUri",
                              f"Could not find a property named '{bad[0]}' on type 'microsoft.graph.message'.")
    return ["id", *[p for p in wanted if p != "id"]]


def _recipient(addr: mimeinfo.Address) -> dict[str, Any]:
    return {"emailAddress": {"name": addr.name or addr.email, "address": addr.email}}


def change_key(item: Item) -> str:
    return hashlib.sha1(f"{item.num}:{item.version}:{item.last_seq}:{int(item.is_read)}".encode()).hexdigest()[:24]


def message_json(item: Item, select: Iterable[str]) -> dict[str, Any]:
    meta = item.meta
    out: dict[str, Any] = {}
    body = None
    for prop in select:
        if prop == "id":
            out["id"] = GraphStore.message_id(item)
        elif prop == "changeKey":
            out[prop] = change_key(item)
        elif prop in ("createdDateTime", "receivedDateTime"):
            out[prop] = iso(item.received)
        elif prop == "lastModifiedDateTime":
            out[prop] = iso(item.received)
        elif prop == "sentDateTime":
            out[prop] = iso(meta.sent) if meta.sent else None
        elif prop == "hasAttachments":
            out[prop] = meta.has_attachments
        elif prop == "internetMessageId":
            out[prop] = meta.message_id
        elif prop == "subject":
            out[prop] = meta.subject
        elif prop == "importance":
            out[prop] = "normal"
        elif prop == "inferenceClassification":
            out[prop] = "focused"
        elif prop == "parentFolderId":
            out[prop] = GraphStore.folder_id(item.folder)
        elif prop == "conversationId":
            # The EWS test server's ConversationId, so both servers give the same thread ids.
            out[prop] = mimeinfo.conversation_id(meta.message_id, meta.references, meta.in_reply_to, meta.subject)
        elif prop == "isRead":
            out[prop] = item.is_read
        elif prop == "isDraft":
            out[prop] = False
        elif prop in ("from", "sender"):
            addrs = meta.from_ if prop == "from" else meta.sender
            out[prop] = _recipient(addrs[0]) if addrs else None
        elif prop in ("toRecipients", "ccRecipients", "bccRecipients"):
            addrs = {"toRecipients": meta.to, "ccRecipients": meta.cc, "bccRecipients": meta.bcc}[prop]
            out[prop] = [_recipient(a) for a in addrs]
        elif prop in ("replyTo", "categories"):
            out[prop] = []
        elif prop == "flag":
            out[prop] = {"flagStatus": "notFlagged"}
        elif prop in ("isDeliveryReceiptRequested", "isReadReceiptRequested"):
            out[prop] = False
        elif prop in ("body", "uniqueBody", "bodyPreview"):
            body = body or mimeinfo.body_info(item.raw)
            if prop == "bodyPreview":
                text = body.text if body.text is not None else mimeinfo.html_to_text(body.html or "")
                out[prop] = " ".join(text.split())[:255]
            elif body.html is not None:
                out[prop] = {"contentType": "html", "content": body.html}
            else:
                out[prop] = {"contentType": "text", "content": body.text or ""}
        elif prop == "internetMessageHeaders":
            msg = mimeinfo.parse_headers(item.raw)
            out[prop] = [{"name": k, "value": str(v)} for k, v in msg.items()]
        elif prop == "webLink":
            out[prop] = f"https://outlook.office365.com/owa/?ItemID={GraphStore.message_id(item)}"
    return out


def folder_json(folder: Folder, mbx: Mailbox, select: Iterable[str] | None = None) -> dict[str, Any]:
    props = list(select) if select else list(FOLDER_PROPS)
    out: dict[str, Any] = {}
    for prop in props:
        if prop == "id":
            out["id"] = GraphStore.folder_id(folder)
        elif prop == "displayName":
            out[prop] = folder.name if folder is not mbx.msg_root else "Top of Information Store"
        elif prop == "parentFolderId":
            out[prop] = GraphStore.folder_id(folder.parent) if folder.parent is not None else None
        elif prop == "childFolderCount":
            out[prop] = sum(1 for c in folder.children if c.is_mail)
        elif prop == "unreadItemCount":
            out[prop] = folder.unread
        elif prop == "totalItemCount":
            out[prop] = len(folder.items)
        elif prop == "isHidden":
            out[prop] = False
    return out


def user_json(mbx: Mailbox) -> dict[str, Any]:
    uid = hashlib.sha1(mbx.address.lower().encode()).hexdigest()
    guid = f"{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}"
    return {"id": guid, "mail": mbx.address, "userPrincipalName": mbx.address,
            "displayName": mbx.address.split("@")[0]}
