"""Named points where a test can kill the pipeline process, to prove crash safety.

``EXCHANGE_SYNC_CRASH_AT=<point>[:<n>]`` makes the process SIGKILL itself the n-th time (default 1st)
it reaches ``<point>``: no cleanup, no finally blocks, exactly like ``kill -9`` or an OOM kill.
Unset (always, in production) it costs one dictionary lookup. Points, in pipeline order:

- ``after_sync_page``: a SyncFolderItems page was read, nothing fetched yet
- ``after_stage``: a batch was fetched and staged as Parquet
- ``after_transform``: its comments were written next to it
- ``before_load``: about to load (and commit the watermark with it)
- ``after_load``: loaded and committed, before the next page
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "EXCHANGE_SYNC_CRASH_AT"
POINTS = ("after_sync_page", "after_stage", "after_transform", "before_load", "after_load")

_hits: Counter[str] = Counter()
_lock = threading.Lock()


def crashpoint(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    with _lock:
        _hits[name] += 1
        hit = _hits[name]
    if hit == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
