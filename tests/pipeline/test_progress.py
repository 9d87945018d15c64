"""A run reports its progress (what the CLI's progress bar shows): an estimate up front, items as loaded."""

from __future__ import annotations

from exchange_sync.pipeline import progress as run_progress

from .conftest import make_config


class Recorder:
    def __init__(self) -> None:
        self.expected = 0
        self.done = 0

    def expect(self, items: int) -> None:
        self.expected += items

    def advance(self, items: int) -> None:
        self.done += items


def test_progress_is_reported_for_the_whole_run(ews, sync, tmp_path):
    srv = ews(["ap@example.com=generate:60", "support@example.com=generate:20"])
    data = make_config(srv, tmp_path, ["ap@example.com", "support@example.com"], batch_size=16)
    recorder = Recorder()
    run_progress.install(recorder)
    try:
        summary, code = sync(data)
        assert code == 0
        assert recorder.done == summary["items"] > 0
        assert recorder.expected >= summary["items"]  # folder sizes; nothing synced before
        second = Recorder()
        run_progress.install(second)
        sync(data)
        assert second.done == 0 and second.expected == 0  # everything synced: nothing left to expect
    finally:
        run_progress.install(None)
