"""Where staged pages are transformed: a small process pool, or the calling thread.

The transform is pure CPU (MIME parse, HTML to text, quote/signature rules, language detection):
~1-2 ms per message, several times the cost of extracting it. In the mailbox threads it would hold
the GIL against extraction (XML parse, base64) and loading; in worker processes it runs beside them
on the other cores. Workers get only a staged path and write the comments file next to it (the same
files as in-thread), so nothing but a path and the rejections crosses the process boundary.

``transform_workers``: None = CPUs - 1 (at least 2, at most 4) from 2 CPUs up, else 0; 0 = in the calling thread. The pool is also
skipped inside a daemonic process (e.g. some Dask worker setups), which may not have children.
Workers are started with ``spawn`` (a fork of a threaded process could inherit held locks) and
warmed up at once, so their start-up overlaps the first extraction; what runs in them is
``transform_worker`` (light imports, see there).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from exchange_sync.config import IntegrationConfig
from exchange_sync.pipeline.transform_worker import (
    TransformedBatch,
    init_worker,
    transform_in_worker,
    transform_staged,
    warm_up,
)

log = logging.getLogger("exchange_sync.pipeline")

MAX_AUTO_WORKERS = 4
MIN_CPUS_FOR_POOL = 2


def worker_count(config: IntegrationConfig) -> int:
    wanted = config.transform_workers
    if wanted is None:
        # The mailbox threads (XML parse, staging, loading, Prefect) need about a third of a core;
        # on 2 CPUs two workers beat one and three (10,000 messages through the CLI: 23.5 s vs 24.6 and
        # 25.6 s) and the in-thread transform, docs/performance.md. One CPU: in-thread.
        cpus = os.cpu_count() or 1
        wanted = 0 if cpus < MIN_CPUS_FOR_POOL else min(MAX_AUTO_WORKERS, max(2, cpus - 1))
    if wanted > 0 and multiprocessing.current_process().daemon:
        return 0
    return wanted


class Transformer:
    def __init__(self, config: IntegrationConfig) -> None:
        self.config = config
        self.workers = worker_count(config)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        # Workers are spawned from this one long-lived thread. PR_SET_PDEATHSIG fires when the
        # *thread* that spawned a worker ends, and a pool spawns from whichever thread submits: a
        # pool started from a page pipeline's transform thread lost its workers at every folder's
        # end (then restarted, re-transformed the page; measured +12 s CPU on 10,000 messages).
        self._spawner: ThreadPoolExecutor | None = None
        if self.workers:
            self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transform-pool")
            self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        assert self._spawner is not None
        return self._spawner.submit(self._start_here).result()

    def _start_here(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=init_worker,
            initargs=(self.config.staging.url, os.getpid()),
        )
        # One submit per worker spawns them all now, from this thread (spawn pools grow on submit).
        for _ in range(self.workers):
            pool.submit(warm_up)
        return pool

    def submit(self, staging, staged_path: str) -> Future:
        """A future of the ``TransformedBatch`` of ``staged_path``."""
        with self._lock:
            pool = self._pool
        if pool is None:
            future: Future = Future()
            try:
                future.set_result(transform_staged(staging, staged_path))
            except BaseException as exc:  # noqa: BLE001 - delivered through the future
                future.set_exception(exc)
            return future
        try:
            return pool.submit(transform_in_worker, staged_path)
        except BrokenProcessPool:
            return self._restart_and_submit(staged_path)

    def transform(self, staging, staged_path: str) -> TransformedBatch:
        future = self.submit(staging, staged_path)
        try:
            return future.result()
        except BrokenProcessPool:
            # A worker died (OOM kill, segfault in a C extension): the page is retried on a fresh
            # pool once; the transform is deterministic and its output file is simply rewritten.
            log.warning("transform worker died on %s; restarting the pool", staged_path)
            return self._restart_and_submit(staged_path).result()

    def _restart_and_submit(self, staged_path: str) -> Future:
        with self._lock:
            old, self._pool = self._pool, self._start()
            pool = self._pool
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)
        return pool.submit(transform_in_worker, staged_path)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if self._spawner is not None:
            self._spawner.shutdown(wait=True)
