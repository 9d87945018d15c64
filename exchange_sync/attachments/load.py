"""The loader-side step: attachment bytes from the staged MIME into the store, references into the comments.

The bytes are already in the MIME that was fetched (EWS ``MimeContent``, Graph ``$value``) and staged,
so nothing is fetched from Exchange a second time. For a mailbox with ``attachments.sync``, each staged
row of the batch is walked once more by the transform's own MIME walker (``parse_mail`` with a sink):
the attachments come in the same order, with the same names, sizes and hashes as the comment's
``attachments`` entries, so entry ``i`` of the comment is attachment ``i`` of the walk. Rows are read
``ROWS_AT_ONCE`` at a time; each attachment's decoded bytes exist once and are written in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exchange_sync.attachments.policy import ITEM_ATTACHMENT_TYPE, AttachmentPolicy
from exchange_sync.attachments.store import AttachmentStore
from exchange_sync.comment import MAX_ATTACHMENTS
from exchange_sync.staging import Staging
from exchange_sync.transform.mime import AttachmentInfo, parse_mail

ROWS_AT_ONCE = 16
STORED_PROPERTY = "number:Attachments Stored"
NOT_STORED_PROPERTY = "string:Attachments Not Stored"
_ITEM_ID_PROPERTY = "string:Item ID"


@dataclass
class AttachmentCounts:
    written: int = 0  # new files in the store
    referenced: int = 0  # attachment entries that now carry a reference (also already stored ones)
    skipped: int = 0  # listed, not stored (reason in the comment's NOT_STORED_PROPERTY)
    by_comment: dict[str, list[str | None]] = field(default_factory=dict)


def _walk_row(raw: bytes, policy: AttachmentPolicy, store: AttachmentStore, counts: AttachmentCounts
              ) -> list[tuple[str | None, str | None]]:
    """(reference or None, reason or None) per attachment of one email, in the comment's order."""
    out: list[tuple[str | None, str | None]] = []

    def sink(info: AttachmentInfo, data: bytes) -> None:
        if len(out) >= MAX_ATTACHMENTS:
            return  # the comment lists at most 128 attachments; the others are not stored either
        reason = policy.reason_to_skip(info.content_type, info.size, info.inline)
        if reason is not None:
            out.append((None, reason))
            return
        name = info.name
        if info.content_type == ITEM_ATTACHMENT_TYPE and not name.lower().endswith(".eml"):
            name += ".eml"
        if store.put(info.sha256, data, content_type=info.content_type, name=name):
            counts.written += 1
        out.append((info.sha256, None))

    parse_mail(raw, sink=sink)
    return out


def _apply(comment: dict[str, Any], found: list[tuple[str | None, str | None]], counts: AttachmentCounts) -> None:
    entries = comment.get("attachments") or []
    skipped: list[str] = []
    stored = 0
    for entry, (reference, reason) in zip(entries, found):
        if reference is not None and entry.get("content_hash") == reference:
            entry["attachment_reference"] = reference
            stored += 1
        elif reason is not None:
            skipped.append(f"{entry.get('name')}: {reason}")
    counts.referenced += stored
    counts.skipped += len(skipped)
    properties = comment.setdefault("user_properties", {})
    properties[STORED_PROPERTY] = stored
    if skipped:
        properties[NOT_STORED_PROPERTY] = "; ".join(skipped)[:4096]


def attach_content(staging: Staging, staged_path: str, comments: list[dict[str, Any]],
                   policy: AttachmentPolicy, store: AttachmentStore) -> AttachmentCounts:
    """Store the attachments of a staged batch's emails and set the references in ``comments`` (in place)."""
    counts = AttachmentCounts()
    by_item: dict[str, dict[str, Any]] = {}
    for comment in comments:
        item_id = (comment.get("user_properties") or {}).get(_ITEM_ID_PROPERTY)
        if isinstance(item_id, str) and comment.get("attachments"):
            by_item[item_id] = comment
    if not by_item:
        return counts
    for table in staging.iter_batch(staged_path, ROWS_AT_ONCE):
        items = table.column("item_id").to_pylist()
        for index, item_id in enumerate(items):
            comment = by_item.get(item_id)
            if comment is None:
                continue
            raw = table.column("mime_content")[index].as_py()
            _apply(comment, _walk_row(raw, policy, store, counts), counts)
            del raw
        del table
    return counts
