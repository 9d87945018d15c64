"""Folder tree -> the mail folders to sync (paths, class filter, default skips, allow/deny lists). Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .models import FolderInfo

# Well-known folders asked for by DistinguishedFolderId in discovery, so FolderInfo.distinguished_id is
# known without relying on the server returning DistinguishedFolderId. Real Exchange validates a request
# against its own schema and refuses the WHOLE request (ErrorSchemaValidation) for one value it does not
# know, so each value is asked only of versions that have it (Microsoft's DistinguishedFolderId reference
# and the MS-OXWS schemas):
WELL_KNOWN_2007 = ("inbox", "sentitems", "deleteditems", "junkemail", "drafts", "outbox")  # Exchange 2007+
WELL_KNOWN_2013 = ("syncissues", "conflicts", "localfailures", "serverfailures", "conversationhistory")
WELL_KNOWN_ONLINE = ("archive",)  # Exchange Online's schema only (not in the Exchange 2016 spec)
WELL_KNOWN = WELL_KNOWN_2007 + WELL_KNOWN_2013 + WELL_KNOWN_ONLINE  # Graph's well-known names cover them all

ONLINE_BUILD = (15, 20)  # Exchange Online reports 15.20+; Exchange 2013 is 15.0, 2016 15.1, 2019 15.2


def well_known_for(build: tuple[int, int] | None, api_version: str | None) -> tuple[str, ...]:
    """The optional (post-2007) DistinguishedFolderIds a server of this version knows.

    ``build`` is the (major, minor) the server reported in ServerVersionInfo; None when it has not answered
    yet, in which case only the RequestServerVersion in use (``api_version``) is known, and Exchange Online
    cannot be told apart from Exchange 2016/2019 (no ``archive``)."""
    if build is not None:
        if build >= ONLINE_BUILD:
            return WELL_KNOWN_2013 + WELL_KNOWN_ONLINE
        return WELL_KNOWN_2013 if build >= (15, 0) else ()
    if api_version and api_version.startswith(("Exchange2013", "Exchange2016", "Exchange2019")):
        return WELL_KNOWN_2013
    return ()


# Mail-class folders skipped by default, with their sub-folders: not correspondence (Outlook's sync
# bookkeeping, Skype/Teams transcripts, unsent drafts, the transient Outbox). Naming one of them (or a
# path under it) in the allowlist brings it back.
DEFAULT_SKIPPED = frozenset({"drafts", "outbox", "syncissues", "conflicts", "localfailures", "serverfailures",
                             "conversationhistory"})

# FolderClass values that are IPF.Note sub-classes but not mail.
NON_MAIL_NOTE_CLASSES = frozenset({"ipf.note.outlookhomepage"})  # RSS Feeds


@dataclass(frozen=True)
class RawFolder:
    folder_id: str
    change_key: str | None
    parent_id: str | None
    display_name: str
    folder_class: str | None
    is_search_folder: bool
    total_count: int | None


def is_mail_class(folder_class: str | None) -> bool:
    """IPF.Note and IPF.Note.* (a folder without a class is treated as mail, as Outlook does)."""
    if not folder_class:
        return True
    fc = folder_class.strip().casefold()
    if fc in NON_MAIL_NOTE_CLASSES:
        return False
    return fc == "ipf.note" or fc.startswith("ipf.note.")


def _under(path: str, prefix: str) -> bool:
    p, q = path.casefold(), prefix.casefold()
    return p == q or p.startswith(q + "/")


def build_folder_infos(
    root_id: str, raw: Iterable[RawFolder], distinguished: dict[str, str]
) -> list[FolderInfo]:
    """Paths for every folder reachable from ``root_id`` (the message folder root), all classes."""
    by_id = {f.folder_id: f for f in raw}
    name_of_id = {fid: name for name, fid in distinguished.items()}
    paths: dict[str, str | None] = {}

    def path_of(fid: str, depth: int = 0) -> str | None:
        if fid in paths:
            return paths[fid]
        f = by_id.get(fid)
        if f is None or depth > 256:  # not under the root (or a cycle in a broken response)
            return None
        if f.parent_id == root_id:
            result: str | None = f.display_name
        else:
            parent = path_of(f.parent_id, depth + 1) if f.parent_id else None
            result = None if parent is None else f"{parent}/{f.display_name}"
        paths[fid] = result
        return result

    infos = []
    for f in by_id.values():
        path = path_of(f.folder_id)
        if path is None or f.is_search_folder:
            continue
        infos.append(
            FolderInfo(
                folder_id=f.folder_id,
                path=path,
                display_name=f.display_name,
                folder_class=f.folder_class or "",
                distinguished_id=name_of_id.get(f.folder_id),
                change_key=f.change_key,
                parent_id=f.parent_id,
                total_count=f.total_count,
            )
        )
    infos.sort(key=lambda i: i.path.casefold())
    return infos


def select_mail_folders(
    infos: Sequence[FolderInfo], allowlist: Sequence[str] | None, denylist: Sequence[str]
) -> list[FolderInfo]:
    """Mail folders only; default skips unless explicitly allowlisted; allow/deny by path prefix, case-insensitive.
    The denylist wins over the allowlist."""
    skipped_roots = [i.path for i in infos if i.distinguished_id in DEFAULT_SKIPPED]
    selected = []
    for info in infos:
        if not is_mail_class(info.folder_class):
            continue
        if any(_under(info.path, d) for d in denylist):
            continue
        if allowlist is not None and not any(_under(info.path, a) for a in allowlist):
            continue
        skipped_by = [r for r in skipped_roots if _under(info.path, r)]
        if skipped_by:
            # Brought back only by an allowlist entry that names the skipped folder or something inside it.
            named = allowlist is not None and any(
                _under(a, r) and _under(info.path, a) for a in allowlist for r in skipped_by
            )
            if not named:
                continue
        selected.append(info)
    return selected
