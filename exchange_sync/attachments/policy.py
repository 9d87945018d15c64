"""Which attachments a mailbox stores: ``AttachmentPolicy.reason_to_skip`` (None = store it)."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from exchange_sync.config import AttachmentsConfig

ITEM_ATTACHMENT_TYPE = "message/rfc822"


@dataclass(frozen=True)
class AttachmentPolicy:
    max_bytes: int
    content_types: tuple[str, ...]
    include_inline: bool
    item_attachments: str  # "eml" | "skip"

    @classmethod
    def of(cls, config: AttachmentsConfig) -> "AttachmentPolicy | None":
        """The policy of a mailbox, or None when attachment sync is off (nothing is stored, no cost)."""
        if not config.sync:
            return None
        return cls(config.max_bytes, tuple(config.content_types), config.include_inline, config.item_attachments)

    def allows_type(self, content_type: str) -> bool:
        ctype = content_type.strip().lower()
        return any(fnmatchcase(ctype, pattern) for pattern in self.content_types)

    def reason_to_skip(self, content_type: str, size: int, inline: bool) -> str | None:
        """Why an attachment is listed but not stored (a short reason), or None to store it."""
        if inline and not self.include_inline:
            return "inline"
        if content_type.lower() == ITEM_ATTACHMENT_TYPE and self.item_attachments == "skip":
            return "attached message"
        if not self.allows_type(content_type):
            return "content type not allowed"
        if size > self.max_bytes:
            return f"over max_bytes ({size} > {self.max_bytes})"
        return None
