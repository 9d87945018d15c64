"""In-memory mailboxes: folders, items, and a per-folder change log for SyncFolderItems.

Design points (why it looks like this):
- Every change to a folder's contents appends ``(seq, kind, item_num, created_seq)`` to that folder's
  log, with ``seq`` from a per-mailbox counter. A sync state is ``(folder, seq)``; a page is found by
  bisecting the log, so paging through 100,000 items costs O(page) per request, never O(n).
- Item ids encode (mailbox, item number); a move allocates a new number, so the id changes (as in
  Exchange: copy + delete). Folder ids never change. DateTimeReceived is kept across moves.
- Raw MIME is held as the exact bytes loaded (or rendered on demand, deterministically, for
  generated mail) so MimeContent round-trips byte-identical. Header-derived properties are parsed
  lazily on first use and cached in a small ``Meta`` record.
"""

from __future__ import annotations

import base64
import bisect
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from . import ids, mimeinfo


class StoreError(Exception):
    """A request the store cannot satisfy; ``code`` is an EWS ResponseCode."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(value: str) -> str:
    try:
        return base64.b64decode(value.encode(), validate=True).decode()
    except Exception as exc:  # noqa: BLE001
        raise ValueError("malformed id") from exc


@dataclass(slots=True)
class Meta:
    """Header-derived properties, parsed once per item version."""

    subject: str
    message_id: str | None
    sent: datetime | None
    sender: list[mimeinfo.Address]
    from_: list[mimeinfo.Address]
    to: list[mimeinfo.Address]
    cc: list[mimeinfo.Address]
    bcc: list[mimeinfo.Address]
    in_reply_to: str | None
    references: str | None
    has_attachments: bool
    size: int | None  # None: len(raw), computed on demand (generated mail)


def meta_from_raw(raw: bytes) -> Meta:
    try:
        msg = mimeinfo.parse_headers(raw)
    except Exception:  # noqa: BLE001 - header parsing of garbage must still give an item
        msg = mimeinfo.parse_headers(b"")
    def header(name: str) -> str | None:
        try:
            value = msg.get(name)
        except Exception:  # noqa: BLE001
            return None
        return None if value is None else str(value)
    msgid = header("Message-ID")
    ctype = (header("Content-Type") or "").lower()
    from_ = mimeinfo.parse_addresses(msg.get_all("From"))
    sender = mimeinfo.parse_addresses(msg.get_all("Sender")) or from_
    return Meta(
        subject=mimeinfo.decode_header_value(header("Subject")),
        message_id=mimeinfo.xml_safe(msgid.strip()) if msgid else None,
        sent=mimeinfo.parse_date(header("Date")),
        sender=sender,
        from_=from_,
        to=mimeinfo.parse_addresses(msg.get_all("To")),
        cc=mimeinfo.parse_addresses(msg.get_all("Cc")),
        bcc=mimeinfo.parse_addresses(msg.get_all("Bcc")),
        in_reply_to=header("In-Reply-To"),
        references=header("References"),
        # Cheap heuristic (no full parse): mixed multiparts nearly always carry attachments.
        has_attachments=ctype.startswith("multipart/mixed") or b"Content-Disposition: attachment" in raw,
        size=len(raw),
    )


class Item:
    __slots__ = (
        "num", "folder", "version", "created_seq", "last_seq", "read_seq", "is_read",
        "received", "_raw", "_render", "_meta", "_meta_factory",
    )

    def __init__(
        self,
        num: int,
        folder: Folder,
        received: datetime,
        raw: bytes | None = None,
        render: Callable[[], bytes] | None = None,
        meta: Meta | None = None,
        is_read: bool = False,
        meta_factory: Callable[[], Meta] | None = None,
    ) -> None:
        self.num = num
        self.folder = folder
        self.version = 1
        self.created_seq = 0
        self.last_seq = 0
        self.read_seq = 0
        self.is_read = is_read
        self.received = received
        self._raw = raw
        self._render = render
        self._meta = meta
        # Generated mail: metadata is recomputed from the generator record on use instead of
        # cached, so a 100,000-message mailbox holds only the small generator records.
        self._meta_factory = meta_factory

    @property
    def raw(self) -> bytes:
        if self._raw is not None:
            return self._raw
        assert self._render is not None
        return self._render()

    def set_raw(self, raw: bytes) -> None:
        self._raw = raw
        self._render = None
        self._meta = None
        self._meta_factory = None

    @property
    def meta(self) -> Meta:
        if self._meta is None:
            if self._meta_factory is not None:
                return self._meta_factory()
            self._meta = meta_from_raw(self.raw)
        return self._meta

    @property
    def item_id(self) -> str:
        return ids.item_id(self.folder.mailbox.index, self.num)

    @property
    def change_key(self) -> str:
        return ids.change_key(self.folder.mailbox.index, self.num, self.version)


# (distinguished id, display name, folder class, element tag) of the folders every mailbox has.
WELL_KNOWN = (
    ("msgfolderroot", "Top of Information Store", None, "Folder"),
    ("inbox", "Inbox", "IPF.Note", "Folder"),
    ("sentitems", "Sent Items", "IPF.Note", "Folder"),
    ("deleteditems", "Deleted Items", "IPF.Note", "Folder"),
    ("drafts", "Drafts", "IPF.Note", "Folder"),
    ("junkemail", "Junk Email", "IPF.Note", "Folder"),
    ("outbox", "Outbox", "IPF.Note", "Folder"),
    ("calendar", "Calendar", "IPF.Appointment", "CalendarFolder"),
    ("contacts", "Contacts", "IPF.Contact", "ContactsFolder"),
    ("tasks", "Tasks", "IPF.Task", "TasksFolder"),
    ("notes", "Notes", "IPF.StickyNote", "Folder"),
)
_DISPLAY_TO_DISTINGUISHED = {name.lower(): dist for dist, name, _c, _t in WELL_KNOWN}
# Default folders an Exchange 2013+ mailbox has and can address by DistinguishedFolderId (ids added
# in Exchange 2013): (distinguished id, display name, folder class, parent's distinguished id).
# Only the EWS server of a 2013-or-later profile creates them (``MailStore(extra_folders=...)``).
WELL_KNOWN_2013 = (
    ("syncissues", "Sync Issues", "IPF.Note", "msgfolderroot"),
    ("conflicts", "Conflicts", "IPF.Note", "syncissues"),
    ("localfailures", "Local Failures", "IPF.Note", "syncissues"),
    ("serverfailures", "Server Failures", "IPF.Note", "syncissues"),
    ("conversationhistory", "Conversation History", "IPF.Note", "msgfolderroot"),
)
# Exchange Online mailboxes also have the one-click Archive folder, DistinguishedFolderId "archive".
WELL_KNOWN_ONLINE = (("archive", "Archive", "IPF.Note", "msgfolderroot"),)


class Folder:
    def __init__(
        self, mailbox: Mailbox, num: int, name: str, parent: Folder | None,
        folder_class: str | None = "IPF.Note", tag: str = "Folder", distinguished: str | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.num = num
        self.name = name
        self.parent = parent
        self.folder_class = folder_class
        self.tag = tag
        self.distinguished = distinguished
        self.children: list[Folder] = []
        self.items: dict[int, Item] = {}
        self.unread = 0
        self.created_hseq = 0
        # Change log, kept as parallel lists so bisect works on the sequence numbers directly.
        self.log_seq: list[int] = []
        self.log_entry: list[tuple[str, int, int]] = []  # (kind, item_num, created_seq)
        self._sorted: list[Item] | None = None

    @property
    def folder_id(self) -> str:
        return ids.folder_id(self.mailbox.index, self.num)

    @property
    def change_key(self) -> str:
        return ids.change_key(self.mailbox.index, self.num, 0)

    @property
    def path(self) -> str:
        """Display path under the message folder root ('' for root/msgfolderroot)."""
        parts: list[str] = []
        node: Folder | None = self
        while node is not None and node.distinguished not in ("root", "msgfolderroot"):
            parts.append(node.name)
            node = node.parent
        return "/".join(reversed(parts))

    @property
    def is_mail(self) -> bool:
        return self.folder_class == "IPF.Note" or (self.folder_class or "").startswith("IPF.Note.")

    def log(self, seq: int, kind: str, item: Item, created_seq: int) -> None:
        self.log_seq.append(seq)
        self.log_entry.append((kind, item.num, created_seq))
        self._sorted = None

    def sorted_items(self) -> list[Item]:
        """Items by DateTimeReceived ascending (cached until the folder changes)."""
        if self._sorted is None:
            self._sorted = sorted(self.items.values(), key=lambda it: (it.received, it.num))
        return self._sorted

    def sync_state(self, seq: int) -> str:
        body = f"S:{self.mailbox.index}:{self.num}:{seq}"
        return _b64(f"{body}:{zlib.crc32(body.encode()):08x}")

    def parse_sync_state(self, state: str) -> int:
        """Sequence number in a sync state issued for this folder; StoreError if it is not one."""
        try:
            text = _unb64(state.strip())
            body, crc = text.rsplit(":", 1)
            tag, mbx, fnum, seq = body.split(":")
            ok = tag == "S" and int(crc, 16) == zlib.crc32(body.encode())
            ok = ok and int(mbx) == self.mailbox.index and int(fnum) == self.num
            seq_i = int(seq)
            ok = ok and 0 <= seq_i <= self.mailbox.seq
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise StoreError("ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid.")
        return seq_i

    def initial_sync_state(self, snapshot: int, cursor: tuple[datetime, int] | None) -> str:
        """State of an initial sync (the folder's contents, newest first) in progress: the snapshot
        sequence and the (DateTimeReceived, number) of the last item delivered."""
        if cursor is None:
            return self.sync_state(snapshot)
        when, num = cursor
        micros = int(when.timestamp() * 1_000_000)
        body = f"S:{self.mailbox.index}:{self.num}:{snapshot}:{micros}.{num}"
        return _b64(f"{body}:{zlib.crc32(body.encode()):08x}")

    def parse_any_sync_state(self, state: str) -> tuple[int, tuple[datetime, int] | None]:
        """(sequence, initial-sync cursor or None) of a state this folder issued; StoreError if not."""
        try:
            text = _unb64(state.strip())
            body, crc = text.rsplit(":", 1)
            parts = body.split(":")
            if len(parts) == 4:
                return self.parse_sync_state(state), None
            tag, mbx, fnum, seq, cur = parts
            ok = tag == "S" and int(crc, 16) == zlib.crc32(body.encode())
            ok = ok and int(mbx) == self.mailbox.index and int(fnum) == self.num and 0 <= int(seq) <= self.mailbox.seq
            micros, num = cur.split(".")
            cursor = (datetime.fromtimestamp(int(micros) / 1_000_000, timezone.utc), int(num))
        except (ValueError, TypeError, OverflowError):
            ok = False
        if not ok:
            raise StoreError("ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid.")
        return int(seq), cursor

    def initial_page(self, snapshot: int, cursor: tuple[datetime, int] | None, limit: int
                     ) -> tuple[list[Item], tuple[datetime, int] | None]:
        """One page of an initial sync: the items that existed at ``snapshot``, newest first (by
        DateTimeReceived), after ``cursor``; and the cursor to go on from (None: all delivered).
        Items created later, and later changes, come after it as ordinary changes since ``snapshot``."""
        items = self.sorted_items()
        end = len(items) if cursor is None else bisect.bisect_left(items, cursor, key=lambda it: (_utc(it.received), it.num))
        out: list[Item] = []
        i = end - 1
        while i >= 0 and len(out) < limit:
            item = items[i]
            if item.created_seq <= snapshot:
                out.append(item)
            i -= 1
        more = any(items[j].created_seq <= snapshot for j in range(i, -1, -1)) if i >= 0 else False
        if not more or not out:
            return out, None
        return out, (_utc(out[-1].received), out[-1].num)

    def changes_since(self, seq: int, limit: int) -> tuple[list[tuple[str, Item | int, bool]], int, bool]:
        """Changes after ``seq``: ([(kind, item-or-num, is_read)], new_seq, includes_last).

        kinds: create, update, delete, read. Superseded log entries are skipped, so an item
        changed several times since ``seq`` is reported once, in the position of its latest change.
        """
        start = bisect.bisect_right(self.log_seq, seq)
        out: list[tuple[str, Item | int, bool]] = []
        new_seq = seq
        for i in range(start, len(self.log_seq)):
            entry_seq = self.log_seq[i]
            kind, num, created_seq = self.log_entry[i]
            change = self._effective(kind, num, created_seq, entry_seq, seq)
            if change is not None:
                if len(out) >= limit:
                    return out, new_seq, False
                out.append(change)
            # dead (superseded) entries are passed over too, so the next page does not rescan them
            new_seq = entry_seq
        return out, new_seq, True

    def _effective(self, kind: str, num: int, created_seq: int, entry_seq: int, since: int) -> tuple[str, Item | int, bool] | None:
        known_before = created_seq <= since  # the client already has this item
        if kind == "delete":
            return ("delete", num, False) if known_before else None
        item = self.items.get(num)
        if item is None:
            return None  # removed later; the delete entry reports it (or nothing, if never known)
        if kind == "read":
            if not known_before or item.read_seq != entry_seq or item.last_seq > since:
                return None  # a create/update after `since` already carries IsRead
            return ("read", item, item.is_read)
        if item.last_seq != entry_seq:
            return None  # superseded by a later create/update entry
        return ("update" if known_before else "create", item, item.is_read)


class Mailbox:
    def __init__(self, address: str, index: int, extra_folders: tuple[tuple[str, str, str, str], ...] = ()) -> None:
        self.address = address
        self.index = index
        self.seq = 0  # change-log sequence shared by all folders of this mailbox
        self.folders: dict[int, Folder] = {}
        self.items: dict[int, Item] = {}
        self.by_message_id: dict[str, list[int]] = {}
        self._next_folder = 1
        self.notify: Callable[[StoreChange], None] | None = None  # set by the store once built
        self.root = self._new_folder("", None, None, "Folder", "root")
        self.msg_root = self._new_folder("Top of Information Store", self.root, None, "Folder", "msgfolderroot")
        self.distinguished: dict[str, Folder] = {"root": self.root, "msgfolderroot": self.msg_root}
        for dist, name, cls, tag in WELL_KNOWN[1:]:
            self.distinguished[dist] = self._new_folder(name, self.msg_root, cls, tag, dist)
        for dist, name, cls, parent in extra_folders:
            self.distinguished[dist] = self._new_folder(name, self.distinguished[parent], cls, "Folder", dist)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _new_folder(self, name: str, parent: Folder | None, cls: str | None, tag: str, dist: str | None) -> Folder:
        f = Folder(self, self._next_folder, name, parent, cls, tag, dist)
        self._next_folder += 1
        self.folders[f.num] = f
        if parent is not None:
            parent.children.append(f)
        f.created_hseq = self.next_seq()
        if self.notify is not None:
            self.notify(StoreChange("folder_created", f))
        return f

    def folder_by_path(self, path: str, create: bool = False) -> Folder:
        """Resolve 'Inbox/Suppliers' under the message folder root (case-insensitive)."""
        parts = [p for p in re.split(r"[/\\]", path.strip()) if p]
        node = self.msg_root
        for part in parts:
            match = next((c for c in node.children if c.name.lower() == part.lower()), None)
            if match is None and node is self.msg_root:
                dist = self.distinguished.get(part.lower()) or self.distinguished.get(
                    _DISPLAY_TO_DISTINGUISHED.get(part.lower(), "-"))
                match = dist if dist is not None and dist.parent is self.msg_root else None
            if match is None:
                if not create:
                    raise StoreError("ErrorFolderNotFound", f"No folder {path!r} in {self.address}")
                match = self._new_folder(part, node, "IPF.Note", "Folder", None)
            node = match
        return node

    def walk(self, start: Folder | None = None) -> Iterator[Folder]:
        """Depth-first, parents before children (FindFolder Deep order)."""
        stack = list(reversed((start or self.root).children))
        while stack:
            f = stack.pop()
            yield f
            stack.extend(reversed(f.children))


@dataclass(slots=True)
class StoreChange:
    """One change to a mailbox's contents, as the notification hub sees it (``MailStore.on_change``).

    kind: created | modified | read | moved | copied | deleted | folder_created. For moved/copied,
    ``item`` is the new item and ``old_item``/``old_folder`` the one it came from (its id is gone
    after a move); ``folder`` is the folder the item is in (or, for folder_created, the new folder)."""

    kind: str
    folder: Folder
    item: Item | None = None
    old_item: Item | None = None
    old_folder: Folder | None = None


class MailStore:
    """All mailboxes of one server. One lock: every operation is short and in memory.

    ``on_change`` (set by the notification hub) is called, under the store lock, after every change
    to a mailbox's contents; it must be quick and must not take the store lock from another thread."""

    def __init__(self, extra_folders: tuple[tuple[str, str, str, str], ...] = ()) -> None:
        """``extra_folders``: default folders beyond WELL_KNOWN every mailbox gets (WELL_KNOWN_2013,
        WELL_KNOWN_ONLINE: the EWS server adds them by its Exchange version)."""
        self.lock = threading.RLock()
        self.extra_folders = extra_folders
        self.mailboxes: dict[str, Mailbox] = {}
        self._by_index: dict[int, Mailbox] = {}
        self._next_mailbox = 1
        self._next_item = 1
        self.on_change: Callable[[StoreChange], None] | None = None

    def _changed(self, change: StoreChange) -> None:
        if self.on_change is not None:
            try:
                self.on_change(change)
            except Exception:  # noqa: BLE001 - a listener bug must not fail the change (already made)
                import logging

                logging.getLogger("ews_testserver").exception("store change listener failed on %s", change.kind)

    # -- mailboxes -------------------------------------------------------------------------
    def add_mailbox(self, address: str) -> Mailbox:
        with self.lock:
            key = address.lower()
            if key in self.mailboxes:
                return self.mailboxes[key]
            mbx = Mailbox(address, self._next_mailbox, self.extra_folders)
            mbx.notify = self._changed
            self._next_mailbox += 1
            self.mailboxes[key] = mbx
            self._by_index[mbx.index] = mbx
            return mbx

    def remove_mailbox(self, address: str) -> bool:
        with self.lock:
            mbx = self.mailboxes.pop(address.lower(), None)
            if mbx is None:
                return False
            self._by_index.pop(mbx.index, None)
            return True

    def get_mailbox(self, address: str) -> Mailbox | None:
        return self.mailboxes.get(address.strip().lower())

    def mailbox_by_index(self, index: int) -> Mailbox | None:
        return self._by_index.get(index)

    # -- ids -------------------------------------------------------------------------------
    def decode_folder_id(self, folder_id: str) -> Folder:
        try:
            kind, mbx, num, _extra = ids.decode(folder_id)
            if kind != "folder":
                raise ValueError(kind)
            mailbox = self._by_index.get(mbx)
        except ValueError as exc:
            raise StoreError("ErrorInvalidIdMalformed", "Id is malformed.") from exc
        if mailbox is None:
            raise StoreError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
        folder = mailbox.folders.get(num)
        if folder is None:
            raise StoreError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
        return folder

    def decode_item_id(self, item_id: str) -> tuple[Mailbox | None, int]:
        try:
            kind, mbx, num, _extra = ids.decode(item_id)
            if kind != "item":
                raise ValueError(kind)
            return self._by_index.get(mbx), num
        except ValueError as exc:
            raise StoreError("ErrorInvalidIdMalformed", "Id is malformed.") from exc

    def mailbox_index_of_id(self, any_id: str) -> int | None:
        try:
            return ids.decode(any_id)[1]
        except ValueError:
            return None

    # -- item mutations (each logs to the folder's change log) -----------------------------
    def add_item(
        self, folder: Folder, *, raw: bytes | None = None, render: Callable[[], bytes] | None = None,
        received: datetime | None = None, meta: Meta | None = None, is_read: bool = False,
        meta_factory: Callable[[], Meta] | None = None,
    ) -> Item:
        with self.lock:
            item = Item(self._next_item, folder, received or datetime.now(timezone.utc), raw, render, meta, is_read,
                        meta_factory)
            self._next_item += 1
            self._attach(item, folder)
            self._changed(StoreChange("created", folder, item))
            return item

    def _attach(self, item: Item, folder: Folder) -> None:
        mbx = folder.mailbox
        seq = mbx.next_seq()
        item.folder = folder
        item.created_seq = item.last_seq = seq
        folder.items[item.num] = item
        mbx.items[item.num] = item
        if not item.is_read:
            folder.unread += 1
        folder.log(seq, "create", item, seq)
        msgid = item.meta.message_id
        if msgid:
            mbx.by_message_id.setdefault(msgid, []).append(item.num)

    def _detach(self, item: Item) -> None:
        folder = item.folder
        mbx = folder.mailbox
        seq = mbx.next_seq()
        del folder.items[item.num]
        del mbx.items[item.num]
        if not item.is_read:
            folder.unread -= 1
        folder.log(seq, "delete", item, item.created_seq)
        msgid = item.meta.message_id
        if msgid and msgid in mbx.by_message_id:
            nums = [n for n in mbx.by_message_id[msgid] if n != item.num]
            if nums:
                mbx.by_message_id[msgid] = nums
            else:
                del mbx.by_message_id[msgid]

    def delete_item(self, item: Item) -> None:
        with self.lock:
            self._detach(item)
            self._changed(StoreChange("deleted", item.folder, item))

    def move_item(self, item: Item, target: Folder) -> Item:
        """Exchange semantics: a new item (new id) in the target, the old one deleted; received kept."""
        with self.lock:
            self._detach(item)
            new = Item(self._next_item, target, item.received, item._raw, item._render, item._meta, item.is_read,
                       item._meta_factory)
            self._next_item += 1
            self._attach(new, target)
            self._changed(StoreChange("moved", target, new, old_item=item, old_folder=item.folder))
            return new

    def copy_item(self, item: Item, target: Folder) -> Item:
        """A copy (new id) in ``target``; the original stays where it is."""
        with self.lock:
            raw = item.raw
            new = Item(self._next_item, target, item.received, raw, None, None, item.is_read)
            self._next_item += 1
            self._attach(new, target)
            self._changed(StoreChange("copied", target, new, old_item=item, old_folder=item.folder))
            return new

    def update_item(self, item: Item, raw: bytes) -> None:
        with self.lock:
            old_msgid = item.meta.message_id
            item.set_raw(raw)
            item.version += 1
            seq = item.folder.mailbox.next_seq()
            item.last_seq = seq
            item.folder.log(seq, "update", item, item.created_seq)
            if item.meta.message_id != old_msgid:
                mbx = item.folder.mailbox
                if old_msgid in mbx.by_message_id:
                    mbx.by_message_id[old_msgid] = [n for n in mbx.by_message_id[old_msgid] if n != item.num]
                if item.meta.message_id:
                    mbx.by_message_id.setdefault(item.meta.message_id, []).append(item.num)
            self._changed(StoreChange("modified", item.folder, item))

    def set_read(self, item: Item, is_read: bool) -> None:
        with self.lock:
            if item.is_read == is_read:
                return
            item.is_read = is_read
            item.folder.unread += -1 if is_read else 1
            item.version += 1
            seq = item.folder.mailbox.next_seq()
            item.read_seq = seq
            item.folder.log(seq, "read", item, item.created_seq)
            self._changed(StoreChange("read", item.folder, item))

    def find_by_message_id(self, mailbox: Mailbox, message_id: str) -> list[Item]:
        with self.lock:
            candidates = {message_id.strip(), f"<{message_id.strip().strip('<>')}>"}
            out: list[Item] = []
            for mid in candidates:
                out.extend(mailbox.items[n] for n in mailbox.by_message_id.get(mid, []) if n in mailbox.items)
            return out


def _utc(when: datetime) -> datetime:
    """Microsecond-exact, timezone-aware (a cursor survives the round trip through the sync state)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when


def rewrite_subject(raw: bytes, subject: str) -> bytes:
    """Replace (or add) the Subject header at byte level, leaving every other byte as it was."""
    from email.header import Header

    encoded = Header(subject, "utf-8").encode().encode("ascii")
    head, sep, body = _split_head(raw)
    pattern = re.compile(rb"^Subject:[^\n]*\n?(?:[ \t][^\n]*\n?)*", re.I | re.M)
    nl = b"\r\n" if b"\r\n" in head else b"\n"
    line = b"Subject: " + encoded + nl
    if pattern.search(head + nl):
        head = pattern.sub(lambda _m: line, head + nl, count=1)
        head = head[: -len(nl)] if head.endswith(nl) else head
    else:
        head = head + nl + line.rstrip(b"\r\n")
    return head + sep + body


def rewrite_body(raw: bytes, text: str) -> bytes:
    """Replace the body by a single UTF-8 text/plain part, keeping the non-MIME headers."""
    head, _sep, _body = _split_head(raw)
    nl = b"\r\n" if b"\r\n" in head else b"\n"
    kept: list[bytes] = []
    skip = False
    for line in head.split(nl):
        if line[:1] in (b" ", b"\t"):
            if not skip:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        skip = name.startswith(b"content-") or name == b"mime-version"
        if not skip:
            kept.append(line)
    kept += [b"MIME-Version: 1.0", b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: base64"]
    payload = base64.encodebytes(text.encode("utf-8")).replace(b"\n", nl)
    return nl.join(kept) + nl + nl + payload


def _split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = raw.find(sep)
        if idx >= 0:
            return raw[:idx], sep, raw[idx + len(sep):]
    return raw, b"", b""


def iter_items_sorted(items: Iterable[Item]) -> list[Item]:
    return sorted(items, key=lambda it: (it.received, it.num))
