"""Folder-list and version cache: a no-change poll is one SyncFolderItems per folder, new folders are
picked up after the refresh interval or on demand, a deleted folder does not break the run."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from ews_testserver.testing import make_mime

from testserver_core import ids
from exchange_sync.config import parse_config
from exchange_sync.pipeline.folder_cache import forget_folders
from exchange_sync.pipeline.runtime import checkpoint_store
from exchange_sync.sources.folders import DEFAULT_SKIPPED

from .conftest import all_comments, make_config
from tests.support.performance import ops, run_plain


def mail_folder_count(srv, mailbox: str) -> int:
    """Mail folders the sync takes by default: IPF.Note, without Drafts, Outbox, Sync Issues (and its
    sub-folders) and Conversation History (folders.DEFAULT_SKIPPED, by their well-known ids)."""
    folders = {m["address"]: m for m in srv.mailboxes()}[mailbox]["folders"]
    skipped = [f["path"] for f in folders if f.get("distinguished") in DEFAULT_SKIPPED]
    return sum(
        1 for f in folders
        if (f.get("folder_class") or "IPF.Note").startswith("IPF.Note")
        and not any(f["path"] == p or f["path"].startswith(p + "/") for p in skipped)
    )


def test_no_change_poll_of_the_flow_sends_only_sync_folder_items(ews, sync, tmp_path):
    boxes = [f"m{i}@example.com" for i in range(3)]
    srv = ews([f"{b}=generate:15" for b in boxes])
    data = make_config(srv, tmp_path, boxes)  # no exchange_version: the first run probes it
    summary, code = sync(data)
    assert code == 0 and all(m["status"] == "ok" for m in summary["mailboxes"])
    first = ops(srv)
    assert first["ConvertId"] == 1 and first["GetFolder"] == 3 and first["FindFolder"] == 3

    seq = srv.last_seq()
    summary, code = sync(data)
    assert code == 0
    poll = ops(srv, seq)
    assert set(poll) == {"SyncFolderItems"}, poll
    # Exactly one per mail folder (as discovered in the first run), no GetItem.
    expected = sum(m["folders"] for m in summary["mailboxes"])
    assert poll["SyncFolderItems"] == expected == sum(mail_folder_count(srv, b) for b in boxes)


def test_new_folder_is_picked_up_after_the_refresh_interval(ews, tmp_path):
    srv = ews(["a@example.com=generate:10"])
    data = make_config(srv, tmp_path, ["a@example.com"], folder_refresh_minutes=30)
    run_plain(data)
    before = len(all_comments(data))

    srv.create_folder("a@example.com", "Inbox/Projects")
    srv.add_message("a@example.com", make_mime("in a new folder", "<new-folder-1@x>"), folder="Inbox/Projects")
    seq = srv.last_seq()
    (report,) = run_plain(data)
    assert set(ops(srv, seq)) == {"SyncFolderItems"}  # the cached list: the folder is not known yet
    assert "Inbox/Projects" not in [f.path for f in report.folders]
    assert len(all_comments(data)) == before

    # The list is older than folder_refresh_minutes: rediscovered, the folder is synced.
    config = parse_config(data)
    store = checkpoint_store(config)
    folders_json, _ = store.get_folder_list(config.name, "a@example.com")
    store.put_folder_list(config.name, "a@example.com", folders_json, datetime.now(timezone.utc) - timedelta(minutes=31))
    store.close()
    seq = srv.last_seq()
    (report,) = run_plain(data)
    assert ops(srv, seq)["GetFolder"] == 1 and ops(srv, seq)["FindFolder"] == 1
    assert "Inbox/Projects" in [f.path for f in report.folders]
    assert len(all_comments(data)) == before + 1


def test_forget_folders_refreshes_on_demand_and_zero_minutes_means_every_run(ews, tmp_path):
    srv = ews(["a@example.com=generate:5"])
    data = make_config(srv, tmp_path, ["a@example.com"])
    run_plain(data)
    srv.create_folder("a@example.com", "Archive/2024")
    srv.add_message("a@example.com", make_mime("on demand", "<on-demand-1@x>"), folder="Archive/2024")

    assert forget_folders(parse_config(data), "A@example.com") == 1
    seq = srv.last_seq()
    (report,) = run_plain(data)
    assert ops(srv, seq)["GetFolder"] == 1
    assert "Archive/2024" in [f.path for f in report.folders]

    every_run = {**data, "folder_refresh_minutes": 0}
    seq = srv.last_seq()
    run_plain(every_run)
    assert ops(srv, seq)["GetFolder"] == 1 and ops(srv, seq)["FindFolder"] == 1


def test_a_folder_deleted_on_the_server_does_not_break_the_run(ews, tmp_path):
    srv = ews(["a@example.com=generate:12"])
    data = make_config(srv, tmp_path, ["a@example.com"])
    run_plain(data)
    config = parse_config(data)
    store = checkpoint_store(config)
    folders_json, refreshed_at = store.get_folder_list(config.name, "a@example.com")
    folders = json.loads(folders_json)
    inbox = next(f for f in folders if f["distinguished_id"] == "inbox")
    # A folder the cache knows but the server no longer has (the test server cannot delete folders:
    # a well-formed id of a folder number that does not exist behaves exactly like a deleted one).
    _kind, mbx_index, _num, _ = ids.decode(inbox["folder_id"])
    gone = {**inbox, "folder_id": ids.folder_id(mbx_index, 9999),
            "path": "Inbox/Gone", "display_name": "Gone", "distinguished_id": None, "parent_id": inbox["folder_id"]}
    # First in the list, so that the folders after it are synced from the rediscovered list.
    store.put_folder_list(config.name, "a@example.com", json.dumps([gone, *folders]), refreshed_at)
    store.close()
    srv.add_message("a@example.com", make_mime("after the delete", "<after-delete-1@x>"), folder="Archive")

    seq = srv.last_seq()
    (report,) = run_plain(data)
    assert report.status == "ok", report.error
    log = ops(srv, seq)
    assert log["GetFolder"] == 1 and log["FindFolder"] == 1  # rediscovered once
    assert "Inbox/Gone" not in [f.path for f in report.folders]
    assert report.items == 1  # the other folders still synced
    assert "<after-delete-1@x>".encode().hex() in all_comments(data)
    store = checkpoint_store(config)
    cached, _ = store.get_folder_list(config.name, "a@example.com")
    store.close()
    assert "Inbox/Gone" not in [f["path"] for f in json.loads(cached)]


def test_server_version_is_probed_once_and_cached(ews, tmp_path):
    srv = ews(["a@example.com=generate:3"])
    data = make_config(srv, tmp_path, ["a@example.com"], folder_refresh_minutes=0)
    run_plain(data)
    assert ops(srv)["ConvertId"] == 1
    seq = srv.last_seq()
    (report,) = run_plain(data)
    assert report.status == "ok"
    assert ops(srv, seq)["ConvertId"] == 0
    # A configured version never probes and is not cached.
    srv2 = ews(["b@example.com=generate:3"])
    configured = make_config(srv2, tmp_path / "b", ["b@example.com"])
    configured["connection"]["exchange_version"] = "Exchange2016"
    run_plain(configured)
    assert ops(srv2)["ConvertId"] == 0
