"""The source's EWS services: exchangelib's service classes (transport, SOAP envelope, impersonation
header, version negotiation, fault parsing, retry loop) with our own small payloads and raw-XML results.

Why raw XML: we need five or six fields per item; exchangelib's item models parse ~100 and, without
``only_fields``, *request* them (MimeContent and bodies included). Building payloads here also keeps
the request set visibly read-only: GetFolder, FindFolder, SyncFolderItems, FindItem, GetItem (plus
exchangelib's own ConvertId version probe when no exchange_version is configured).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from exchangelib.services import FindFolder, FindItem, GetFolder, GetItem, SyncFolderItems
from exchangelib.services.common import EWSAccountService
from exchangelib.util import MNS, TNS, add_xml_child, create_element

from .fastparse import FastParseMixin

Element = Any  # lxml element


def t(tag: str) -> str:
    return f"{{{TNS}}}{tag}"


def m(tag: str) -> str:
    return f"{{{MNS}}}{tag}"


def shape(tag: str, field_uris: Sequence[str]) -> Element:
    elem = create_element(tag)
    add_xml_child(elem, "t:BaseShape", "IdOnly")
    if field_uris:
        props = create_element("t:AdditionalProperties")
        for uri in field_uris:
            props.append(create_element("t:FieldURI", attrs={"FieldURI": uri}))
        elem.append(props)
    return elem


def folder_id_elem(folder_id: str, change_key: str | None = None) -> Element:
    attrs = {"Id": folder_id}
    if change_key:
        attrs["ChangeKey"] = change_key
    return create_element("t:FolderId", attrs=attrs)


def distinguished_folder_elem(name: str, mailbox: str) -> Element:
    # The Mailbox child is what makes delegate access address the *other* mailbox.
    elem = create_element("t:DistinguishedFolderId", attrs={"Id": name})
    mb = create_element("t:Mailbox")
    add_xml_child(mb, "t:EmailAddress", mailbox)
    elem.append(mb)
    return elem


def ews_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ews_datetime(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:  # we send TimeZoneContext UTC, so naive values are UTC
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def child_text(elem: Element, tag: str) -> str | None:
    found = elem.find(tag)
    return None if found is None else found.text


@dataclass(frozen=True)
class Page:
    elements: list[Element]
    next_offset: int | None
    total: int


def _paged(service: Any, payload: Element, container_tag: str) -> Page:
    """One request of a paging service; raises the error of an error response message."""
    pages = list(service._get_elements(payload=payload))
    if len(pages) != 1:
        raise ValueError(f"expected one response message, got {len(pages)}")
    paging_elem, next_offset = pages[0]
    if isinstance(paging_elem, Exception):
        raise paging_elem
    if paging_elem is None:  # TotalItemsInView == 0
        return Page([], None, 0)
    total = int(paging_elem.get("TotalItemsInView") or 0)
    container = paging_elem.find(container_tag)
    return Page(list(container) if container is not None else [], next_offset, total)


class RawGetFolder(FastParseMixin, GetFolder):
    def get(self, folder_elems: Sequence[Element], field_uris: Sequence[str]) -> list[Element | Exception]:  # type: ignore[override]
        payload = create_element("m:GetFolder")
        payload.append(shape("m:FolderShape", field_uris))
        ids = create_element("m:FolderIds")
        for e in folder_elems:
            ids.append(e)
        payload.append(ids)
        # One response message per requested folder, in request order; ErrorFolderNotFound/ErrorAccessDenied
        # come back as exception instances (GetFolder.ERRORS_TO_CATCH_IN_RESPONSE), others are raised.
        return list(self._get_elements(payload=payload))


class RawFindFolder(FastParseMixin, FindFolder):
    def page(self, parent: Element, field_uris: Sequence[str], offset: int, page_size: int) -> Page:
        payload = create_element("m:FindFolder", attrs={"Traversal": "Deep"})
        payload.append(shape("m:FolderShape", field_uris))
        payload.append(
            create_element(
                "m:IndexedPageFolderView",
                attrs={"MaxEntriesReturned": page_size, "Offset": offset, "BasePoint": "Beginning"},
            )
        )
        parents = create_element("m:ParentFolderIds")
        parents.append(parent)
        payload.append(parents)
        return _paged(self, payload, t("Folders"))


class _ReceivedRange:
    """A Restriction on item:DateTimeReceived (>= start, < end), in the shape FindItem.get_payload expects."""

    def __init__(self, start: datetime | None, end: datetime | None) -> None:
        self.start, self.end = start, end

    @staticmethod
    def _cmp(op: str, value: datetime) -> Element:
        elem = create_element(f"t:{op}")
        elem.append(create_element("t:FieldURI", attrs={"FieldURI": "item:DateTimeReceived"}))
        const = create_element("t:FieldURIOrConstant")
        const.append(create_element("t:Constant", attrs={"Value": ews_datetime(value)}))
        elem.append(const)
        return elem

    def to_xml(self) -> Element | None:
        parts = []
        if self.start is not None:
            parts.append(self._cmp("IsGreaterThanOrEqualTo", self.start))
        if self.end is not None:
            parts.append(self._cmp("IsLessThan", self.end))
        if not parts:
            return None
        restriction = create_element("m:Restriction")
        if len(parts) == 1:
            restriction.append(parts[0])
        else:
            both = create_element("t:And")
            for p in parts:
                both.append(p)
            restriction.append(both)
        return restriction


class RawFindItem(FastParseMixin, FindItem):
    def page(
        self,
        folder: Element,
        field_uris: Sequence[str],
        start: datetime | None,
        end: datetime | None,
        offset: int,
        page_size: int,
    ) -> Page:
        payload = create_element("m:FindItem", attrs={"Traversal": "Shallow"})
        payload.append(shape("m:ItemShape", field_uris))
        payload.append(
            create_element(
                "m:IndexedPageItemView",
                attrs={"MaxEntriesReturned": page_size, "Offset": offset, "BasePoint": "Beginning"},
            )
        )
        restriction = _ReceivedRange(start, end).to_xml()
        if restriction is not None:
            payload.append(restriction)
        # Oldest first, so items arriving during a backfill land on later pages, not shift earlier ones.
        order = create_element("m:SortOrder")
        field_order = create_element("t:FieldOrder", attrs={"Order": "Ascending"})
        field_order.append(create_element("t:FieldURI", attrs={"FieldURI": "item:DateTimeReceived"}))
        order.append(field_order)
        payload.append(order)
        parents = create_element("m:ParentFolderIds")
        parents.append(folder)
        payload.append(parents)
        return _paged(self, payload, t("Items"))


class RawSyncFolderItems(FastParseMixin, SyncFolderItems):
    """One SyncFolderItems request; ``sync_state``/``includes_last_item_in_range`` are read from the response."""

    def _get_element_container(self, message: Element, name: str | None = None) -> Any:
        # exchangelib's SyncFolder version dereferences SyncState unconditionally, which turns an error
        # response without SyncState (e.g. ErrorInvalidSyncStateData) into an AttributeError.
        state = message.find(m("SyncState"))
        last = message.find(self.last_in_range_name)
        if state is not None:
            self.sync_state = state.text
        if last is not None and last.text is not None:
            self.includes_last_item_in_range = last.text.strip().lower() in ("true", "1")
        return EWSAccountService._get_element_container(self, message=message, name=name)

    def page(
        self, folder: Element, field_uris: Sequence[str], sync_state: str | None, max_changes: int
    ) -> tuple[list[Element], str, bool]:
        self.sync_state = None
        self.includes_last_item_in_range = None
        payload = create_element("m:SyncFolderItems")
        payload.append(shape("m:ItemShape", field_uris))
        sync_folder = create_element("m:SyncFolderId")
        sync_folder.append(folder)
        payload.append(sync_folder)
        if sync_state:
            add_xml_child(payload, "m:SyncState", sync_state)
        add_xml_child(payload, "m:MaxChangesReturned", max_changes)
        changes = []
        for elem in self._get_elements(payload=payload):
            if isinstance(elem, Exception):
                raise elem
            changes.append(elem)
        if self.sync_state is None or self.includes_last_item_in_range is None:
            raise ValueError("SyncFolderItems response without SyncState/IncludesLastItemInRange")
        return changes, self.sync_state, self.includes_last_item_in_range


class RawGetItem(FastParseMixin, GetItem):
    def get(self, item_ids: Iterable[str], field_uris: Sequence[str]) -> list[Element | Exception]:  # type: ignore[override]
        payload = create_element("m:GetItem")
        payload.append(shape("m:ItemShape", field_uris))
        ids = create_element("m:ItemIds")
        for item_id in item_ids:
            # No ChangeKey: we want the current version of the item, not ErrorStaleObject.
            ids.append(create_element("t:ItemId", attrs={"Id": item_id}))
        payload.append(ids)
        # One message per id in request order: an item element, or an exception instance for per-item
        # errors (ErrorItemNotFound, ErrorMimeContentConversionFailed, ErrorItemCorrupt, ...).
        return list(self._get_elements(payload=payload))
