"""Attachment content, opt-in per mailbox (``mailboxes[].attachments``; docs/destinations.md).

- ``policy``: which attachments a mailbox stores (size cap, content types, inline, attached messages);
- ``store``: the content-addressed store (sha256) next to staging, local or any fsspec URL;
- ``load``: the loader-side step that takes the bytes from the staged MIME and sets the comments'
  ``attachment_reference``.
"""

from exchange_sync.attachments.policy import AttachmentPolicy
from exchange_sync.attachments.store import AttachmentStore, attachments_url, is_sha256

__all__ = ["AttachmentPolicy", "AttachmentStore", "attachments_url", "is_sha256"]
