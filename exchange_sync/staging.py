"""Staged batches: one Parquet file per extracted batch, on a local folder or any fsspec URL.

Layout: ``<staging>/<integration>/<mailbox>/<folder-key>/<batch>.parquet`` where the folder key is
a short hash of the EWS folder id (ids are long base64 strings with ``/`` and ``+``). A batch is
written to a temporary name and renamed, so a crash never leaves a half-written file that a
replay would read. Batch names sort in extraction order (a UTC timestamp plus a sequence number),
which is the order a replay must load them in.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

if TYPE_CHECKING:
    import pandas as pd

# Columns of a staged batch, exactly as in docs/architecture.md.
STAGED_SCHEMA = pa.schema(
    [
        pa.field("mailbox", pa.string(), nullable=False),
        pa.field("folder_id", pa.string(), nullable=False),
        pa.field("folder_path", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("change_key", pa.string(), nullable=False),
        pa.field("change_type", pa.string(), nullable=False),
        pa.field("internet_message_id", pa.string(), nullable=True),
        pa.field("datetime_received", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("conversation_id", pa.string(), nullable=True),
        pa.field("size", pa.int64(), nullable=True),
        pa.field("mime_content", pa.binary(), nullable=False),
    ]
)


_counter = itertools.count()
_counter_lock = threading.Lock()
# Batch names start with their UTC staging time in this format: they sort in extraction order and
# ``prune`` reads their age from the name (no mtime on object storage).
BATCH_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
# <stamp>-<seq>-<id>.parquet, its .comments file, or the .<name>.tmp of an interrupted write.
_BATCH_NAME_RE = re.compile(r"^\.?(\d{8}T\d{12}Z)-\d+-[0-9a-f]+\.(?:parquet|comments)(?:\.tmp)?$")
# Every staged value worth its bytes is unique (a message's MIME, a comment's JSON): Parquet's
# default dictionary encoding hashes each one before giving up, and min/max statistics scan them,
# for nothing. Without both a 24 MB batch writes in 52 ms instead of 72 and reads in 25 ms
# instead of 57, at the same size (docs/performance.md).
_PARQUET_OPTIONS = {"compression": "zstd", "use_dictionary": False, "write_statistics": False}


def _slices(parquet: pq.ParquetFile, rows: int) -> Iterator[pa.Table]:
    # Row group by row group (iter_batches would coalesce small row groups of large mail into one batch).
    for index in range(parquet.num_row_groups):
        group = parquet.read_row_group(index)
        for offset in range(0, group.num_rows, rows):
            yield group.slice(offset, rows).cast(STAGED_SCHEMA)
        del group


class BatchWriter:
    """``Staging.open_batch``: write parts, then the file appears under its final name (or not at all)."""

    def __init__(self, fs: fsspec.AbstractFileSystem, tmp: str, final: str) -> None:
        self.fs, self.tmp, self.path = fs, tmp, final
        self.rows = 0
        self._fh: Any = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        table = table.cast(STAGED_SCHEMA) if table.schema != STAGED_SCHEMA else table
        if self._writer is None:
            sink: Any = self.tmp
            if not _is_local(self.fs):
                sink = self._fh = self.fs.open(self.tmp, "wb")
            self._writer = pq.ParquetWriter(sink, STAGED_SCHEMA, **_PARQUET_OPTIONS)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.rows += table.num_rows

    def _close(self) -> bool:
        written = self._writer is not None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        return written

    def __enter__(self) -> "BatchWriter":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        written = self._close()
        if exc_type is None and written:
            self.fs.mv(self.tmp, self.path)
            return
        if written and self.fs.exists(self.tmp):
            self.fs.rm(self.tmp)
        if exc_type is None:  # nothing was written: there is no file
            self.path = ""


def folder_key(folder_id: str) -> str:
    return hashlib.sha256(folder_id.encode("utf-8")).hexdigest()[:16]


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return isinstance(fs, LocalFileSystem)


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._-]+", "_", part)


@dataclass(frozen=True)
class Staging:
    """A staging area rooted at ``url`` (a local path or an fsspec URL such as ``s3://bucket/prefix``)."""

    url: str

    def _fs(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, root = fsspec.core.url_to_fs(self.url)
        return fs, root.rstrip("/")

    def folder_dir(self, integration: str, mailbox: str, folder_id: str) -> str:
        _, root = self._fs()
        return f"{root}/{_safe(integration)}/{_safe(mailbox)}/{folder_key(folder_id)}"

    def write(self, table: pa.Table, integration: str, mailbox: str, folder_id: str) -> str:
        """Write one batch atomically; returns its path (in the filesystem's own form)."""
        with self.open_batch(integration, mailbox, folder_id) as batch:
            batch.write(table)
        return batch.path

    def open_batch(self, integration: str, mailbox: str, folder_id: str) -> "BatchWriter":
        """A batch written in parts (one Parquet row group each), renamed into place when the ``with``
        block ends without an error: a large page is staged without holding all its mail in memory."""
        fs, _ = self._fs()
        directory = self.folder_dir(integration, mailbox, folder_id)
        fs.makedirs(directory, exist_ok=True)
        with _counter_lock:
            seq = next(_counter)
        stamp = datetime.now(timezone.utc).strftime(BATCH_STAMP_FORMAT)
        name = f"{stamp}-{seq:06d}-{uuid.uuid4().hex[:8]}.parquet"
        return BatchWriter(fs, f"{directory}/.{name}.tmp", f"{directory}/{name}")

    def iter_batch(self, path: str, rows: int) -> Iterator[pa.Table]:
        """A staged batch ``rows`` at a time (one row group in memory at most, not the whole file)."""
        fs, _ = self._fs()
        if _is_local(fs):
            source: Any = pq.ParquetFile(path)
            yield from _slices(source, rows)
            return
        with fs.open(path, "rb") as fh:
            yield from _slices(pq.ParquetFile(fh), rows)

    def read(self, path: str) -> "pd.DataFrame":
        return self.read_batch(path).to_pandas()

    def read_batch(self, path: str) -> pa.Table:
        """A staged batch as an Arrow table of ``STAGED_SCHEMA``."""
        return self.read_table(path, schema=STAGED_SCHEMA)

    # A local staging folder is read and written by Arrow's own file I/O: through an fsspec file
    # object every read goes through Python (4x slower on a 16 MB batch, measured in
    # docs/performance.md). Remote filesystems keep fsspec.
    def write_table(self, table: pa.Table, path: str) -> None:
        fs, _ = self._fs()
        if _is_local(fs):
            pq.write_table(table, path, **_PARQUET_OPTIONS)
            return
        with fs.open(path, "wb") as fh:
            pq.write_table(table, fh, **_PARQUET_OPTIONS)

    def read_table(self, path: str, schema: pa.Schema | None = None) -> pa.Table:
        fs, _ = self._fs()
        if _is_local(fs):
            return pq.read_table(path, schema=schema)
        with fs.open(path, "rb") as fh:
            return pq.read_table(fh, schema=schema)

    def batches(self, integration: str, mailbox: str | None = None) -> Iterator[str]:
        """Staged batches of an integration (optionally one mailbox), oldest first."""
        fs, root = self._fs()
        base = f"{root}/{_safe(integration)}"
        if mailbox is not None:
            base += f"/{_safe(mailbox)}"
        if not fs.exists(base):
            return iter(())
        paths = [p for p in fs.find(base) if p.endswith(".parquet") and not p.rsplit("/", 1)[-1].startswith(".")]
        return iter(sorted(paths, key=lambda p: p.rsplit("/", 1)[-1]))

    def remove(self, path: str) -> None:
        fs, _ = self._fs()
        fs.rm(path)

    def prune(self, integration: str, older_than: datetime) -> int:
        """Remove the integration's batches staged before ``older_than`` (by the UTC time in their
        name, so it works the same on object storage), with their comments files and any
        temporary file left by a crash. Returns the number of batches removed."""
        fs, root = self._fs()
        base = f"{root}/{_safe(integration)}"
        if not fs.exists(base):
            return 0
        cutoff = older_than.astimezone(timezone.utc).strftime(BATCH_STAMP_FORMAT)
        doomed, batches = [], 0
        for path in fs.find(base):
            name = path.rsplit("/", 1)[-1]
            match = _BATCH_NAME_RE.match(name)
            if match and match.group(1) < cutoff:
                doomed.append(path)
                batches += name.endswith(".parquet") and not name.startswith(".")
        if doomed:
            fs.rm(doomed)
        return batches

