"""`exchange-sync watch` on a Graph connection: per-folder delta polling through the same pipeline,
within the per-mailbox request budget."""

from __future__ import annotations

import pytest

from exchange_sync.config import parse_config
from exchange_sync.watch import run_watch
from graph_testserver.testing import running_graph_server

from .conftest import mail, message_ids, wait_for, watch_modes

pytestmark = pytest.mark.timeout(180)

A = "a@example.com"


def graph_watch_config(srv, tmp_path, **watch) -> dict:
    return {
        "name": "graph-watch",
        "connection": srv.connection(max_backoff_s=10),
        "mailboxes": [{"email": A}],
        "destination": {"kind": "store", "url": f"sqlite:///{tmp_path / 'comments.db'}"},
        "staging": {"url": str(tmp_path / "staging")},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "transform_workers": 0,
        "watch": {"debounce_s": 0.1, **watch},
    }


def test_graph_mail_is_synced_by_delta_polling_within_the_request_budget(tmp_path, watching):
    with running_graph_server(mailboxes=[f"{A}=generate:3"]) as srv:
        data = graph_watch_config(srv, tmp_path, graph_interval_s=1, graph_requests_per_minute=1000)
        run = watching(data)
        wait_for(lambda: watch_modes(data)[A] == "graph_polling" and len(message_ids(data)) >= 3, 60, "catch-up")
        mid, mime = mail(1, A)
        srv.add_message(A, mime)
        wait_for(lambda: mid in message_ids(data), 30, "the new mail through the next delta poll")
        summary = run.stop()
        assert summary.mailboxes[0].mode == "graph_polling" and summary.mailboxes[0].syncs >= 2

        # A tight interval with a small budget: the requests for the mailbox stay within the budget
        # (+ at most the one poll that crossed it), however fast the machine polls.
        budget = 20
        since = srv.last_seq()
        quick = graph_watch_config(srv, tmp_path, graph_interval_s=1, graph_requests_per_minute=budget)
        result = run_watch(parse_config(quick), duration_s=6)  # unbudgeted: ~7 polls of 4 folders
        assert result.error is None and result.mailboxes[0].syncs >= 1
        sent = [e for e in srv.log(since) if e.get("mailbox") == A]
        one_poll = -(-sum(e["operation"] == "messages.delta" for e in sent) // result.mailboxes[0].syncs)
        assert len(sent) <= budget + one_poll, (len(sent), one_poll, result.mailboxes[0].syncs)
