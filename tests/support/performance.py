"""Helpers: run the plain (Prefect-free) pipeline on a config dict, read the server log."""

from __future__ import annotations

from collections import Counter

from exchange_sync.config import parse_config
from exchange_sync.pipeline.mailbox import sync_mailbox
from exchange_sync.pipeline.runtime import Runtime


def run_plain(data: dict, steps=None, **kw):
    """Every mailbox of ``data`` through ``sync_mailbox`` (the plain steps unless given; ``kw``: mode,
    start, end); the reports."""
    config = parse_config(data)
    rt = Runtime.open(config)
    try:
        return [sync_mailbox(rt, m, steps=steps, **kw) for m in config.enabled_mailboxes]
    finally:
        rt.close()


def ops(srv, since: int = 0) -> Counter:
    return Counter(e["operation"] for e in srv.log(since))
