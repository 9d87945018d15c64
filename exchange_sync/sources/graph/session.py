"""One mailbox over Graph, with the same interface as the EWS ``MailboxSession``.

Sync state encoding (``SyncPage.sync_state``): ``graph2:<round>:<folder id>:<link>``.

- ``<link>`` is Graph's ``@odata.nextLink`` (more pages of this round) or ``@odata.deltaLink`` (round
  complete), exactly as Graph sent it. Microsoft documents these links as opaque state (``https://graph.
  microsoft.com/v1.0/users('...')/mailFolders('...')/messages/delta?$deltatoken=...``): they are stored and
  replayed byte for byte, never parsed, rebuilt or made relative.
- ``<folder id>`` (percent-encoded, so it holds no ``:``) says which folder the state belongs to without
  looking into the link; a state of another folder raises ``InvalidSyncState``.
- ``<round>`` is ``i`` for the first enumeration of a folder, ``d`` for rounds resumed from a deltaLink
  (Graph does not say create vs update; we stage ``create`` for the first round, ``update`` afterwards).

``graph1:<round>:<link>`` states (the previous format: the link relative to ``connection.graph_url`` when
it started with it) are still read, so existing deployments do not resync; the folder is recognised in
their link's path (``/mailFolders/<id>/`` or ``/mailFolders('<id>')/``), and the next page writes graph2.
A state that is neither (e.g. an EWS SyncState after switching ``kind``) raises ``InvalidSyncState``:
the pipeline resyncs the folder from scratch, idempotently.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pyarrow as pa
import requests

from ..errors import InvalidSyncState, ServerUnavailable
from ..folders import WELL_KNOWN, RawFolder, build_folder_infos, select_mail_folders
from ..models import STAGED_SCHEMA, FetchResult, FolderInfo, ItemRef, Participants, SyncPage

from .http import MAX_BATCH, GraphHttp, error_of, map_status

STATE_PREFIX = "graph2:"
LEGACY_PREFIX = "graph1:"
_ROUNDS = ("i", "d")
# What the pipeline needs from the delta/list pages: the MIME comes separately ($value).
MESSAGE_SELECT = "receivedDateTime,internetMessageId,conversationId,changeKey,parentFolderId"
# Added to the delta/list $select only for a mailbox with a participant filter (no cost otherwise).
PARTICIPANT_SELECT = "from,sender,toRecipients,ccRecipients"
_PARTICIPANT_PROPS = ("from", "sender", "toRecipients", "ccRecipients")
IMMUTABLE = 'IdType="ImmutableId"'
MAX_PAGE = 1000


def prefer(page_size: int | None = None) -> dict[str, str]:
    value = IMMUTABLE if page_size is None else f"{IMMUTABLE}, odata.maxpagesize={page_size}"
    return {"Prefer": value}


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


class GraphMailboxSession:
    def __init__(self, http: GraphHttp, email: str, fetch_chunk_size: int = MAX_BATCH, *,
                 select_participants: bool = False) -> None:
        self.http = http
        self.email = email
        self.fetch_chunk_size = max(1, min(MAX_BATCH, fetch_chunk_size))
        self._user = f"/users/{quote(email, safe='@')}"
        # A mailbox with a participant filter: delta rounds started from now on and backfill lists $select
        # the participants, so the filter needs no request of its own.
        self.select_participants = select_participants

    def _message_select(self) -> str:
        return f"{MESSAGE_SELECT},{PARTICIPANT_SELECT}" if self.select_participants else MESSAGE_SELECT

    # -- folders -----------------------------------------------------------------------------
    def all_folders(self) -> list[FolderInfo]:
        """Every folder of Graph's mailFolders hierarchy under the message folder root: one $batch for the
        well-known folder ids (msgfolderroot + 12), then mailFolders/delta pages (usually one)."""
        names = ["msgfolderroot", *WELL_KNOWN]
        subs = [{"id": str(i), "method": "GET", "url": f"{self._user}/mailFolders/{name}?$select=id",
                 "headers": prefer()} for i, name in enumerate(names)]
        answers = self.http.batch(subs, mailbox=self.email, operation="mailFolders.get")
        root = answers.get("0")
        if root is None or root.get("status") != 200:
            status = int(root.get("status", 0)) if root else 0
            raise map_status(status, *error_of(status, root.get("body") if root else None), mailbox=self.email,
                             operation="mailFolders.get")
        root_id = root["body"]["id"]
        distinguished = {names[int(sid)]: sub["body"]["id"] for sid, sub in answers.items()
                         if sub.get("status") == 200 and sid != "0"}
        raw: list[RawFolder] = []
        url: str | None = f"{self._user}/mailFolders/delta"
        params: dict[str, str] | None = {"$select": "displayName,parentFolderId,totalItemCount"}
        while url:
            data = self.http.get_json(url, params=params, headers=prefer(), mailbox=self.email,
                                      operation="mailFolders.delta")
            for f in data.get("value", []):
                if "@removed" in f:
                    continue
                raw.append(RawFolder(folder_id=f["id"], change_key=None, parent_id=f.get("parentFolderId"),
                                     display_name=f.get("displayName") or "", folder_class="IPF.Note",
                                     is_search_folder=False, total_count=f.get("totalItemCount")))
            url, params = data.get("@odata.nextLink"), None
        return build_folder_infos(root_id, raw, distinguished)

    def mail_folders(self, allowlist: Sequence[str] | None = None, denylist: Sequence[str] = ()) -> list[FolderInfo]:
        """Graph's mailFolders are mail folders; default skips (Drafts, Outbox, ...) and allow/deny lists as EWS."""
        return select_mail_folders(self.all_folders(), allowlist, list(denylist))

    # -- delta -------------------------------------------------------------------------------
    def _folder_path(self, folder: FolderInfo) -> str:
        return f"{self._user}/mailFolders/{quote(folder.folder_id, safe='')}"

    @staticmethod
    def encode_state(round_: str, folder_id: str, link: str) -> str:
        """``graph2:<round>:<folder id>:<link>``, the link untouched."""
        return f"{STATE_PREFIX}{round_}:{quote(folder_id, safe='')}:{link}"

    def decode_state(self, folder: FolderInfo, state: str) -> tuple[str, str]:
        """(round, link to request) of a stored state of ``folder``; ``InvalidSyncState`` if it is not one."""
        if state.startswith(STATE_PREFIX):
            round_, sep, rest = state[len(STATE_PREFIX):].partition(":")
            folder_id, sep2, link = rest.partition(":")
            if round_ not in _ROUNDS or not sep or not sep2 or "://" not in link:
                raise self._foreign(folder)
            if unquote(folder_id) != folder.folder_id:
                raise InvalidSyncState(f"the stored sync state belongs to another folder than {folder.path}",
                                       mailbox=self.email)
            return round_, link
        if state.startswith(LEGACY_PREFIX) and state[len(LEGACY_PREFIX):len(LEGACY_PREFIX) + 2] in ("i:", "d:"):
            round_, link = state[len(LEGACY_PREFIX)], state[len(LEGACY_PREFIX) + 2:]
            if not _legacy_link_of(link, folder.folder_id):
                raise InvalidSyncState(f"the stored sync state is not the delta link of folder {folder.path}",
                                       mailbox=self.email)
            return round_, link  # relative to graph_url as graph1 stored it: GraphHttp.url() completes it
        raise self._foreign(folder)

    def _foreign(self, folder: FolderInfo) -> InvalidSyncState:
        return InvalidSyncState(f"the stored sync state of {folder.path} is not a Graph delta link "
                                "(was the connection kind changed?): resyncing", mailbox=self.email)

    def sync_pages(self, folder: FolderInfo, sync_state: str | None, *, page_size: int = 512) -> Iterator[SyncPage]:
        """One GET of the folder's messages/delta per page; ``page.sync_state`` is the link to continue from."""
        size = max(1, min(MAX_PAGE, page_size))
        if sync_state:
            round_, url = self.decode_state(folder, sync_state)
            params: dict[str, str] | None = None
        else:
            round_, url = "i", f"{self._folder_path(folder)}/messages/delta"
            params = {"$select": self._message_select()}
        change_type = "create" if round_ == "i" else "update"
        while True:
            data = self.http.get_json(url, params=params, headers=prefer(size), mailbox=self.email,
                                      operation="messages.delta")
            changes: list[ItemRef] = []
            deletes: list[str] = []
            for m in data.get("value", []):
                if "@removed" in m:
                    deletes.append(m["id"])
                else:
                    changes.append(self._ref(m, change_type))
            next_link, delta_link = data.get("@odata.nextLink"), data.get("@odata.deltaLink")
            if next_link:
                page = SyncPage(changes, deletes, 0, self.encode_state(round_, folder.folder_id, next_link), False)
            elif delta_link:
                page = SyncPage(changes, deletes, 0, self.encode_state("d", folder.folder_id, delta_link), True)
            else:
                raise ServerUnavailable(f"Graph delta page of {folder.path} had neither nextLink nor deltaLink",
                                        mailbox=self.email)
            yield page
            if page.last_page:
                return
            url, params = next_link, None

    @staticmethod
    def _ref(m: dict[str, Any], change_type: str) -> ItemRef:
        return ItemRef(item_id=m["id"], change_key=m.get("changeKey") or "", change_type=change_type,  # type: ignore[arg-type]
                       datetime_received=parse_time(m.get("receivedDateTime")),
                       internet_message_id=m.get("internetMessageId"), size=None,
                       conversation_id=m.get("conversationId"), participants=message_participants(m))

    def participants(self, refs: Sequence[ItemRef], *, chunk_size: int | None = None) -> Participants:
        """From, Sender, To and Cc of ``refs``: those the delta/list page carried, the others through
        ``$batch`` of ``/messages/{id}?$select=from,sender,toRecipients,ccRecipients`` (a round started
        before the filter was configured keeps its $select in its links)."""
        out = Participants()
        todo = []
        for ref in refs:
            if ref.participants is not None:
                out.by_id[ref.item_id] = ref.participants
            else:
                todo.append(ref)
        size = max(1, min(MAX_BATCH, chunk_size or self.fetch_chunk_size))
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            subs = [{"id": str(i), "method": "GET", "headers": prefer(),
                     "url": f"{self._user}/messages/{quote(r.item_id, safe='')}?$select={PARTICIPANT_SELECT}"}
                    for i, r in enumerate(chunk)]
            answers = self.http.batch(subs, mailbox=self.email, operation="message.participants")
            for i, ref in enumerate(chunk):
                sub = answers.get(str(i), {})
                status = int(sub.get("status", 0))
                if status == 200 and isinstance(sub.get("body"), dict):
                    out.by_id[ref.item_id] = message_participants(sub["body"]) or ()
                elif status == 404:
                    out.missing_ids.append(ref.item_id)
                elif status in (401, 403):
                    raise map_status(status, *error_of(status, sub.get("body")), mailbox=self.email,
                                     operation="message.participants")
                else:
                    code, message = error_of(status, sub.get("body"))
                    out.failed[ref.item_id] = f"{code or 'HTTP ' + str(status)}: {message}"
        return out

    # -- MIME --------------------------------------------------------------------------------
    def fetch(self, refs: Sequence[ItemRef], folder: FolderInfo, *, chunk_size: int | None = None) -> FetchResult:
        """Raw MIME of each ref through ``$batch`` of ``/messages/{id}/$value`` (<= 20 per batch)."""
        size = max(1, min(MAX_BATCH, chunk_size or self.fetch_chunk_size))
        mime: dict[str, bytes] = {}
        missing: list[str] = []
        failed: dict[str, str] = {}
        for start in range(0, len(refs), size):
            chunk = refs[start:start + size]
            subs = [{"id": str(i), "method": "GET", "headers": prefer(),
                     "url": f"{self._user}/messages/{quote(r.item_id, safe='')}/$value"} for i, r in enumerate(chunk)]
            answers = self.http.batch(subs, mailbox=self.email, operation="message.value")
            for i, ref in enumerate(chunk):
                sub = answers.get(str(i), {})
                status = int(sub.get("status", 0))
                if status == 200:
                    mime[ref.item_id] = body_bytes(sub.get("headers"), sub.get("body"))
                elif status == 404:
                    missing.append(ref.item_id)  # moved away (REST ids) or deleted since the delta page
                elif status in (401, 403):
                    raise map_status(status, *error_of(status, sub.get("body")), mailbox=self.email,
                                     operation="message.value")
                else:
                    code, message = error_of(status, sub.get("body"))
                    failed[ref.item_id] = f"{code or 'HTTP ' + str(status)}: {message}"
        rows = [r for r in refs if r.item_id in mime]
        table = pa.table(
            {
                "mailbox": [self.email] * len(rows),
                "folder_id": [folder.folder_id] * len(rows),
                "folder_path": [folder.path] * len(rows),
                "item_id": [r.item_id for r in rows],
                "change_key": [r.change_key for r in rows],
                "change_type": [r.change_type for r in rows],
                "internet_message_id": [r.internet_message_id for r in rows],
                "datetime_received": [r.datetime_received or datetime.now(timezone.utc) for r in rows],
                "conversation_id": [r.conversation_id for r in rows],
                "size": [len(mime[r.item_id]) for r in rows],
                "mime_content": [mime[r.item_id] for r in rows],
            },
            schema=STAGED_SCHEMA,
        )
        return FetchResult(table=table, missing_ids=missing, failed=failed)

    # -- backfill ----------------------------------------------------------------------------
    def find_range(self, folder: FolderInfo, start: datetime | None, end: datetime | None,
                   *, page_size: int = 512) -> Iterator[list[ItemRef]]:
        """Messages received in [start, end), oldest first, a page per request; never touches delta state."""
        terms = []
        if start is not None:
            terms.append(f"receivedDateTime ge {_iso(start)}")
        if end is not None:
            terms.append(f"receivedDateTime lt {_iso(end)}")
        params: dict[str, str] | None = {"$select": self._message_select(), "$orderby": "receivedDateTime asc",
                                         "$top": str(max(1, min(MAX_PAGE, page_size)))}
        if terms:
            assert params is not None
            params["$filter"] = " and ".join(terms)
        url: str | None = f"{self._folder_path(folder)}/messages"
        while url:
            data = self.http.get_json(url, params=params, headers=prefer(), mailbox=self.email,
                                      operation="messages.list")
            refs = [self._ref(m, "backfill") for m in data.get("value", [])]
            if refs:
                yield refs
            url, params = data.get("@odata.nextLink"), None


