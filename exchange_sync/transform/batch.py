"""The batch form used by the pipeline: a staged batch (Arrow table or DataFrame) in, comments and
rejections out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from exchange_sync.comment import Comment
from exchange_sync.staging import STAGED_SCHEMA

from .build import email_to_comment
from .meta import ExchangeMeta, Rejection

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

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
    # None, NaN and pandas' NaT are not datetimes; a pandas Timestamp is one (a subclass).
    if not isinstance(value, datetime):
        return None
    if type(value) is not datetime and hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
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


def _check_columns(columns: Iterable[str]) -> list[str]:
    columns = list(columns)
    missing = [column for column in _REQUIRED if column not in columns]
    if missing:
        raise KeyError(f"staged batch lacks column(s) {missing}; expected {STAGED_SCHEMA.names}")
    return columns


def transform_frame(df: "pd.DataFrame") -> tuple[list[Comment], list[Rejection]]:
    """Transform every row of a staged batch; rows stay in order; one outcome per row.

    Pure and deterministic. Missing optional columns are treated as nulls; a frame without
    ``mime_content`` is a programming error (the staging contract) and raises ``KeyError``.
    """
    columns = _check_columns(df.columns)
    return _transform_records(dict(zip(columns, row)) for row in df.itertuples(index=False, name=None))


def transform_table(table: "pa.Table") -> tuple[list[Comment], list[Rejection]]:
    """``transform_frame`` for an Arrow table (what the transform workers read: no pandas there)."""
    _check_columns(table.column_names)
    # Rows are materialised a few at a time: a whole page as Python objects is another copy of its MIME.
    return _transform_records(record for batch in table.to_batches(max_chunksize=16) for record in batch.to_pylist())


def _transform_records(records: Iterable[Mapping[str, Any]]) -> tuple[list[Comment], list[Rejection]]:
    comments: list[Comment] = []
    rejections: list[Rejection] = []
    for record in records:
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
