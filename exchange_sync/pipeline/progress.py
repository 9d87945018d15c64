"""Progress of a run, for whoever is watching (the CLI's progress bar).

A process-wide sink rather than a parameter: the mailbox threads run inside Prefect tasks, and a
callable passed as a task parameter would be part of the task's inputs. The sink is optional;
with none installed, reporting costs nothing.
"""

from __future__ import annotations

import threading
from typing import Protocol


class ProgressSink(Protocol):
    def expect(self, items: int) -> None:
        """More work is known to be coming (an estimate: items in folders about to be synced)."""

    def advance(self, items: int) -> None:
        """This many items were extracted, transformed and loaded."""


_sink: ProgressSink | None = None
_lock = threading.Lock()


def current() -> ProgressSink | None:
    """The sink installed now (a flow chains its own in front of the CLI's progress bar)."""
    return _sink


def install(sink: ProgressSink | None) -> None:
    global _sink
    with _lock:
        _sink = sink


def expect(items: int) -> None:
    sink = _sink
    if sink is not None and items > 0:
        sink.expect(items)


def advance(items: int) -> None:
    sink = _sink
    if sink is not None and items > 0:
        sink.advance(items)
