"""What runs inside a transform worker process: a staged batch in, its comments file out.

Kept apart from the pipeline's steps so a worker imports only the transform, Arrow and the staging
area: no pandas, exchangelib, SQLAlchemy or Prefect. That halves a worker's start-up (1.4 -> 0.7 s
of CPU, most of what is left is the language model), which on 2 CPUs is time taken from the
extraction it overlaps (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field

import pyarrow as pa

from exchange_sync.staging import Staging
from exchange_sync.transform.meta import Rejection

_staging: Staging | None = None  # per worker process


@dataclass
class TransformedBatch:
    """A transformed batch, as it crosses the process boundary and goes on to the load step: where it came
    from, its comments file (None: no comment), their count and the rejections (transform's
    ``Rejection``: the store's model would pull SQLAlchemy into the worker; the load converts them)."""

    staged_path: str
    comments_path: str | None
    comments: int
    rejections: list[Rejection] = field(default_factory=list)


def comments_path_for(staged_path: str) -> str:
    return staged_path.removesuffix(".parquet") + ".comments"


# Rows of a staged batch in memory at once in a worker (a page of large mail is never read whole).
TRANSFORM_ROWS = 16


def transform_staged(staging: Staging, staged_path: str) -> TransformedBatch:
    """Staged Parquet -> comments written next to it (Parquet of API JSON, one row per comment)."""
    from exchange_sync.transform import transform_table

    comments, rejections = [], []
    for part in staging.iter_batch(staged_path, TRANSFORM_ROWS):
        done, refused = transform_table(part)
        comments += done
        rejections += refused
    if not comments:
        return TransformedBatch(staged_path=staged_path, comments_path=None, comments=0, rejections=rejections)
    out = comments_path_for(staged_path)
    table = pa.table(
        {
            "id": [c.id for c in comments],
            "comment": [json.dumps(c.to_api(), ensure_ascii=False) for c in comments],
        }
    )
    staging.write_table(table, out)
    return TransformedBatch(staged_path=staged_path, comments_path=out, comments=len(comments), rejections=rejections)


def init_worker(staging_url: str, parent_pid: int) -> None:
    global _staging
    from exchange_sync.memory import tune_arrow_pool, tune_malloc

    tune_malloc()
    tune_arrow_pool()
    _die_with_parent(parent_pid)
    _staging = Staging(staging_url)


def _die_with_parent(parent_pid: int) -> None:
    """A worker must not outlive a parent killed with SIGKILL (crash, OOM kill): it would wait on its
    call queue forever. Linux: PR_SET_PDEATHSIG; everywhere: a watchdog thread on getppid()."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        import time

        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def warm_up() -> int:
    """Import the transform and load the language model now, while the first page is fetched."""
    from exchange_sync.transform import email_to_comment

    # Long enough for language detection: the model (~0.4 s to load) is loaded on first use.
    body = b"This message warms up the transform worker before the first page arrives.\r\n"
    email_to_comment(b"From: a@example.com\r\nSubject: warm-up\r\nMessage-ID: <w@x>\r\n\r\n" + body)
    return os.getpid()


def transform_in_worker(staged_path: str) -> TransformedBatch:
    assert _staging is not None
    return transform_staged(_staging, staged_path)
