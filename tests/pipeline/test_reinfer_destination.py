"""The pipeline with `destination: reinfer` pointed at our own comments API over HTTP gives the same
comments and the same counts as the embedded store, through moves and edits."""

from __future__ import annotations

from ews_testserver.testing import date_n, make_mime

from .conftest import all_comments, make_config

TOKEN_ENV = "EXSYNC_E2E_API_TOKEN"


def _comments(store, source: str) -> dict:
    out, after = {}, None
    while True:
        page, after = store.list_comments(source, after=after, limit=500)
        out.update({c.id: c.to_api() for c in page})
        if not after or not page:
            return out


def test_reinfer_destination_matches_the_embedded_store(ews, sync, tmp_path, monkeypatch):
    from tests.support.api import running_api

    srv = ews(["ap@example.com=generate:30", "support@example.com=generate:10"])
    shared = make_mime("Shared", "<rd-cc@acme.com>", date_n(7), to="ap@example.com, support@example.com")
    srv.add_message("ap@example.com", shared)
    srv.add_message("support@example.com", shared)
    srv.add_message("ap@example.com", make_mime("Move me", "<rd-move@acme.com>", date_n(8)))
    boxes = ["ap@example.com", "support@example.com"]
    local = make_config(srv, tmp_path / "local", boxes, concurrency={"mailboxes": 1})
    token = "api-token-" + "x" * 24
    monkeypatch.setenv(TOKEN_ENV, token)
    with running_api(f"sqlite:///{tmp_path / 'api.db'}", token=token) as api:
        remote = make_config(srv, tmp_path / "remote", boxes, concurrency={"mailboxes": 1})
        remote["destination"] = {"kind": "reinfer", "url": api.url, "project": "acme", "source": "mail",
                                 "token": {"env": TOKEN_ENV}}
        for round_ in range(2):
            s_local, code_local = sync(local)
            s_remote, code_remote = sync(remote)
            assert code_local == code_remote == 0
            assert s_remote["totals"] == s_local["totals"], round_
            expected = {cid: c.to_api() for cid, c in all_comments(local).items()}
            assert _comments(api.store, "acme/mail") == expected
            if round_ == 0:
                srv.move("ap@example.com", "<rd-move@acme.com>", "Archive")
                srv.edit("ap@example.com", "<rd-cc@acme.com>", subject="edited on the server")
        moved = _comments(api.store, "acme/mail")["<rd-move@acme.com>".encode().hex()]
        assert moved["user_properties"]["string:Folder"] == "Archive"
        assert s_remote["totals"]["units"] == 0


def test_wrong_api_token_fails_the_run_and_commits_no_watermark(ews, sync, tmp_path, monkeypatch):
    from exchange_sync.store import SqlStore
    from tests.support.api import running_api

    srv = ews(["ap@example.com=generate:5"])
    monkeypatch.setenv(TOKEN_ENV, "not-the-token-" + "y" * 20)
    with running_api(f"sqlite:///{tmp_path / 'api.db'}", token="the-real-token-" + "z" * 20) as api:
        data = make_config(srv, tmp_path, ["ap@example.com"])
        data["destination"] = {"kind": "reinfer", "url": api.url, "project": "acme", "source": "mail",
                               "token": {"env": TOKEN_ENV}}
        summary, code = sync(data)
        assert code == 1
        assert "401" in summary["mailboxes"][0]["errors"] or "token" in summary["mailboxes"][0]["errors"].lower()
        assert api.store.count_comments("acme/mail") == 0
        states = SqlStore(data["state"]["url"]).list_folder_states("e2e")
        assert all(s.sync_state is None for s in states)
