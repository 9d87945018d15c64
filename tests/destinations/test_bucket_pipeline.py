"""`destination: {kind: reinfer_bucket}` end to end: the CLI syncs the EWS test server into a bucket of
the comments API over HTTP; each email arrives once (by the comment id), raw MIME as Exchange served it
plus metadata; a CC'd copy is one email with the last copy's mailbox; a move replaces, never duplicates."""

from __future__ import annotations

import base64
import secrets

import pytest

from ews_testserver.testing import date_n, make_mime, running_server
from exchange_sync.store import buckets as bucket_store
from tests.support.api import running_api
from tests.support.pipeline import ACCOUNT, PASSWORD_ENV, flow_runner, make_config, run_cli

pytestmark = pytest.mark.timeout(300)
TOKEN_ENV = "EXSYNC_BUCKET_TOKEN"


def test_cli_syncs_raw_emails_into_a_bucket(prefect_api, tmp_path, monkeypatch):
    password, token = "pw-" + secrets.token_hex(8), "bucket-token-" + secrets.token_hex(12)
    monkeypatch.setenv(PASSWORD_ENV, password)
    monkeypatch.setenv(TOKEN_ENV, token)
    boxes = ["ap@example.com", "support@example.com"]
    with running_server(accounts=[f"{ACCOUNT}:{password}"], mailboxes=[f"{b}=generate:4" for b in boxes],
                        grants=[f"{ACCOUNT}={b}" for b in boxes], tls=True, auth="ntlm") as srv, \
            running_api(f"sqlite:///{tmp_path / 'api.db'}", token=token) as api:
        shared = make_mime("Shared", "<bk-cc@acme.com>", date_n(7), to="ap@example.com, support@example.com")
        for box in boxes:
            srv.add_message(box, shared)
        data = make_config(srv, tmp_path, boxes, name="bucket", concurrency={"mailboxes": 1})
        data["destination"] = {"kind": "reinfer_bucket", "url": api.url, "owner": "acme", "bucket": "raw-mail",
                               "token": {"env": TOKEN_ENV}}
        run = run_cli(data, tmp_path, env={PASSWORD_ENV: password, TOKEN_ENV: token}, prefect_api=prefect_api)
        assert run.returncode == 0, run.stderr[-3000:]
        held = {e["id"]: e for e in bucket_store.list_emails(api.store, "acme/raw-mail", limit=1000)}
        assert len(held) == 9  # 4 + 4 + the shared one once
        cc = held["<bk-cc@acme.com>".encode().hex()]
        assert cc["mailbox"] == "support@example.com"  # the copy synced last
        raw = base64.b64decode(cc["mime_content"])
        assert b"Message-ID: <bk-cc@acme.com>" in raw and b"Shared" in raw
        assert cc["metadata"]["folder"] == ["Inbox"] and cc["metadata"]["size"] > 0
        assert {"received_at", "conversation_id", "importance", "sensitivity"} <= set(cc["metadata"])
        assert token not in run.stdout + run.stderr
        srv.move("ap@example.com", "<bk-cc@acme.com>", "Archive")
        summary, code = flow_runner()(data)
        assert code == 0
        assert summary["totals"]["units"] == 0 and summary["totals"]["new"] == 0
        held = {e["id"]: e for e in bucket_store.list_emails(api.store, "acme/raw-mail", limit=1000)}
        assert len(held) == 9  # replaced, never duplicated
        moved = held["<bk-cc@acme.com>".encode().hex()]
        assert (moved["mailbox"], moved["metadata"]["folder"]) == ("ap@example.com", ["Archive"])
