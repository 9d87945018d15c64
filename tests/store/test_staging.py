"""Staging: atomic batch files, read back as written, pruned by the time in their names."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pyarrow as pa

from exchange_sync.staging import BATCH_STAMP_FORMAT, Staging
from tests.support.staged import staged_table


def _table(n: int = 2) -> pa.Table:
    return staged_table([b"Subject: x\r\n\r\nbody"] * n)


def test_write_read_round_trip(tmp_path):
    staging = Staging(str(tmp_path / "staging"))
    path = staging.write(_table(3), "integ", "a@example.com", "folder-1")
    frame = staging.read(path)
    assert list(frame["item_id"]) == ["i0", "i1", "i2"]
    assert list(staging.batches("integ")) == [path]
    assert not [p for p in (tmp_path / "staging").rglob(".*.tmp")]  # written under a temporary name, renamed


def test_prune_removes_only_batches_older_than_the_cutoff(tmp_path):
    root = tmp_path / "staging"
    staging = Staging(str(root))
    old = staging.write(_table(), "integ", "a@example.com", "f")
    comments_of_old = old.removesuffix(".parquet") + ".comments"
    with open(comments_of_old, "wb") as fh:
        fh.write(b"x")
    folder = old.rsplit("/", 1)[0]
    crash_leftover = f"{folder}/.20000101T000000000000Z-000001-deadbeef.parquet.tmp"
    with open(crash_leftover, "wb") as fh:
        fh.write(b"partial")
    unrelated = f"{folder}/notes.txt"
    with open(unrelated, "w") as fh:
        fh.write("kept: not a batch")
    other_integration = staging.write(_table(), "other", "a@example.com", "f")

    cutoff = datetime.now(timezone.utc) + timedelta(seconds=1)
    newer = staging.write(_table(), "integ", "a@example.com", "f")  # a batch staged after the cutoff
    newer_name = newer.rsplit("/", 1)[-1]
    renamed = f"{folder}/{(cutoff + timedelta(days=1)).strftime(BATCH_STAMP_FORMAT)}{newer_name[22:]}"
    os.rename(newer, renamed)

    assert staging.prune("integ", cutoff) == 1
    left = {p.name for p in root.rglob("*") if p.is_file()}
    assert old.rsplit("/", 1)[-1] not in left and comments_of_old.rsplit("/", 1)[-1] not in left
    assert crash_leftover.rsplit("/", 1)[-1] not in left
    assert {"notes.txt", renamed.rsplit("/", 1)[-1], other_integration.rsplit("/", 1)[-1]} <= left
    assert list(staging.batches("integ")) == [renamed]
    assert staging.prune("never-synced", cutoff) == 0


def test_keep_days_default_and_none():
    from exchange_sync.config import StagingConfig

    assert StagingConfig().keep_days == 7
    assert StagingConfig(keep_days=None).keep_days is None


def test_staged_files_skip_dictionary_encoding_and_statistics(tmp_path):
    # Staged values are unique blobs: dictionary pages and min/max statistics only cost time.
    import pyarrow.parquet as pq

    staging = Staging(str(tmp_path / "staging"))
    path = staging.write(_table(3), "integ", "a@example.com", "f")
    meta = pq.ParquetFile(path).metadata
    columns = [meta.row_group(0).column(i) for i in range(meta.num_columns)]
    assert all(not c.has_dictionary_page and c.statistics is None for c in columns)
    assert {c.compression for c in columns} == {"ZSTD"}
