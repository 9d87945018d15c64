"""Extraction overlapped with transform and load: pages still load in order, each load commits exactly
its own page's sync state, and a kill -9 at any crash point, followed by a rerun, gives the store of a
clean run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from exchange_sync.config import parse_config
from exchange_sync.pipeline import steps as plain
from exchange_sync.pipeline.steps import Steps
from exchange_sync.pipeline.crashpoints import ENV as CRASH_ENV
from exchange_sync.pipeline.runtime import checkpoint_store

from .conftest import PASSWORD_ENV, all_comments, make_config
from tests.support.performance import run_plain

ROOT = Path(__file__).resolve().parents[2]


class RecordingSteps:
    """The plain steps, recording the order of extractions and loads and the watermark at each load
    (``table()``: the ``Steps`` that ``sync_mailbox`` takes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.extracted: list[tuple[str, str | None]] = []  # (folder path, state after the page)
        self.loaded: list[tuple[str, str | None]] = []
        self.committed_before_load: list[str | None] = []
        self.max_ahead = 0

    def table(self) -> Steps:
        return Steps(extract_page=self.extract_page, extract_refs=self.extract_refs,
                     transform_batch=self.transform_batch, load_batch=self.load_batch)

    def extract_page(self, rt, mailbox, folder, sync_state, start):
        page = plain.extract_page(rt, mailbox, folder, sync_state, start)
        with self.lock:
            self.extracted.append((folder.path, page.sync_state))
            ahead = sum(1 for p, _ in self.extracted if p == folder.path) - sum(
                1 for p, _ in self.loaded if p == folder.path)
            self.max_ahead = max(self.max_ahead, ahead)
        return page

    def extract_refs(self, rt, mailbox, folder, refs):
        return plain.extract_refs(rt, mailbox, folder, refs)

    def transform_batch(self, rt, staged_path):
        return plain.transform_batch(rt, staged_path)

    def load_batch(self, rt, mailbox, folder, batch, page, commit_state):
        saved = rt.checkpoints.get_folder_state(rt.config.name, mailbox, folder.folder_id)
        result = plain.load_batch(rt, mailbox, folder, batch, page, commit_state)
        after = rt.checkpoints.get_folder_state(rt.config.name, mailbox, folder.folder_id)
        assert after.sync_state == page.sync_state  # this load committed exactly this page's state
        with self.lock:
            self.committed_before_load.append(saved.sync_state if saved else None)
            self.loaded.append((folder.path, page.sync_state))
        return result


@pytest.mark.parametrize("workers", [0, 2])
def test_pages_load_in_extraction_order_and_commit_their_own_state(ews, tmp_path, workers):
    srv = ews(["a@example.com=generate:120"])
    data = make_config(srv, tmp_path, ["a@example.com"], batch_size=9, fetch_chunk_size=4, transform_workers=workers)
    steps = RecordingSteps()
    (report,) = run_plain(data, steps=steps.table())
    assert report.status == "ok", report.error
    assert steps.loaded == steps.extracted  # same pages, same order
    assert steps.max_ahead >= 2  # extraction really ran ahead of the load
    # Per folder, each load found the previous page's state committed (never a later one).
    by_folder: dict[str, list[str | None]] = {}
    for (path, state), before in zip(steps.loaded, steps.committed_before_load):
        previous = by_folder.setdefault(path, [None])
        assert before == previous[-1]
        previous.append(state)
    assert len(all_comments(data)) == 120 and report.items == 120


def test_the_next_folder_is_fetched_while_the_previous_one_loads(ews, tmp_path):
    # Extraction runs ahead across folder boundaries: while the first folder's first page is still
    # being loaded, the next folder's first page is already fetched (a per-folder pipeline would
    # drain the first folder before fetching anything of the next: this wait would time out).
    srv = ews(["a@example.com=generate:60"])
    data = make_config(srv, tmp_path, ["a@example.com"], batch_size=50, transform_workers=0)

    class WaitForTheNextFolder(RecordingSteps):
        def __init__(self) -> None:
            super().__init__()
            self.first_folder: str | None = None
            self.next_folder_fetched = threading.Event()
            self.waited: list[bool] = []

        def extract_page(self, rt, mailbox, folder, sync_state, start):
            page = super().extract_page(rt, mailbox, folder, sync_state, start)
            if self.first_folder is None:
                self.first_folder = folder.path
            elif folder.path != self.first_folder:
                self.next_folder_fetched.set()
            return page

        def load_batch(self, rt, mailbox, folder, batch, page, commit_state):
            if not self.waited:
                self.waited.append(self.next_folder_fetched.wait(30))
            return super().load_batch(rt, mailbox, folder, batch, page, commit_state)

    steps = WaitForTheNextFolder()
    (report,) = run_plain(data, steps=steps.table())
    assert report.status == "ok", report.error
    assert steps.waited == [True]
    assert steps.loaded == steps.extracted  # still every page, in extraction order
    assert len({path for path, _ in steps.loaded}) >= 3 and report.items == 60
    assert len(all_comments(data)) == 60


def test_backfill_pages_are_fetched_while_the_previous_page_loads(ews, tmp_path):
    srv = ews(["a@example.com=generate:60"])
    inbox_only = [{"email": "a@example.com", "folder_allowlist": ["Inbox"]}]
    data = make_config(srv, tmp_path, inbox_only, batch_size=10, transform_workers=0)

    class WaitForTheNextPage(RecordingSteps):
        def __init__(self) -> None:
            super().__init__()
            self.fetched = 0
            self.second_page_fetched = threading.Event()
            self.waited: list[bool] = []

        def extract_refs(self, rt, mailbox, folder, refs):
            page = super().extract_refs(rt, mailbox, folder, refs)
            self.fetched += 1
            if self.fetched == 2:
                self.second_page_fetched.set()
            return page

        def load_batch(self, rt, mailbox, folder, batch, page, commit_state):
            assert commit_state is False  # a backfill never moves a watermark
            if not self.waited:
                self.waited.append(self.second_page_fetched.wait(30))
            return plain.load_batch(rt, mailbox, folder, batch, page, commit_state)

    steps = WaitForTheNextPage()
    (report,) = run_plain(data, steps=steps.table(), mode="backfill")
    assert report.status == "ok", report.error
    assert steps.waited == [True] and steps.fetched >= 3
    clean = make_config(srv, tmp_path / "clean", inbox_only, batch_size=10)
    run_plain(clean)
    assert all_comments(data) == all_comments(clean)


def test_a_failing_load_stops_the_folder_at_the_last_loaded_page(ews, tmp_path):
    srv = ews(["a@example.com=generate:60"])
    inbox_only = [{"email": "a@example.com", "folder_allowlist": ["Inbox"]}]
    data = make_config(srv, tmp_path, inbox_only, batch_size=5, transform_workers=0)

    class FailThirdLoad(RecordingSteps):
        def load_batch(self, rt, mailbox, folder, batch, page, commit_state):
            if len(self.loaded) == 2:
                raise RuntimeError("load failed")
            return super().load_batch(rt, mailbox, folder, batch, page, commit_state)

    steps = FailThirdLoad()
    (report,) = run_plain(data, steps=steps.table())
    assert report.status == "failed" and "load failed" in report.error
    config = parse_config(data)
    store = checkpoint_store(config)
    states = {s.folder_path: s for s in store.list_folder_states(config.name)}
    store.close()
    assert states["Inbox"].sync_state == steps.loaded[-1][1] == steps.extracted[1][1]
    # The rerun finishes the folder from there: nothing lost.
    (report,) = run_plain(data)
    assert report.status == "ok"
    clean = make_config(srv, tmp_path / "clean", inbox_only, batch_size=5)
    run_plain(clean)
    assert set(all_comments(data)) == set(all_comments(clean))


def _run_in_subprocess(data: dict, crash_at: str | None, tmp_path: Path) -> int:
    config_file = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.json"
    config_file.write_text(json.dumps(data))
    script = (
        "import json, sys\n"
        "from tests.support.performance import run_plain\n"
        "if __name__ == '__main__':\n"
        "    reports = run_plain(json.load(open(sys.argv[1])))\n"
        "    sys.exit(0 if all(r.status == 'ok' for r in reports) else 1)\n"
    )
    env = {**os.environ, PASSWORD_ENV: os.environ[PASSWORD_ENV]}
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    # Output to a file, not a pipe: the test must not depend on every descendant closing its pipe ends.
    with open(tmp_path / "subprocess.log", "ab") as log:
        proc = subprocess.run([sys.executable, "-c", script, str(config_file)], cwd=ROOT, env=env, timeout=300,
                              stdout=log, stderr=subprocess.STDOUT)
    return proc.returncode


def test_transform_workers_exit_when_the_run_is_killed(ews, tmp_path, monkeypatch):
    import time
    import uuid

    srv = ews(["a@example.com=generate:30"])
    marker = uuid.uuid4().hex
    monkeypatch.setenv("EXSYNC_TEST_MARKER", marker)  # inherited by the run and its workers (not the server)
    data = make_config(srv, tmp_path, ["a@example.com"], batch_size=5, transform_workers=2)
    assert _run_in_subprocess(data, "before_load:2", tmp_path) == -9
    deadline = time.monotonic() + 20
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_with(marker)  # no orphaned transform worker left behind


def _processes_with(marker: str) -> list[int]:
    needle = f"EXSYNC_TEST_MARKER={marker}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if needle in environ.read_bytes() and int(environ.parent.name) != os.getpid():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


# The points where the overlap matters (later pages transformed ahead in a worker process, an
# earlier one not yet loaded); every crash point with the default thread transform is covered by
# tests/reliability/test_crash.py, so the others are not repeated here (each cycle costs ~28 s).
@pytest.mark.parametrize("crash_at", ["after_transform:3", "before_load:3"])
def test_kill_at_a_crash_point_then_rerun_equals_a_clean_run(ews, tmp_path, crash_at):
    srv = ews(["a@example.com=generate:45", "b@example.com=generate:20"])
    common = {"batch_size": 6, "fetch_chunk_size": 4, "transform_workers": 1}
    data = make_config(srv, tmp_path / "crash", ["a@example.com", "b@example.com"], **common)
    assert _run_in_subprocess(data, crash_at, tmp_path) == -9  # SIGKILL
    assert _run_in_subprocess(data, None, tmp_path) == 0
    clean = make_config(srv, tmp_path / "clean", ["a@example.com", "b@example.com"], **common)
    assert _run_in_subprocess(clean, None, tmp_path) == 0

    def canonical(d: dict) -> dict:
        return {cid: c.model_dump(mode="json") for cid, c in all_comments(d).items()}

    assert canonical(data) == canonical(clean)
    config, clean_config = parse_config(data), parse_config(clean)
    a, b = checkpoint_store(config), checkpoint_store(clean_config)
    try:
        usage = sum(r.new for r in a.usage(config.name))
        assert usage == sum(r.new for r in b.usage(clean_config.name)) == len(canonical(clean))  # billed once
        # Every folder's count moved only with committed loads: the same as in the clean run.
        assert [(s.mailbox, s.folder_path, s.items_synced) for s in a.list_folder_states(config.name)] == \
            [(s.mailbox, s.folder_path, s.items_synced) for s in b.list_folder_states(clean_config.name)]
    finally:
        a.close()
        b.close()


def test_transform_pool_outlives_the_thread_that_started_it(tmp_path, caplog):
    """Workers die with the *thread* that spawned them (PR_SET_PDEATHSIG): a pool first used from a
    page pipeline's short-lived transform thread must keep its workers after that thread ends."""
    import threading

    from exchange_sync.pipeline.transform_worker import transform_staged
    from exchange_sync.pipeline.transformer import Transformer
    from exchange_sync.staging import Staging
    from tests.support.staged import staged_table
    from testserver_core.generate import generate_messages

    data = {"name": "pool", "connection": {"kind": "ews", "server_url": "https://ews.invalid/EWS/Exchange.asmx",
                                           "username": "u", "password": {"env": "UNUSED"}, "access_type": "delegate"},
            "mailboxes": [{"email": "a@example.com"}], "staging": {"url": str(tmp_path / "staging")},
            "transform_workers": 1}
    config = parse_config(data)
    staging = Staging(config.staging.url)
    mime = [m.render() for m in generate_messages(20, seed=2, owner="a@example.com")]
    path = staging.write(staged_table(mime), "pool", "a@example.com", "f")

    made: list[Transformer] = []
    def start_and_use() -> None:  # like a page pipeline's transform thread: start, use, end
        made.append(Transformer(config))
        made[0].transform(staging, path)

    starter = threading.Thread(target=start_and_use)
    starter.start()
    starter.join()  # the thread that created the pool is gone
    transformer = made[0]
    try:
        pool = transformer._pool
        for _ in range(3):
            batch = transformer.transform(staging, path)
            assert batch.comments == len(mime)
        assert transformer._pool is pool, "the pool was restarted: its workers died with their starting thread"
        assert "restarting the pool" not in caplog.text
    finally:
        transformer.close()
    assert batch == transform_staged(staging, path)  # the worker's output is the in-process one
