"""Prefect task runs get the flow's own Runtime: one source, one transform pool per run.

Prefect walks task arguments (dataclasses, pydantic models) and rebuilds those it considers
changed; a task working on a rebuilt Runtime would start a source and a transform pool of its own.
This checks, through a real Prefect API, that the tasks see the very object the flow holds.
"""

from __future__ import annotations

from prefect import flow

from exchange_sync.config import parse_config
from exchange_sync.pipeline import steps as plain
from exchange_sync.pipeline.runtime import Runtime
from tasks import pipeline as prefect_tasks

from .conftest import make_config


def test_tasks_share_the_flows_runtime(prefect_api, ews, tmp_path):
    srv = ews(["ap@example.com=generate:30"])
    config = parse_config(make_config(srv, tmp_path, ["ap@example.com"], batch_size=10, transform_workers=1))
    rt = Runtime.open(config)
    try:
        session = rt.source.open_mailbox("ap@example.com")
        inbox = next(f for f in session.mail_folders() if f.path == "Inbox")
        seen: dict[str, object] = {}

        @flow(name="runtime-identity")
        def check() -> list:
            first = prefect_tasks.extract_page(rt, "ap@example.com", inbox, None, None)
            second = plain.extract_page(rt, "ap@example.com", inbox, first.sync_state, None)
            batches = []
            for page in (first, second):
                batches.append(prefect_tasks.transform_batch(rt, page.staged_path))
                seen.setdefault("transformer", rt._transformer)
                assert rt._transformer is seen["transformer"], "a task run started its own transform pool"
            return batches

        batches = check()
        assert rt._transformer is not None, "the transform task ran on a copy of the runtime"
        assert all(b.comments for b in batches)
    finally:
        rt.close()