def message_participants(m: dict[str, Any]) -> tuple[str, ...] | None:
    """Lowercased addresses of a Graph message's from, sender, toRecipients and ccRecipients; None when
    the message JSON has none of these properties (not selected)."""
    if not any(prop in m for prop in _PARTICIPANT_PROPS):
        return None
    found: list[str] = []
    for prop in _PARTICIPANT_PROPS:
        value = m.get(prop)
        recipients = value if isinstance(value, list) else [value]
        for r in recipients:
            address = ((r or {}).get("emailAddress") or {}).get("address") if isinstance(r, dict) else None
            if isinstance(address, str) and address.strip():
                address = address.strip().lower()
                if address not in found:
                    found.append(address)
    return tuple(found)


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _legacy_link_of(link: str, folder_id: str) -> bool:
    """Whether a graph1 state's link is the messages/delta of ``folder_id``: the path form our old test
    server wrote (``/mailFolders/<id>/messages/delta``) or Microsoft's key form (``/mailFolders('<id>')/...``)."""
    path = unquote(urlsplit(link).path)
    for m in re.finditer(r"/mailFolders(?:/([^/(]+)|\('((?:[^']|'')*)'\))/messages/delta(?:\(\))?$", path, re.I):
        found = m.group(1) if m.group(1) is not None else m.group(2).replace("''", "'")
        if found == folder_id:
            return True
    return False


def is_json_type(content_type: str) -> bool:
    """application/json or a ``+json`` subtype, whatever its parameters (``odata.metadata=minimal; ...``)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def body_bytes(headers: Any, body: Any) -> bytes:
    """The raw bytes of a ``$batch`` sub-response for ``$value``, decoded by its Content-Type header (never
    guessed from the JSON value's type): JSON content types carry a JSON body (not MIME: an error here);
    any other content arrives base64-encoded (Microsoft's JSON batching docs; base64url per OData JSON 4.01
    section 19 is accepted too)."""
    ctype = requests.structures.CaseInsensitiveDict(headers or {}).get("Content-Type")
    if not ctype:
        raise ServerUnavailable("Graph $batch sub-response for a message's $value has no Content-Type header")
    if is_json_type(ctype):
        raise ServerUnavailable(f"Graph $batch answered a message's $value with JSON ({ctype}), not MIME")
    if not isinstance(body, str):
        raise ServerUnavailable(f"Graph $batch sub-response ({ctype}) is not base64 text but {type(body).__name__}")
    text = body.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ServerUnavailable(f"Graph $batch sub-response ({ctype}) is not valid base64") from None
