"""EWS operations: one function per operation, over the in-memory MailStore.

Each handler takes a ``Context`` and the parsed request and returns the ``m:<Op>Response``
element. Access errors follow what exchangelib expects from real Exchange:
- ExchangeImpersonation without the role -> SOAP fault ErrorImpersonateUserDenied (raised);
- impersonating an unknown address -> SOAP fault ErrorNonExistentMailbox (raised);
- delegate access to an unknown mailbox -> per-message ErrorNonExistentMailbox (raised);
- delegate access without a grant -> per-message ErrorAccessDenied (exchangelib returns it as an
  instance for GetFolder, then probes with FindItem, which raises it).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree

from testserver_core import ids as idfmt, mimeinfo
from testserver_core.mailstore import Folder, Item, Mailbox, MailStore, StoreError

from . import notifications
from .schema import PROFILES, Profile
from .soap import (
    Request, ResponseError, SoapFault, error_message, m, response_root, sub, sub_base64, success_message, t,
)

# Operations that change a mailbox. The sync client must never send them; they are logged as
# attempted (log entry "write": true). MoveItem is implemented (tests and demos use it); the
# others are refused with ErrorAccessDenied, which is what a read-only service account gets.
WRITE_OPERATIONS = frozenset({
    "CreateItem", "UpdateItem", "DeleteItem", "MoveItem", "CopyItem", "SendItem", "MarkAllItemsAsRead",
    "MarkAsJunk", "ArchiveItem", "CreateFolder", "CreateFolderPath", "UpdateFolder", "DeleteFolder",
    "EmptyFolder", "MoveFolder", "CopyFolder", "CreateAttachment", "DeleteAttachment", "UploadItems",
    "ApplyConversationAction", "SetUserOofSettings", "CreateUserConfiguration", "UpdateUserConfiguration",
    "DeleteUserConfiguration", "UpdateInboxRules", "AddDelegate", "RemoveDelegate", "UpdateDelegate",
})


@dataclass
class Principal:
    """The authenticated caller and its rights (filled by the auth layer)."""

    username: str
    impersonation: bool
    can_access: Callable[[str], bool]  # delegate rights by mailbox address
    own_address: str | None


@dataclass
class Context:
    store: MailStore
    principal: Principal
    request: Request
    anchor: str | None = None  # X-AnchorMailbox header
    profile: Profile = field(default_factory=lambda: PROFILES["Exchange2016"])  # the server's version
    mailboxes: set[str] = field(default_factory=set)  # mailboxes touched (for the operation log)
    items: int = 0  # items returned (for the operation log)
    response_codes: list[str] = field(default_factory=list)
    hub: notifications.NotificationHub | None = None  # subscriptions and events (notifications.py)
    headers: Any = None  # the HTTP request headers (affinity: X-PreferServerAffinity, X-BackEndOverrideCookie)
    set_cookies: list[str] = field(default_factory=list)  # Set-Cookie values for the response

    def check_impersonation(self) -> Mailbox | None:
        """Validate the ExchangeImpersonation header; return the impersonated mailbox."""
        imp = self.request.impersonate
        if imp is None:
            return None
        if not self.principal.impersonation:
            raise SoapFault("ErrorImpersonateUserDenied",
                            "The account does not have permission to impersonate the requested user.")
        mbx = self.store.get_mailbox(imp)
        if mbx is None:
            raise SoapFault("ErrorNonExistentMailbox", f"The SMTP address has no mailbox associated with it: {imp}")
        return mbx

    def mailbox(self, address: str | None) -> Mailbox:
        """Resolve and authorise access to a mailbox (None: the caller's own / impersonated one)."""
        imp = self.check_impersonation()
        if address is None:
            if imp is not None:
                address = imp.address
            else:
                address = self.principal.own_address or self.anchor
        if not address:
            raise ResponseError("ErrorNonExistentMailbox", "The caller has no mailbox.")
        mbx = self.store.get_mailbox(address)
        if mbx is None:
            raise ResponseError("ErrorNonExistentMailbox", f"The SMTP address has no mailbox associated with it: {address}")
        self.mailboxes.add(mbx.address)
        if imp is not None:
            if mbx is not imp:
                raise ResponseError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
            return mbx
        if not self.principal.can_access(mbx.address):
            raise ResponseError("ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        return mbx

    def mailbox_by_index(self, index: int | None) -> Mailbox:
        mbx = self.store.mailbox_by_index(index) if index is not None else None
        if mbx is None:
            raise ResponseError("ErrorItemNotFound", "The specified object was not found in the store.")
        return self.mailbox(mbx.address)


# ---------------------------------------------------------------------------------------------
# Request parsing helpers

def _resolve_folder(ctx: Context, el: etree._Element) -> Folder:
    tag = etree.QName(el).localname
    if tag == "DistinguishedFolderId":
        mbx_el = el.find(t("Mailbox"))
        address = None
        if mbx_el is not None:
            addr_el = mbx_el.find(t("EmailAddress"))
            address = addr_el.text.strip() if addr_el is not None and addr_el.text else None
        mbx = ctx.mailbox(address)
        folder = mbx.distinguished.get((el.get("Id") or "").lower())
        if folder is None:
            raise ResponseError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
        return folder
    if tag == "FolderId":
        fid = el.get("Id") or ""
        try:
            folder = ctx.store.decode_folder_id(fid)
        except StoreError as exc:
            raise ResponseError(exc.code, exc.text) from exc
        ctx.mailbox(folder.mailbox.address)
        return folder
    raise ResponseError("ErrorInvalidIdMalformed", f"Unsupported folder id element {tag}.")


def _field_uris(shape: etree._Element | None) -> tuple[str, set[str]]:
    if shape is None:
        return "Default", set()
    base_el = shape.find(t("BaseShape"))
    base = base_el.text.strip() if base_el is not None and base_el.text else "Default"
    uris: set[str] = set()
    add = shape.find(t("AdditionalProperties"))
    if add is not None:
        for el in add:
            if el.get("FieldURI"):
                uris.add(el.get("FieldURI"))
    return base, uris


def _int(el: etree._Element | None, default: int) -> int:
    try:
        return int(el.text.strip()) if el is not None and el.text else default
    except ValueError:
        return default


# ---------------------------------------------------------------------------------------------
# Folder rendering

# Folder types whose schema type has UnreadCount: t:Folder (FolderType) and t:TasksFolder (extends
# FolderType); CalendarFolderType and ContactsFolderType extend BaseFolderType, which has none.
_HAS_UNREAD = frozenset({"Folder", "TasksFolder", "SearchFolder"})


def _write_folder(parent: etree._Element, folder: Folder, prof: Profile | None = None) -> None:
    """A folder in the order of BaseFolderType's sequence. DistinguishedFolderId (a 2016 addition)
    only for Exchange 2016 and later; UnreadCount only where the folder's type has it."""
    el = sub(parent, folder.tag)
    sub(el, "FolderId", Id=folder.folder_id, ChangeKey=folder.change_key)
    if folder.parent is not None:
        sub(el, "ParentFolderId", Id=folder.parent.folder_id, ChangeKey=folder.parent.change_key)
    if folder.folder_class:
        sub(el, "FolderClass", folder.folder_class)
    sub(el, "DisplayName", folder.name)
    sub(el, "TotalCount", str(len(folder.items)))
    sub(el, "ChildFolderCount", str(len(folder.children)))
    if folder.distinguished and (prof is None or prof.rank >= 2):
        sub(el, "DistinguishedFolderId", folder.distinguished)
    if folder.tag in _HAS_UNREAD:
        sub(el, "UnreadCount", str(folder.unread))


def get_folder(ctx: Context) -> etree._Element:
    resp, msgs = response_root("GetFolder")
    ids = ctx.request.body.find(m("FolderIds"))
    for el in (ids if ids is not None else []):
        try:
            folder = _resolve_folder(ctx, el)
        except ResponseError as exc:
            error_message(msgs, "GetFolder", exc.code, exc.text)
            ctx.response_codes.append(exc.code)
            continue
        msg = success_message(msgs, "GetFolder")
        _write_folder(etree.SubElement(msg, m("Folders")), folder, ctx.profile)
    return resp


def _indexed_page(msgs: etree._Element, operation: str, container: str, entries: list, offset: int, limit: int,
                  from_end: bool) -> tuple[list, etree._Element]:
    """One IndexedPageView page of ``entries`` and the element to write it into: the RootFolder
    carries IndexedPagingOffset / TotalItemsInView / IncludesLastItemInRange, which exchangelib
    needs to page (it sends the returned offset back until the last item is in range)."""
    total = len(entries)
    start = max(0, total - offset - limit) if from_end else offset
    page = entries[start:start + limit]
    end = start + len(page)
    root = etree.SubElement(success_message(msgs, operation), m("RootFolder"), IndexedPagingOffset=str(end),
                            TotalItemsInView=str(total), IncludesLastItemInRange="true" if end >= total else "false")
    return page, sub(root, container)


def find_folder(ctx: Context) -> etree._Element:
    resp, msgs = response_root("FindFolder")
    body = ctx.request.body
    deep = (body.get("Traversal") or "Shallow") == "Deep"
    view = body.find(m("IndexedPageFolderView"))
    limit = int(view.get("MaxEntriesReturned", "1000")) if view is not None else 10**9
    offset = int(view.get("Offset", "0")) if view is not None else 0
    from_end = view is not None and view.get("BasePoint") == "End"
    parents = body.find(m("ParentFolderIds"))
    for el in (parents if parents is not None else []):
        try:
            parent = _resolve_folder(ctx, el)
        except ResponseError as exc:
            error_message(msgs, "FindFolder", exc.code, exc.text)
            continue
        with ctx.store.lock:
            folders = list(parent.mailbox.walk(parent)) if deep else list(parent.children)
        page, container = _indexed_page(msgs, "FindFolder", "Folders", folders, offset, limit, from_end)
        for f in page:
            _write_folder(container, f, ctx.profile)
    return resp


def _hierarchy_state(mbx: Mailbox, seq: int) -> str:
    return base64.b64encode(f"H:{mbx.index}:{seq}".encode()).decode()


def sync_folder_hierarchy(ctx: Context) -> etree._Element:
    resp, msgs = response_root("SyncFolderHierarchy")
    body = ctx.request.body
    fid = body.find(m("SyncFolderId"))
    try:
        root = _resolve_folder(ctx, fid[0]) if fid is not None and len(fid) else ctx.mailbox(None).root
        mbx = root.mailbox
        state_el = body.find(m("SyncState"))
        since = 0
        if state_el is not None and state_el.text and state_el.text.strip():
            try:
                tag, idx, seq = base64.b64decode(state_el.text.strip(), validate=True).decode().split(":")
                if tag != "H" or int(idx) != mbx.index or not 0 <= int(seq) <= mbx.seq:
                    raise ValueError
                since = int(seq)
            except ValueError as exc:
                raise ResponseError("ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid.") from exc
    except ResponseError as exc:
        _sync_error(msgs, "SyncFolderHierarchy", exc, "IncludesLastFolderInRange")
        return resp
    with ctx.store.lock:
        new = [f for f in mbx.walk(root) if f.created_hseq > since]
        seq = mbx.seq
    msg = success_message(msgs, "SyncFolderHierarchy")
    etree.SubElement(msg, m("SyncState")).text = _hierarchy_state(mbx, seq)
    etree.SubElement(msg, m("IncludesLastFolderInRange")).text = "true"
    changes = etree.SubElement(msg, m("Changes"))
    for f in new:
        _write_folder(sub(changes, "Create"), f, ctx.profile)
    return resp


# ---------------------------------------------------------------------------------------------
# Item rendering

DEFAULT_FIELDS = frozenset({
    "item:Subject", "item:DateTimeReceived", "item:DateTimeSent", "item:Size", "item:ItemClass",
    "item:HasAttachments", "message:IsRead", "item:ParentFolderId", "item:ConversationId",
    "message:InternetMessageId", "message:From", "message:Sender", "message:ToRecipients", "message:CcRecipients",
})
ALL_FIELDS = DEFAULT_FIELDS | {"item:Body", "item:Attachments", "item:InternetMessageHeaders", "item:DateTimeCreated"}


def _write_mailbox(parent: etree._Element, addr: mimeinfo.Address) -> None:
    mb = sub(parent, "Mailbox")
    sub(mb, "Name", addr.name)
    sub(mb, "EmailAddress", addr.email)
    sub(mb, "RoutingType", "SMTP")
    sub(mb, "MailboxType", "OneOff")


def attachment_id(item: Item, index: int) -> str:
    return idfmt.attachment_id(item.folder.mailbox.index, item.num, item.version, index)


def write_item(parent: etree._Element, item: Item, base: str, uris: set[str], prof: Profile | None = None) -> None:
    """Write t:Message with the requested properties, in the order of the schema's ItemType and
    MessageType sequences. Expensive ones (MIME, bodies, attachments, headers) are only computed
    when asked for. Properties the profile's version does not have (TextBody before 2013) are left out."""
    if base == "AllProperties":
        uris = uris | ALL_FIELDS
    elif base == "Default":
        uris = uris | DEFAULT_FIELDS
    el = sub(parent, "Message")
    u = uris.__contains__
    if u("item:MimeContent"):
        sub_base64(el, "MimeContent", item.raw, CharacterSet="UTF-8")
    sub(el, "ItemId", Id=item.item_id, ChangeKey=item.change_key)
    if len(uris) <= 1 and (not uris or u("item:MimeContent")):
        return
    meta = item.meta
    if u("item:ParentFolderId"):
        sub(el, "ParentFolderId", Id=item.folder.folder_id, ChangeKey=item.folder.change_key)
    if u("item:ItemClass"):
        sub(el, "ItemClass", "IPM.Note")
    if u("item:Subject"):
        sub(el, "Subject", meta.subject)
    need_body = u("item:Body") or u("item:TextBody") or u("item:Attachments") or u("item:UniqueBody")
    info = mimeinfo.body_info(item.raw) if need_body else None
    if info is not None and u("item:Body"):
        if info.html is not None:
            sub(el, "Body", info.html, BodyType="HTML")
        else:
            sub(el, "Body", info.text or "", BodyType="Text")
    if info is not None and u("item:Attachments") and info.attachments:
        atts = sub(el, "Attachments")
        for i, att in enumerate(info.attachments):
            a = sub(atts, "ItemAttachment" if att.is_item else "FileAttachment")
            sub(a, "AttachmentId", Id=attachment_id(item, i))
            sub(a, "Name", att.name)
            sub(a, "ContentType", att.content_type)
            if att.content_id:
                sub(a, "ContentId", att.content_id)
            sub(a, "Size", str(att.size))
            sub(a, "LastModifiedTime", mimeinfo.fmt_dt(item.received))
            sub(a, "IsInline", "true" if att.is_inline else "false")
    if u("item:DateTimeReceived"):
        sub(el, "DateTimeReceived", mimeinfo.fmt_dt(item.received))
    if u("item:Size"):
        sub(el, "Size", str(meta.size if meta.size is not None else len(item.raw)))
    if u("item:InReplyTo") and meta.in_reply_to:
        sub(el, "InReplyTo", mimeinfo.xml_safe(meta.in_reply_to.strip()))
    if u("item:InternetMessageHeaders"):
        hdrs = sub(el, "InternetMessageHeaders")
        try:
            pairs = mimeinfo.parse_headers(item.raw).items()
        except Exception:  # noqa: BLE001
            pairs = []
        for name, value in pairs:
            sub(hdrs, "InternetMessageHeader", mimeinfo.xml_safe(str(value)), HeaderName=mimeinfo.xml_safe(name))
    if u("item:DateTimeSent"):
        sub(el, "DateTimeSent", mimeinfo.fmt_dt(meta.sent or item.received))
    if u("item:DateTimeCreated"):
        sub(el, "DateTimeCreated", mimeinfo.fmt_dt(item.received))
    if u("item:DisplayCc"):
        sub(el, "DisplayCc", "; ".join(a.name for a in meta.cc))
    if u("item:DisplayTo"):
        sub(el, "DisplayTo", "; ".join(a.name for a in meta.to))
    if u("item:HasAttachments"):
        has = bool(info.attachments) if info is not None else meta.has_attachments
        sub(el, "HasAttachments", "true" if has else "false")
    if u("item:LastModifiedTime"):
        sub(el, "LastModifiedTime", mimeinfo.fmt_dt(item.received))
    if u("item:ConversationId"):
        sub(el, "ConversationId", Id=mimeinfo.conversation_id(meta.message_id, meta.references, meta.in_reply_to, meta.subject))
    if info is not None and u("item:TextBody") and (prof is None or prof.rank >= 1):
        text = info.text if info.text is not None else mimeinfo.html_to_text(info.html or "")
        sub(el, "TextBody", text, BodyType="Text")
    # MessageType's own sequence
    if u("message:Sender") and meta.sender:
        _write_mailbox(sub(el, "Sender"), meta.sender[0])
    for uri, tag, addrs in (("message:ToRecipients", "ToRecipients", meta.to),
                            ("message:CcRecipients", "CcRecipients", meta.cc),
                            ("message:BccRecipients", "BccRecipients", meta.bcc)):
        if u(uri) and addrs:
            box = sub(el, tag)
            for a in addrs:
                _write_mailbox(box, a)
    if u("message:ConversationTopic"):
        sub(el, "ConversationTopic", meta.subject)
    if u("message:From") and meta.from_:
        _write_mailbox(sub(el, "From"), meta.from_[0])
    if u("message:InternetMessageId") and meta.message_id:
        sub(el, "InternetMessageId", meta.message_id)
    if u("message:IsRead"):
        sub(el, "IsRead", "true" if item.is_read else "false")
    if u("message:References") and meta.references:
        sub(el, "References", mimeinfo.xml_safe(" ".join(meta.references.split())))


def _lookup_item(ctx: Context, item_id: str) -> Item:
    try:
        mbx_hint, num = ctx.store.decode_item_id(item_id)
    except StoreError as exc:
        raise ResponseError(exc.code, exc.text) from exc
    if mbx_hint is None:
        raise ResponseError("ErrorItemNotFound", "The specified object was not found in the store.")
    mbx = ctx.mailbox(mbx_hint.address)
    item = mbx.items.get(num)
    if item is None:
        raise ResponseError("ErrorItemNotFound", "The specified object was not found in the store.")
    return item


def get_item(ctx: Context) -> etree._Element:
    resp, msgs = response_root("GetItem")
    body = ctx.request.body
    base, uris = _field_uris(body.find(m("ItemShape")))
    ids = body.find(m("ItemIds"))
    for el in (ids if ids is not None else []):
        try:
            with ctx.store.lock:
                item = _lookup_item(ctx, el.get("Id") or "")
        except ResponseError as exc:
            error_message(msgs, "GetItem", exc.code, exc.text)
            ctx.response_codes.append(exc.code)
            continue
        msg = success_message(msgs, "GetItem")
        write_item(etree.SubElement(msg, m("Items")), item, base, uris, ctx.profile)
        ctx.items += 1
    return resp


def sync_folder_items(ctx: Context) -> etree._Element:
    resp, msgs = response_root("SyncFolderItems")
    body = ctx.request.body
    base, uris = _field_uris(body.find(m("ItemShape")))
    try:
        fid = body.find(m("SyncFolderId"))
        if fid is None or not len(fid):
            raise ResponseError("ErrorInvalidRequest", "SyncFolderId is required.")
        folder = _resolve_folder(ctx, fid[0])
        # MaxChangesReturned is required and 1..512 (t:MaxSyncChangesReturnedType): the schema
        # validation rejects anything else before the operation runs, as Exchange does.
        limit = _int(body.find(m("MaxChangesReturned")), 512)
        state_el = body.find(m("SyncState"))
        ignore_el = body.find(m("Ignore"))
        ignore = {el.get("Id") for el in (ignore_el if ignore_el is not None else [])}
        with ctx.store.lock:
            since, cursor = folder.mailbox.seq, None
            initial = state_el is None or not (state_el.text or "").strip()
            if not initial:
                try:
                    since, cursor = folder.parse_any_sync_state(state_el.text or "")
                except StoreError as exc:
                    raise ResponseError(exc.code, exc.text) from exc
                initial = cursor is not None
            entries: list[tuple[str, Item | int, bool]] = []
            if initial:
                # The first sync lists the folder's contents newest first (DateTimeReceived
                # descending), as Exchange 2010 SP2 and later do; what changes meanwhile follows
                # as ordinary changes since the snapshot.
                page, cursor = folder.initial_page(since, cursor, limit)
                entries = [("create", it, it.is_read) for it in page]
                if cursor is not None:
                    new_state, last = folder.initial_sync_state(since, cursor), False
                else:
                    more, new_seq, last = folder.changes_since(since, limit - len(entries))
                    entries += more
                    new_state = folder.sync_state(new_seq)
            else:
                entries, new_seq, last = folder.changes_since(since, limit)
                new_state = folder.sync_state(new_seq)
            msg = success_message(msgs, "SyncFolderItems")
            etree.SubElement(msg, m("SyncState")).text = new_state
            etree.SubElement(msg, m("IncludesLastItemInRange")).text = "true" if last else "false"
            container = etree.SubElement(msg, m("Changes"))
            for kind, obj, is_read in entries:
                if kind in ("create", "update"):
                    assert isinstance(obj, Item)
                    if obj.item_id in ignore:
                        continue
                    write_item(sub(container, "Create" if kind == "create" else "Update"), obj, base, uris, ctx.profile)
                elif kind == "delete":
                    assert isinstance(obj, int)
                    d = sub(container, "Delete")
                    sub(d, "ItemId", Id=idfmt.item_id(folder.mailbox.index, obj))
                else:
                    assert isinstance(obj, Item)
                    r = sub(container, "ReadFlagChange")
                    sub(r, "ItemId", Id=obj.item_id, ChangeKey=obj.change_key)
                    sub(r, "IsRead", "true" if is_read else "false")
                ctx.items += 1
    except ResponseError as exc:
        _sync_error(msgs, "SyncFolderItems", exc, "IncludesLastItemInRange")
        ctx.response_codes.append(exc.code)
    return resp


def _sync_error(msgs: etree._Element, op: str, exc: ResponseError, last_name: str) -> None:
    """Sync error messages carry an empty SyncState and IncludesLast...=true, as Exchange sends them:
    exchangelib reads both before it looks at the ResponseCode."""
    msg = error_message(msgs, op, exc.code, exc.text)
    etree.SubElement(msg, m("SyncState"))
    etree.SubElement(msg, m(last_name)).text = "true"


# ---------------------------------------------------------------------------------------------
# FindItem: restrictions and sort order over the in-memory folder

def _item_value(item: Item, uri: str) -> object:
    if uri == "item:DateTimeReceived":
        return item.received
    if uri == "item:DateTimeSent":
        return item.meta.sent or item.received
    if uri == "item:DateTimeCreated":
        return item.received
    if uri in ("item:Subject", "message:ConversationTopic"):
        return item.meta.subject
    if uri == "item:Size":
        return item.meta.size if item.meta.size is not None else len(item.raw)
    if uri == "message:IsRead":
        return item.is_read
    if uri == "message:InternetMessageId":
        return item.meta.message_id or ""
    if uri == "item:HasAttachments":
        return item.meta.has_attachments
    if uri == "item:ItemClass":
        return "IPM.Note"
    raise ResponseError("ErrorUnsupportedPathForQuery", f"The test server cannot restrict or sort on {uri}.")


def _constant(value: str, like: object) -> object:
    if isinstance(like, datetime):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ResponseError("ErrorInvalidValueForProperty", f"Bad date value {value!r}.") from exc
    if isinstance(like, bool):
        return value.lower() == "true"
    if isinstance(like, int):
        return int(value)
    return value


_COMPARE = {
    "IsGreaterThan": lambda a, b: a > b,
    "IsGreaterThanOrEqualTo": lambda a, b: a >= b,
    "IsLessThan": lambda a, b: a < b,
    "IsLessThanOrEqualTo": lambda a, b: a <= b,
    "IsEqualTo": lambda a, b: a == b,
    "IsNotEqualTo": lambda a, b: a != b,
}


def _compile(el: etree._Element) -> Callable[[Item], bool]:
    tag = etree.QName(el).localname
    if tag in ("And", "Or"):
        subs = [_compile(c) for c in el]
        return (lambda it: all(f(it) for f in subs)) if tag == "And" else (lambda it: any(f(it) for f in subs))
    if tag == "Not":
        inner = _compile(el[0])
        return lambda it: not inner(it)
    if tag in _COMPARE:
        uri_el = el.find(t("FieldURI"))
        const_el = el.find(f"{t('FieldURIOrConstant')}/{t('Constant')}")
        if uri_el is None or const_el is None:
            raise ResponseError("ErrorUnsupportedQueryFilter", "Only FieldURI-to-Constant comparisons are supported.")
        uri = uri_el.get("FieldURI")
        op = _COMPARE[tag]
        raw_const = const_el.get("Value") or ""
        cache: dict[str, object] = {}

        def compare(it: Item) -> bool:
            value = _item_value(it, uri)
            if "c" not in cache:
                cache["c"] = _constant(raw_const, value)
            return bool(op(value, cache["c"]))
        return compare
    if tag == "Exists":
        uri = el.find(t("FieldURI")).get("FieldURI")
        return lambda it: bool(_item_value(it, uri))
    if tag == "Contains":
        uri = el.find(t("FieldURI")).get("FieldURI")
        needle = (el.find(t("Constant")).get("Value") or "").lower()
        return lambda it: needle in str(_item_value(it, uri)).lower()
    raise ResponseError("ErrorUnsupportedQueryFilter", f"The test server does not support the {tag} restriction.")


def find_item(ctx: Context) -> etree._Element:
    resp, msgs = response_root("FindItem")
    body = ctx.request.body
    base, uris = _field_uris(body.find(m("ItemShape")))
    view = body.find(m("IndexedPageItemView"))
    limit = int(view.get("MaxEntriesReturned", "1000")) if view is not None else 10**9
    offset = int(view.get("Offset", "0")) if view is not None else 0
    from_end = view is not None and view.get("BasePoint") == "End"
    parents = body.find(m("ParentFolderIds"))
    for el in (parents if parents is not None else []):
        try:
            if (body.get("Traversal") or "Shallow") != "Shallow":
                raise ResponseError("ErrorInvalidOperation", "Only Shallow traversal is supported for FindItem.")
            folder = _resolve_folder(ctx, el)
            restriction = body.find(m("Restriction"))
            pred = _compile(restriction[0]) if restriction is not None and len(restriction) else None
            with ctx.store.lock:
                items = folder.sorted_items()
                if pred is not None:
                    items = [it for it in items if pred(it)]
                sort = body.find(m("SortOrder"))
                orders = list(sort) if sort is not None else []
                if orders:
                    # Stable multi-key sort: apply the least significant key first.
                    items = list(items)
                    for fo in reversed(orders):
                        uri = fo.find(t("FieldURI")).get("FieldURI")
                        items.sort(key=lambda it, u=uri: _item_value(it, u), reverse=fo.get("Order") == "Descending")
                else:
                    items = list(reversed(items))  # Exchange lists newest first by default
                page, container = _indexed_page(msgs, "FindItem", "Items", items, offset, limit, from_end)
                for it in page:
                    write_item(container, it, base, uris, ctx.profile)
                ctx.items += len(page)
        except ResponseError as exc:
            error_message(msgs, "FindItem", exc.code, exc.text)
            ctx.response_codes.append(exc.code)
    return resp


# ---------------------------------------------------------------------------------------------
# Other operations

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def convert_id(ctx: Context) -> etree._Element:
    """Only identity conversions of ids this server issued; anything else is malformed (as the
    version probe's DUMMY id is on real Exchange)."""
    resp, msgs = response_root("ConvertId")
    dest = ctx.request.body.get("DestinationFormat")
    src = ctx.request.body.find(m("SourceIds"))
    for el in (src if src is not None else []):
        known = ctx.store.mailbox_index_of_id(el.get("Id") or "") is not None
        if known and el.get("Format") == dest:
            msg = success_message(msgs, "ConvertId")
            # m:AlternateId is of the abstract t:AlternateIdBaseType: Exchange sends it with
            # xsi:type="t:AlternateIdType" and Format/Id/Mailbox as attributes.
            etree.SubElement(msg, m("AlternateId"), {XSI_TYPE: "t:AlternateIdType", "Format": dest or "EwsId",
                                                     "Id": el.get("Id") or "", "Mailbox": el.get("Mailbox", "")})
        else:
            error_message(msgs, "ConvertId", "ErrorInvalidIdMalformed", "Id is malformed.")
    return resp


def resolve_names(ctx: Context) -> etree._Element:
    resp, msgs = response_root("ResolveNames")
    entry = ctx.request.body.find(m("UnresolvedEntry"))
    needle = (entry.text or "").strip().lower() if entry is not None else ""
    needle = needle[5:] if needle.startswith("smtp:") else needle
    with ctx.store.lock:
        hits = [mb for key, mb in ctx.store.mailboxes.items() if needle and (key == needle or key.startswith(needle))]
    if not hits:
        error_message(msgs, "ResolveNames", "ErrorNameResolutionNoResults", "No results were found.")
        return resp
    msg = success_message(msgs, "ResolveNames")
    rs = etree.SubElement(msg, m("ResolutionSet"), TotalItemsInView=str(len(hits)), IncludesLastItemInRange="true")
    for mb in hits:
        box = sub(sub(rs, "Resolution"), "Mailbox")
        sub(box, "Name", mb.address)
        sub(box, "EmailAddress", mb.address)
        sub(box, "RoutingType", "SMTP")
        sub(box, "MailboxType", "Mailbox")
    return resp


def get_attachment(ctx: Context) -> etree._Element:
    resp, msgs = response_root("GetAttachment")
    ids = ctx.request.body.find(m("AttachmentIds"))
    for el in (ids if ids is not None else []):
        try:
            try:
                kind, mbx_i, num, extra = idfmt.decode(el.get("Id") or "")
                if kind != "attachment" or extra is None:
                    raise ValueError(kind)
                version, idx = extra
            except ValueError as exc:
                raise ResponseError("ErrorInvalidIdMalformed", "Id is malformed.") from exc
            mbx = ctx.mailbox_by_index(mbx_i)
            item = mbx.items.get(num)
            if item is None or item.version != version:
                raise ResponseError("ErrorItemNotFound", "The specified object was not found in the store.")
            atts = mimeinfo.body_info(item.raw).attachments
            if int(idx) >= len(atts):
                raise ResponseError("ErrorItemNotFound", "The specified object was not found in the store.")
            att = atts[int(idx)]
        except ResponseError as exc:
            error_message(msgs, "GetAttachment", exc.code, exc.text)
            continue
        msg = success_message(msgs, "GetAttachment")
        container = etree.SubElement(msg, m("Attachments"))
        a = sub(container, "FileAttachment")
        sub(a, "AttachmentId", Id=el.get("Id"))
        sub(a, "Name", att.name)
        sub(a, "ContentType", att.content_type)
        sub(a, "Size", str(att.size))
        sub(a, "IsInline", "true" if att.is_inline else "false")
        sub_base64(a, "Content", att.content)
    return resp


def move_item(ctx: Context) -> etree._Element:
    resp, msgs = response_root("MoveItem")
    body = ctx.request.body
    to = body.find(m("ToFolderId"))
    ids = body.find(m("ItemIds"))
    try:
        target = _resolve_folder(ctx, to[0])
    except (ResponseError, TypeError, IndexError) as exc:
        for _el in (ids if ids is not None else []):
            code = exc.code if isinstance(exc, ResponseError) else "ErrorFolderNotFound"
            error_message(msgs, "MoveItem", code, str(exc))
        return resp
    for el in (ids if ids is not None else []):
        try:
            with ctx.store.lock:
                item = _lookup_item(ctx, el.get("Id") or "")
                if item.folder.mailbox is not target.mailbox:
                    raise ResponseError("ErrorInvalidOperation", "Cross-mailbox moves are not supported.")
                new = ctx.store.move_item(item, target)
        except ResponseError as exc:
            error_message(msgs, "MoveItem", exc.code, exc.text)
            continue
        msg = success_message(msgs, "MoveItem")
        write_item(etree.SubElement(msg, m("Items")), new, "IdOnly", set(), ctx.profile)
        ctx.items += 1
    return resp


HANDLERS: dict[str, Callable[[Context], etree._Element]] = {
    "GetFolder": get_folder,
    "FindFolder": find_folder,
    "SyncFolderHierarchy": sync_folder_hierarchy,
    "SyncFolderItems": sync_folder_items,
    "FindItem": find_item,
    "GetItem": get_item,
    "ConvertId": convert_id,
    "ResolveNames": resolve_names,
    "GetAttachment": get_attachment,
    "MoveItem": move_item,
    **notifications.HANDLERS,  # Subscribe, Unsubscribe, GetEvents (GetStreamingEvents: streaming.py)
}


def dispatch(ctx: Context) -> etree._Element:
    op = ctx.request.operation
    handler = HANDLERS.get(op)
    if handler is None:
        if op in WRITE_OPERATIONS:
            raise SoapFault("ErrorAccessDenied", f"{op} is refused: the EWS test server grants read-only access.")
        raise SoapFault("ErrorInvalidOperation", f"The EWS test server does not implement the {op} operation.")
    return handler(ctx)
