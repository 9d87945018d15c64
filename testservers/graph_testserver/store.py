"""Graph's view of the in-memory mail store the EWS test server serves too (``testserver_core``).

The mailboxes, folders, items, change logs and loaders are ``testserver_core``'s (imported, not
copied). What differs in Graph is identity and the shape of changes:

- Immutable ids (``Prefer: IdType="ImmutableId"``): an item keeps its id when it moves. The mail store's
  ``move_item`` allocates a new item number (EWS semantics), so ``move_keep_id`` here detaches and
  re-attaches the *same* item: the old folder's change log gets a delete (Graph reports ``@removed``)
  and the new folder's log a create (Graph reports the message as new there).
- Ids are URL-safe (they appear in URL paths): ``base64url("M:<mailbox>:<item>")`` without padding.
- Delta tokens carry (mailbox, folder, change sequence, page size, $select, generation, initial-round
  cursor) and a checksum; ``expire_states`` bumps the generation so every older token answers 410 Gone.
- The first round lists the folder's contents newest first (by receivedDateTime), then what changed
  since the round began: the mailbox's own initial sync order, as the EWS test server's first
  SyncFolderItems (Graph documents no order for delta without ``$orderby``).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from testserver_core.loaders import load_mailboxes  # noqa: F401 - the --mailbox specs, as ews-server loads them
from testserver_core.mailstore import Folder, Item, Mailbox, MailStore

# The well-known folder names Graph accepts in place of a mailFolder id (mailFolder resource type,
# "Well-known folder names"); Graph's mailFolders hold mail folders only (no Calendar/Contacts/Tasks/Notes).
# A name the mailbox has no folder for (e.g. clutter) answers 404 ErrorItemNotFound; anything that is
# neither a name nor an id answers 400 ErrorInvalidIdMalformed, as Graph does.
WELL_KNOWN_NAMES = frozenset({
    "archive", "clutter", "conflicts", "conversationhistory", "deleteditems", "drafts", "inbox", "junkemail",
    "localfailures", "msgfolderroot", "outbox", "recoverableitemsdeletions", "scheduled", "searchfolders",
    "sentitems", "serverfailures", "syncissues",
})
NOT_FOUND = "The specified object was not found in the store."


class GraphStoreError(Exception):
    """A Graph error response: HTTP status + error code + message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def b64url(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def unb64url(value: str) -> str:
    pad = "=" * (-len(value) % 4)
    return base64.urlsafe_b64decode((value + pad).encode()).decode()


@dataclass(frozen=True)
class DeltaToken:
    mailbox: int
    folder: int
    seq: int
    page_size: int
    select: str
    generation: int
    initial: bool  # still in the first enumeration round (skip tokens of a fresh delta)
    # First round: "*" (contents not listed yet) or "<received micros>.<item num>" of the last one listed;
    # "" once the contents are listed (``seq`` is then the change sequence reached).
    cursor: str = ""

    def encode(self) -> str:
        body = json.dumps([self.mailbox, self.folder, self.seq, self.page_size, self.select, self.generation,
                           int(self.initial), self.cursor], separators=(",", ":"))
        return b64url(f"{body}|{zlib.crc32(body.encode()):08x}")

    @classmethod
    def decode(cls, token: str) -> DeltaToken:
        try:
            body, crc = unb64url(token).rsplit("|", 1)
            if int(crc, 16) != zlib.crc32(body.encode()):
                raise ValueError("checksum")
            m, f, s, n, sel, gen, initial, *rest = json.loads(body)
            return cls(int(m), int(f), int(s), int(n), str(sel), int(gen), bool(initial), str(rest[0]) if rest else "")
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise GraphStoreError(400, "BadRequest", "The delta or skip token is malformed.") from exc


class GraphStore:
    """Wraps one ``MailStore`` with Graph ids, moves that keep ids, and delta bookkeeping."""

    def __init__(self, store: MailStore | None = None) -> None:
        self.mail = store or MailStore()
        self.generation = 0  # bumped by expire_states(): older delta tokens -> 410

    # -- ids -------------------------------------------------------------------------------
    @staticmethod
    def message_id(item: Item) -> str:
        return b64url(f"M:{item.folder.mailbox.index}:{item.num}")

    @staticmethod
    def folder_id(folder: Folder) -> str:
        return b64url(f"F:{folder.mailbox.index}:{folder.num}")

    def mailbox(self, user: str) -> Mailbox:
        mbx = self.mail.get_mailbox(user)
        if mbx is None:
            raise GraphStoreError(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        return mbx

    def folder(self, mbx: Mailbox, ref: str) -> Folder:
        """A folder by Graph id or well-known name (mail folders only)."""
        folder: Folder | None
        if ref.lower() in WELL_KNOWN_NAMES:
            folder = mbx.distinguished.get(ref.lower())
        else:
            try:
                tag, m, num = unb64url(ref).split(":")
                if tag != "F":
                    raise ValueError(tag)
                folder = mbx.folders.get(int(num)) if int(m) == mbx.index else None
            except (ValueError, UnicodeDecodeError):
                raise GraphStoreError(400, "ErrorInvalidIdMalformed", "Id is malformed.") from None
        if folder is None or (folder is not mbx.msg_root and not self.is_mail_folder(folder)):
            raise GraphStoreError(404, "ErrorItemNotFound", NOT_FOUND)
        return folder

    def item(self, mbx: Mailbox, ref: str) -> Item:
        try:
            tag, m, num, *rest = unb64url(ref).split(":")
            ok = int(m) == mbx.index and ((tag == "M" and not rest) or (tag == "R" and len(rest) == 1))
            item = mbx.items.get(int(num)) if ok else None
            if item is not None and tag == "R" and item.folder.num != int(rest[0]):
                item = None  # a REST id dies when its message moves (immutable ids do not)
        except (ValueError, UnicodeDecodeError):
            item = None
        if item is None:
            raise GraphStoreError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return item

    @staticmethod
    def is_mail_folder(folder: Folder) -> bool:
        return folder.is_mail

    def mail_folders(self, mbx: Mailbox) -> Iterator[Folder]:
        """Every mail folder under the message folder root, parents before children."""
        for folder in mbx.walk(mbx.msg_root):
            if self.is_mail_folder(folder) and all(self.is_mail_folder(p) for p in _ancestors(folder, mbx)):
                yield folder

    # -- mutations -------------------------------------------------------------------------
    def move_keep_id(self, item: Item, target: Folder) -> Item:
        """Graph/Exchange Online with immutable ids: same item, same id, new parent folder."""
        with self.mail.lock:
            self.mail._detach(item)  # noqa: SLF001 - the store's own change-log bookkeeping
            self.mail._attach(item, target)  # noqa: SLF001
            return item

    def expire_states(self) -> int:
        with self.mail.lock:
            self.generation += 1
            return self.generation

    # -- delta -----------------------------------------------------------------------------
    def delta_page(self, folder: Folder, token: DeltaToken) -> tuple[list[tuple[str, Item | int]], DeltaToken, bool]:
        """Changes after the token: ([("upsert", item) | ("removed", item_num)], next token, round complete)."""
        if token.generation != self.generation:
            raise GraphStoreError(410, "SyncStateNotFound",
                                  "The sync state generation is not found. Restart the delta query without a token.")
        if token.mailbox != folder.mailbox.index or token.folder != folder.num or token.seq > folder.mailbox.seq:
            raise GraphStoreError(410, "SyncStateNotFound", "The sync state is not valid for this folder.")
        listed: list[Item] = []
        with self.mail.lock:
            if token.cursor:
                cursor = None if token.cursor == "*" else _parse_cursor(token.cursor)
                listed, cursor = folder.initial_page(token.seq, cursor, token.page_size)
                if cursor is not None:
                    nxt = replace(token, cursor=_format_cursor(cursor))
                    return [("upsert", it) for it in listed], nxt, False
                changes, new_seq, done = folder.changes_since(token.seq, token.page_size - len(listed))
            else:
                changes, new_seq, done = folder.changes_since(token.seq, token.page_size)
        out: list[tuple[str, Item | int]] = [("upsert", it) for it in listed]
        for kind, obj, _is_read in changes:
            if kind == "delete":
                assert isinstance(obj, int)
                if obj in folder.items:
                    continue  # moved away and back within the round: it is here, reported by its create
                out.append(("removed", obj))
            else:
                assert isinstance(obj, Item)
                out.append(("upsert", obj))  # Graph does not say create vs update (read flags included)
        nxt = replace(token, seq=new_seq, initial=token.initial and not done, cursor="")
        return out, nxt, done

    def removed_id(self, mbx: Mailbox, num: int) -> str:
        return b64url(f"M:{mbx.index}:{num}")


def _parse_cursor(text: str) -> tuple[datetime, int]:
    micros, num = text.split(".")
    return datetime.fromtimestamp(int(micros) / 1_000_000, timezone.utc), int(num)


def _format_cursor(cursor: tuple[datetime, int]) -> str:
    when, num = cursor
    return f"{int(when.timestamp() * 1_000_000)}.{num}"


def _ancestors(folder: Folder, mbx: Mailbox) -> Iterator[Folder]:
    node = folder.parent
    while node is not None and node is not mbx.msg_root and node is not mbx.root:
        yield node
        node = node.parent


def iso(dt: datetime) -> str:
    from testserver_core.mimeinfo import fmt_dt

    return fmt_dt(dt)
