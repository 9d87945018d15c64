"""The batch form used by the pipeline: a staged DataFrame in, comments and rejections out."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from exchange_sync.comment import Comment

from .build import email_to_comment
from .meta import ExchangeMeta, Rejection

if TYPE_CHECKING:
    import pandas as pd

STAGED_COLUMNS = (
    "mailbox",
    "folder_id",
    "folder_path",
    "item_id",
    "change_key",
    "change_type",
    "internet_message_id",
    "datetime_received",
    "conversation_id",
    "size",
    "mime_content",
)
_REQUIRED = ("mime_content",)


def _text(value: Any) -> str | None:
    """A nullable string column value (pandas gives None, NaN or pd.NA for nulls)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
    except (TypeError, ValueError):
        pass
    if not isinstance(value, datetime):
        return None
    # Staged times are UTC (timestamp[us, UTC]); a naive one is taken as UTC as well.
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def _bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        # Should not happen with the contract (binary column), but do not lose the message.
        return value.encode("utf-8", "surrogateescape")
    return None


def transform_frame(df: "pd.DataFrame") -> tuple[list[Comment], list[Rejection]]:
    """Transform every row of a staged batch; rows stay in order; one outcome per row.

    Pure and deterministic. Missing optional columns are treated as nulls; a frame without
    ``mime_content`` is a programming error (the staging contract) and raises ``KeyError``.
    """
    missing = [column for column in _REQUIRED if column not in df.columns]
    if missing:
        raise KeyError(f"staged batch lacks column(s) {missing}; expected {list(STAGED_COLUMNS)}")
    comments: list[Comment] = []
    rejections: list[Rejection] = []
    columns = list(df.columns)
    for row in df.itertuples(index=False, name=None):
        record = dict(zip(columns, row))
        meta = ExchangeMeta(
            mailbox=_text(record.get("mailbox")),
            folder_path=_text(record.get("folder_path")),
            datetime_received=_when(record.get("datetime_received")),
            conversation_id=_text(record.get("conversation_id")),
            item_id=_text(record.get("item_id")),
            internet_message_id=_text(record.get("internet_message_id")),
        )
        raw = _bytes(record.get("mime_content"))
        outcome = email_to_comment(raw, meta) if raw is not None else None
        if outcome is None:
            rejections.append(
                Rejection(
                    reason="no MIME content in the staged row",
                    item_id=meta.item_id,
                    mailbox=meta.mailbox,
                    folder_path=meta.folder_path,
                    message_id=meta.internet_message_id,
                )
            )
        elif isinstance(outcome, Rejection):
            rejections.append(outcome)
        else:
            comments.append(outcome)
    return comments, rejections
