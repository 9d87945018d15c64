"""Outages must not disable mailboxes (issue #17): integration-wide failures (the server unreachable,
a secret missing, the destination refusing its token) fail the run at integration level and never
count toward `disable_after_failures`; only mailbox-specific failures may disable a mailbox. After
the outage, the next run syncs everything."""

from __future__ import annotations

import socket

import pytest

from exchange_sync.store import SqlStore
from tests.support.api import running_api

from .conftest import PASSWORD_ENV, make_config

pytestmark = pytest.mark.timeout(600)

BOXES = ["ap@example.com", "support@example.com"]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"https://127.0.0.1:{port}/EWS/Exchange.asmx"


def health(data: dict) -> dict:
    return {h.mailbox: h for h in SqlStore(data["state"]["url"]).mailbox_health(data["name"])}


def test_server_outage_over_several_runs_disables_nothing(ews, sync, tmp_path):
    srv = ews([f"{b}=generate:6" for b in BOXES])
    live = make_config(srv, tmp_path, BOXES, disable_after_failures=2)
    down = {**live, "connection": {**live["connection"], "server_url": closed_port_url(), "retry_attempts": 1,
                                   "max_backoff_s": 1}}
    # Five scheduled polls during the outage (2.5x the threshold).
    for _ in range(5):
        summary, code = sync(down)
        assert code == 1
        assert {m["reason"] for m in summary["mailboxes"]} == {"server_unavailable"}
        assert any("integration-wide failure" in note for note in summary["notes"])
    assert not any(h.disabled or h.consecutive_failures for h in health(live).values())
    runs = SqlStore(live["state"]["url"]).list_runs("e2e", limit=10)
    assert [r.status for r in runs[:5]] == ["failed"] * 5

    # The server is back: the next run syncs every mailbox, nothing is skipped as disabled.
    summary, code = sync(live)
    assert code == 0, summary
    assert {m["mailbox"]: m["status"] for m in summary["mailboxes"]} == {b: "ok" for b in BOXES}
    assert summary["totals"]["new"] == 12


def test_missing_password_is_an_integration_failure(ews, sync, tmp_path, monkeypatch):
    from flows.sync_integration import IntegrationFailed, sync_integration
    from exchange_sync.config import parse_config

    srv = ews([f"{b}=generate:3" for b in BOXES])
    data = make_config(srv, tmp_path, BOXES, disable_after_failures=1)
    monkeypatch.delenv(PASSWORD_ENV)
    for _ in range(3):
        with pytest.raises(IntegrationFailed) as failed:
            sync_integration(config=parse_config(data))
        assert failed.value.reason == "secret_unavailable" and PASSWORD_ENV in str(failed.value)
    assert health(data) == {}  # no mailbox was even tried, none counted


def test_wrong_destination_token_disables_nothing(ews, sync, tmp_path, monkeypatch):
    srv = ews([f"{b}=generate:3" for b in BOXES])
    monkeypatch.setenv("EXSYNC_OUTAGE_TOKEN", "not-the-token-" + "y" * 20)
    with running_api(f"sqlite:///{tmp_path / 'api.db'}", token="the-real-token-" + "z" * 20) as api:
        data = make_config(srv, tmp_path, BOXES, disable_after_failures=1)
        data["destination"] = {"kind": "reinfer", "url": api.url, "project": "acme", "source": "mail",
                               "token": {"env": "EXSYNC_OUTAGE_TOKEN"}}
        for _ in range(2):
            summary, code = sync(data)
            assert code == 1
        assert not any(h.disabled for h in health(data).values())
        monkeypatch.setenv("EXSYNC_OUTAGE_TOKEN", "the-real-token-" + "z" * 20)
        summary, code = sync(data)
        assert code == 0 and summary["totals"]["new"] == 6


def test_mailbox_specific_failures_still_disable(ews, sync, tmp_path):
    srv = ews(["ap@example.com=generate:3"], grants=[])  # the account may open no mailbox
    data = make_config(srv, tmp_path, ["ap@example.com"], disable_after_failures=2)
    for _ in range(2):
        summary, _code = sync(data)
    assert health(data)["ap@example.com"].disabled
    assert summary["mailboxes"][0]["reason"] in ("mailbox_access_denied", "mailbox_not_found")
