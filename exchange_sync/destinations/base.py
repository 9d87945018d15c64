"""The destination contract of the load step: what the pipeline asks of any destination kind.

A kind implements ``Destination`` in its own module and adds one line to ``destinations/registry.py``.
Every kind commits a page's folder watermark and usage to the run's *checkpoints* database
(``registry.checkpoints_url``) only once the page's comments are loaded, so a watermark never runs
ahead of what was loaded:

* embedded store (``store``): the checkpoints database IS the comment store, and comments, watermark
  and usage commit in ONE transaction: a crash can neither lose a page nor bill it twice;
* remote (``reinfer``, ``reinfer_bucket``): load, then commit watermark and usage to the state
  database; a crash in between replays the page, which the destination answers as ``unchanged``
  (idempotent: loads replace by id, a ledger keeps text frozen and counts honest).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from exchange_sync.comment import ApiComment
from exchange_sync.store import FolderState, StateStore, SyncCounts, UsageKey


@runtime_checkable
class Destination(Protocol):
    """One destination of one run (built by ``registry.open_destination``), shared by its mailbox threads."""

    def load(self, comments: Sequence[ApiComment], *, folder_state: FolderState | None, usage: UsageKey,
             staged_path: str | None) -> SyncCounts:
        """Load a page's comments (frozen text: an existing comment keeps its first-synced text, only its
        metadata changes; a replay changes nothing), then commit ``folder_state`` (None: a backfill or a
        replay, no watermark) and the ``usage`` of the counts. ``staged_path``: the page's staged batch,
        for kinds that send the raw MIME."""

    def close(self) -> None: ...


def commit_after_load(checkpoints: StateStore, counts: SyncCounts, folder_state: FolderState | None,
                      usage: UsageKey) -> SyncCounts:
    """A remote kind's commit, once its load was accepted: the watermark, then the usage of ``counts``."""
    if folder_state is not None:
        checkpoints.set_folder_state(folder_state)
    checkpoints.record_usage(usage, counts)
    return counts
