"""``SqlStore``: the comment store and the state database over one engine (``CommentStore`` + ``StateStore``).

One object for both because the embedded destination's database holds both: a page's comments, its
folder's watermark and its usage commit in one transaction there. Code that needs only one concern
takes the facade it needs (``Runtime.state`` and ``Runtime.checkpoints`` are ``StateStore``s).
"""

from __future__ import annotations

from exchange_sync.store.comment_store import CommentStore
from exchange_sync.store.state_store import StateStore


class SqlStore(CommentStore, StateStore):
    """See the module docstring; ``url`` is a SQLAlchemy URL (``sqlite:///path`` or ``postgresql+psycopg://``)."""
