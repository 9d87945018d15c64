"""Exchange-shaped ids: ItemId ~152 characters, FolderId ~120, ChangeKey 40, all base64 as real ones.

A real EWS id is the base64 of a binary structure (``AAMkA...``): a version/flags header, the
mailbox GUID as 36 ASCII characters, then a MAPI entry id (flags, provider GUID, object type, the
folder's and the message's database GUID and 6-byte global counter). These ids have the same layout
and length, deterministic and decodable by the server:

- the mailbox GUID is a UUIDv5 of the mailbox's index (ids stay stable across restarts, as before,
  as long as the mailboxes are loaded in the same order);
- the folder counter holds the mailbox index, the message counter the item number (folder ids: one
  counter, mailbox index in the high 16 bits, folder number in the low 32); attachment ids append the item version and the attachment index;
- a ChangeKey is ``09000000 16000000`` + GUID + a 6-byte counter (number and version), 40 characters
  like ``CQAAABYAAAD...``.

Anything else (``DUMMY``, a truncated id, another server's id) raises ``ValueError``: the callers
answer ErrorInvalidIdMalformed, as Exchange does.
"""

from __future__ import annotations

import base64
import binascii
import functools
import uuid

_NAMESPACE = uuid.UUID("8c3f4f3e-5d0b-4f59-9c3e-1a2b7e0e5a11")
_HEAD = b"\x00\x03\x24\x00"  # what "AAMkA" decodes to
_ITEM_ENTRY = b"\x46\x00"  # 70-byte message entry id follows
_FOLDER_ENTRY = b"\x2e\x00"  # 46-byte folder entry id follows
_ATTACHMENT = b"\x01\x12\x00\x10\x00"
_CK_HEAD = b"\x09\x00\x00\x00\x16\x00\x00\x00"


@functools.lru_cache(maxsize=4096)
def _guid(index: int) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"mailbox:{index}")


def _counter(value: int) -> bytes:
    return value.to_bytes(6, "big")


def _item_bytes(mailbox: int, num: int) -> bytes:
    g = _guid(mailbox)
    entry = (b"\x00\x00\x00\x00" + g.bytes + b"\x07\x00" + g.bytes + _counter(mailbox) + b"\x00\x00"
             + g.bytes + _counter(num) + b"\x00\x00")
    return _HEAD + str(g).encode() + _ITEM_ENTRY + entry


def item_id(mailbox: int, num: int) -> str:
    return base64.b64encode(_item_bytes(mailbox, num)).decode()


def folder_id(mailbox: int, num: int) -> str:
    g = _guid(mailbox)
    entry = b"\x00\x00\x00\x00" + g.bytes + b"\x01\x00" + g.bytes + _counter((mailbox << 32) | num) + b"\x00\x00"
    return base64.b64encode(_HEAD + str(g).encode() + _FOLDER_ENTRY + entry).decode()


def attachment_id(mailbox: int, num: int, version: int, index: int) -> str:
    tail = _ATTACHMENT + version.to_bytes(8, "big") + index.to_bytes(8, "big")
    return base64.b64encode(_item_bytes(mailbox, num) + tail).decode()


def change_key(mailbox: int, num: int, version: int) -> str:
    return base64.b64encode(_CK_HEAD + _guid(mailbox).bytes + _counter((num << 16) | (version & 0xFFFF))).decode()


def _decode(value: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ValueError("malformed id") from exc
    if raw[:4] != _HEAD or len(raw) < 42:
        raise ValueError("malformed id")
    try:
        g = uuid.UUID(raw[4:40].decode("ascii"))
    except ValueError as exc:
        raise ValueError("malformed id") from exc
    if g.version != 5:
        raise ValueError("malformed id")
    return raw


def decode(value: str) -> tuple[str, int, int, tuple[int, int] | None]:
    """(kind "item" | "folder" | "attachment", mailbox index, number, (version, index) | None)."""
    raw = _decode(value)
    marker = raw[40:42]
    if marker == _ITEM_ENTRY and len(raw) in (112, 112 + 21):
        mailbox = int.from_bytes(raw[42 + 38:42 + 44], "big")
        num = int.from_bytes(raw[42 + 62:42 + 68], "big")
        if _item_bytes(mailbox, num) != raw[:112]:
            raise ValueError("malformed id")
        if len(raw) == 112:
            return "item", mailbox, num, None
        tail = raw[112:]
        if tail[:5] != _ATTACHMENT:
            raise ValueError("malformed id")
        return "attachment", mailbox, num, (int.from_bytes(tail[5:13], "big"), int.from_bytes(tail[13:21], "big"))
    if marker == _FOLDER_ENTRY and len(raw) == 88:
        counter = int.from_bytes(raw[42 + 38:42 + 44], "big")
        mailbox, num = counter >> 32, counter & 0xFFFFFFFF
        if folder_id(mailbox, num) != base64.b64encode(raw).decode():
            raise ValueError("malformed id")
        return "folder", mailbox, num, None
    raise ValueError("malformed id")
