"""The pipeline commands as a user runs them: `exchange-sync run|status|usage|comments|replay CONFIG`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from ews_testserver.testing import date_n, make_mime

from .conftest import make_config


def cli(*args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "exchange_sync", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_run_status_usage_and_comments_commands(ews, prefect_api, tmp_path: Path, password):
    srv = ews(["ap@example.com=generate:12"])
    srv.add_message("ap@example.com", make_mime("CLI check", "<cli-1@acme.com>", date_n(4), body="Body text"))
    config = tmp_path / "integration.yaml"
    config.write_text(yaml.safe_dump(make_config(srv, tmp_path, ["ap@example.com"])))

    run = cli("run", str(config), "--json", check=True)
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["integration"] == "e2e" and summary["totals"]["new"] >= 13
    assert password not in run.stdout + run.stderr

    status = json.loads(cli("status", str(config), "--json", check=True).stdout)
    (mailbox,) = status["mailboxes"]
    assert mailbox["status"] == "ok"
    assert any(f["path"] == "Inbox" and f["has_watermark"] for f in mailbox["folders"])
    assert status["runs"][0]["status"] == "completed"

    usage = json.loads(cli("usage", str(config), "--json", check=True).stdout)
    assert sum(r["units"] for r in usage) == summary["totals"]["units"]

    count = json.loads(cli("comments", "count", str(config), "--json", check=True).stdout)["count"]
    lines = cli("comments", "list", str(config), "--json", check=True).stdout.strip().splitlines()
    comments = [json.loads(line) for line in lines]
    assert len(comments) == count == summary["totals"]["new"]
    cid = "<cli-1@acme.com>".encode().hex()
    got = json.loads(cli("comments", "get", str(config), cid, "--json", check=True).stdout)
    assert got["messages"][0]["subject"]["text"] == "CLI check"
    assert cli("comments", "get", str(config), "00ff").returncode == 1

    replay = json.loads(cli("replay", str(config), "--json", check=True).stdout)
    assert replay["counts"]["units"] == 0 and replay["batches"] >= 1


def test_invalid_config_fails_before_any_network_call(tmp_path: Path):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({
        "name": "bad",
        "connection": {"server_url": "https://127.0.0.1:9/EWS/Exchange.asmx", "username": "u",
                       "password": "literal-secret"},
        "mailboxes": [{"email": "not-an-address"}],
    }))
    proc = cli("run", str(config))
    assert proc.returncode == 2
    assert "connection.password: literal secrets are not allowed" in proc.stderr
    assert "connection.access_type: Field required" in proc.stderr
    assert "mailboxes.0.email" in proc.stderr
    assert "literal-secret" not in proc.stderr


def test_dead_server_fails_the_run_with_a_clear_reason(prefect_api, tmp_path: Path, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("EXSYNC_DEAD_PW", "pw")
    config = tmp_path / "dead.yaml"
    config.write_text(yaml.safe_dump({
        "name": "dead",
        "connection": {"server_url": f"https://127.0.0.1:{port}/EWS/Exchange.asmx", "username": "u",
                       "password": {"env": "EXSYNC_DEAD_PW"}, "access_type": "delegate",
                       "max_backoff_s": 2, "retry_attempts": 2},
        "mailboxes": [{"email": "ap@example.com"}],
        "destination": {"url": f"sqlite:///{tmp_path / 'c.db'}"},
        "state": {"url": f"sqlite:///{tmp_path / 's.db'}"},
        "staging": {"url": str(tmp_path / "staging")},
    }))
    proc = cli("run", str(config), "--json")
    assert proc.returncode == 1
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["mailboxes"][0]["status"] == "failed"
    assert summary["mailboxes"][0]["reason"] == "server_unavailable"
