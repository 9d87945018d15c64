"""The destination contract of the load step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from exchange_sync.comment import Comment
from exchange_sync.store import SyncCounts


@runtime_checkable
class Destination(Protocol):
    """Loads comments with the semantics of the public ``POST .../sync`` endpoint.

    ``freeze_text=True`` (the pipeline): an existing comment keeps its first-synced subject, body,
    signature, language and timestamp; only metadata changes. ``freeze_text=False``: replace.
    Replaying a batch must change nothing (all ``unchanged``).
    """

    def sync(self, comments: Sequence[Comment], *, freeze_text: bool = True) -> SyncCounts: ...
