"""Is the process that wrote a record (a run's owner, a lease holder) still alive? Only processes of
this host can be judged; a pid that exists with another start time was reused by another process."""

from __future__ import annotations

import os
import socket


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def is_gone(host: str | None, pid: int, start: str | None) -> bool:
    """True only when ``pid`` of this host certainly no longer runs the process that started at
    ``start`` (None: unknown start, judged by existence alone is not enough: False unless gone)."""
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, another user's
    started = process_start(pid)
    return start is not None and started is not None and started != start
