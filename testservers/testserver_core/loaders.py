"""Fill mailboxes from a folder of .eml files, an mbox file, or generated mail.

DateTimeReceived of a loaded message: the date of its top (most recent) ``Received:`` header,
else its ``Date:`` header, else the file's mtime, else the load time.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

from . import mimeinfo
from .mailstore import Folder, Mailbox, MailStore, meta_from_raw

_NOT_MAIL = {"license", "licence", "readme", "copying", "notice", "authors"}
_HEADER_LINE = re.compile(rb"^(?:From |[!-9;-~]+:)")


def looks_like_mail(path: Path) -> bool:
    """`.eml` files, plus extension-less files that start like an RFC 822 header block."""
    name = path.name
    if name.startswith("."):
        return False
    suffix = path.suffix.lower()
    if suffix == ".eml":
        return True
    if suffix or name.lower() in _NOT_MAIL:
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return bool(_HEADER_LINE.match(head.lstrip(b"\r\n")))


def received_for(raw: bytes, mtime: float | None) -> datetime:
    try:
        msg = mimeinfo.parse_headers(raw)
        dt = mimeinfo.received_date(msg) or mimeinfo.parse_date(msg.get("Date"))
    except Exception:  # noqa: BLE001 - any garbage falls through to mtime
        dt = None
    if dt is None and mtime is not None:
        dt = datetime.fromtimestamp(mtime, tz=timezone.utc)
    return dt or datetime.now(timezone.utc)


def add_raw(store: MailStore, folder: Folder, raw: bytes, mtime: float | None = None,
            received: datetime | None = None, is_read: bool = False) -> object:
    meta = meta_from_raw(raw)
    return store.add_item(folder, raw=raw, received=received or received_for(raw, mtime), meta=meta, is_read=is_read)


def load_eml_dir(store: MailStore, mailbox: Mailbox, root: Path) -> int:
    """Top-level files go to Inbox; sub-folders become folders by path (``Inbox/Suppliers``)."""
    count = 0
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if looks_like_mail(path):
                entries.append(("Inbox" if rel == Path(".") else rel.as_posix(), path))
    # Received order within a folder = the order of the change log: sort by received time so
    # a sync sees mail in the order it arrived, like a real mailbox filled over time.
    loaded = []
    for folder_path, path in entries:
        raw = path.read_bytes()
        loaded.append((folder_path, raw, received_for(raw, path.stat().st_mtime)))
    loaded.sort(key=lambda x: x[2])
    for folder_path, raw, received in loaded:
        folder = mailbox.folder_by_path(folder_path, create=True)
        add_raw(store, folder, raw, received=received)
        count += 1
    return count


def split_mbox(data: bytes) -> list[bytes]:
    """Messages of an mbox file, exactly as stored (the ``From `` separator line removed,
    no ``>From`` un-escaping: the bytes between separators are the message)."""
    messages: list[bytes] = []
    starts = [m.start() for m in re.finditer(rb"(?:^|\n)From [^\n]*\n", data)]
    for i, start in enumerate(starts):
        line_end = data.index(b"\n", start + (1 if data[start:start + 1] == b"\n" else 0)) + 1
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        body = data[line_end:end]
        if i + 1 < len(starts) and body.endswith(b"\n"):
            body = body[:-1] if not body.endswith(b"\r\n") else body[:-2]
            body += b"\n"  # keep the message's own final newline; drop the separator blank line
        messages.append(body)
    if not starts and data.strip():
        messages.append(data)
    return messages


def load_mbox(store: MailStore, mailbox: Mailbox, path: Path) -> int:
    data = path.read_bytes()
    mtime = path.stat().st_mtime
    inbox = mailbox.distinguished["inbox"]
    raws = split_mbox(data)
    items = sorted(((received_for(raw, mtime), raw) for raw in raws), key=lambda x: x[0])
    for received, raw in items:
        add_raw(store, inbox, raw, received=received)
    return len(raws)


def load_path(store: MailStore, mailbox: Mailbox, path: Path) -> int:
    if path.is_dir():
        return load_eml_dir(store, mailbox, path)
    if path.is_file():
        if path.suffix.lower() == ".eml":
            add_raw(store, mailbox.distinguished["inbox"], path.read_bytes(), mtime=path.stat().st_mtime)
            return 1
        return load_mbox(store, mailbox, path)
    raise FileNotFoundError(f"mailbox source {path} does not exist")


def load_mailboxes(store: MailStore, specs: list[str], seed: int) -> dict[str, int]:
    """Load ``--mailbox`` specs (``ADDRESS=PATH`` | ``ADDRESS=generate:N`` | ``ADDRESS=``) into ``store``:
    {address: messages loaded}. Both test servers use this, so the same spec gives the same mail (same
    bytes, received times, folders) on both. Generated mailboxes also get copies of mail sent among them."""
    from . import generate

    parsed = []
    for spec in specs:
        address, sep, source = spec.partition("=")
        if not sep or not address.strip():
            raise ValueError(f"--mailbox must be ADDRESS=PATH or ADDRESS=generate:N, got {spec!r}")
        parsed.append((address.strip(), source.strip()))
    generated = [a for a, s in parsed if s.startswith("generate:")]
    for address, _source in parsed:
        store.add_mailbox(address)
    loaded: dict[str, int] = {}
    for address, source in parsed:
        mbx = store.get_mailbox(address)
        assert mbx is not None
        if source.startswith("generate:"):
            n = int(source.split(":", 1)[1])
            peers = tuple(a for a in generated if a.lower() != address.lower())
            folders: dict[str, Folder] = {}
            for g in generate.generate_messages(n, seed, address, peers):
                folder = folders.get(g.folder) or folders.setdefault(g.folder, mbx.folder_by_path(g.folder, create=True))
                store.add_item(folder, render=g.render, received=g.received, meta_factory=g.meta, is_read=g.index % 3 == 0)
                for peer in g.copies:
                    pm = store.get_mailbox(peer)
                    if pm is not None:
                        store.add_item(pm.distinguished["inbox"], render=g.render, received=g.received,
                                       meta_factory=g.meta, is_read=False)
            loaded[address] = n
        elif source:
            loaded[address] = load_path(store, mbx, Path(source).expanduser())
        else:
            loaded[address] = 0
    return loaded
