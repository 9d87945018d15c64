"""The product end to end: the real flow, through a real Prefect API, against the EWS test server
over HTTPS + NTLM, into the embedded store (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from ews_testserver.testing import date_n, make_mime

from .conftest import all_comments, make_config, store_of

READ_OPERATIONS = {"GetFolder", "FindFolder", "SyncFolderHierarchy", "SyncFolderItems", "FindItem", "GetItem",
                   "ConvertId", "ResolveNames"}


def hexid(message_id: str) -> str:
    return message_id.strip().encode().hex()


def test_corpus_syncs_with_hex_message_ids_and_only_reads(ews, sync, tmp_path, corpus_dir: Path, store_url):
    from exchange_sync.transform import ExchangeMeta, Rejection, email_to_comment

    srv = ews([f"ap@example.com={corpus_dir}"])
    data = make_config(srv, tmp_path, ["ap@example.com"], store_url=store_url)
    summary, code = sync(data)
    assert code == 0, summary
    files = sorted(p for p in corpus_dir.rglob("*.eml"))
    # What the pipeline stored equals what the transform makes of each file directly.
    expected_ids, converted = set(), 0
    for path in files:
        result = email_to_comment(path.read_bytes(), ExchangeMeta(mailbox="ap@example.com", folder_path="Inbox"))
        if not isinstance(result, Rejection):
            expected_ids.add(result.id)
            converted += 1
    comments = all_comments(data)
    assert set(comments) == expected_ids
    rejected = store_of(data).list_rejections("e2e") if "sqlite" in store_url else []
    assert summary["items"] == len(files)
    assert converted >= 100  # the corpus repeats Message-IDs: fewer distinct comments than files
    # Ids are the hex of the Message-ID header as sent.
    for path in files[:40]:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        raw = msg.get("Message-ID")
        if raw and isinstance(raw, str) and raw.isascii() and "\n" not in raw:
            assert hexid(raw) in comments, path.name
    ops = {e["operation"] for e in srv.log()}
    assert ops <= READ_OPERATIONS, ops - READ_OPERATIONS
    assert rejected == [] or all(r.reason for r in rejected)


def test_second_run_without_changes_fetches_nothing(ews, sync, tmp_path):
    srv = ews(["ap@example.com=generate:40"])
    data = make_config(srv, tmp_path, ["ap@example.com"])
    first, code = sync(data)
    assert code == 0 and first["totals"]["new"] > 0
    mark = srv.last_seq()
    second, code = sync(data)
    assert code == 0
    assert second["totals"] == {"new": 0, "updated": 0, "updated_properties_only": 0, "updated_text_changed": 0,
                                "unchanged": 0, "units": 0}
    ops = srv.operations(mark)
    assert "GetItem" not in ops and "SyncFolderItems" in ops


def test_move_updates_folder_and_bills_nothing(ews, sync, tmp_path):
    srv = ews(["ap@example.com=generate:5"])
    srv.add_message("ap@example.com", make_mime("Invoice 4411 overdue", "<move-1@acme.com>", date_n(1)), "Inbox")
    srv.create_folder("ap@example.com", "Inbox/Suppliers")
    data = make_config(srv, tmp_path, ["ap@example.com"])
    sync(data)
    cid = hexid("<move-1@acme.com>")
    before = all_comments(data)[cid]
    assert before.user_properties["string:Folder"] == "Inbox"
    srv.move("ap@example.com", "<move-1@acme.com>", "Inbox/Suppliers")
    summary, code = sync(data)
    assert code == 0
    after = all_comments(data)[cid]
    assert after.user_properties["string:Folder"] == "Inbox/Suppliers"
    assert after.messages[0].body == before.messages[0].body
    assert summary["totals"]["units"] == 0 and summary["totals"]["updated_properties_only"] == 1
    assert sum(m["deleted"] for m in summary["mailboxes"]) == 1


def test_edited_subject_and_body_change_nothing(ews, sync, tmp_path):
    srv = ews(["ap@example.com=generate:3"])
    srv.add_message("ap@example.com", make_mime("Original subject", "<edit-1@acme.com>", date_n(2), body="Original body"))
    data = make_config(srv, tmp_path, ["ap@example.com"])
    sync(data)
    cid = hexid("<edit-1@acme.com>")
    before = all_comments(data)[cid]
    srv.edit("ap@example.com", "<edit-1@acme.com>", subject="Edited subject", body="Edited body")
    summary, code = sync(data)
    assert code == 0
    after = all_comments(data)[cid]
    assert after.messages[0].subject.text == "Original subject"
    assert after.messages[0].body.text == before.messages[0].body.text
    assert summary["totals"]["units"] == 0


def test_cc_copy_in_two_mailboxes_is_one_comment_billed_once(ews, sync, tmp_path):
    srv = ews(["ap@example.com=generate:2", "support@example.com=generate:2"])
    mime = make_mime("Shared", "<cc-1@acme.com>", date_n(3), to="ap@example.com, support@example.com")
    srv.add_message("ap@example.com", mime)
    srv.add_message("support@example.com", mime, "Inbox/Escalations")
    # One mailbox at a time, in configuration order, so "synced last" is well defined.
    data = make_config(srv, tmp_path, ["ap@example.com", "support@example.com"], concurrency={"mailboxes": 1})
    summary, code = sync(data)
    assert code == 0
    comment = all_comments(data)[hexid("<cc-1@acme.com>")]
    assert comment.user_properties["string:Mailbox"] == "support@example.com"
    assert comment.user_properties["string:Folder"] == "Inbox/Escalations"
    usage = store_of(data).usage("e2e")
    assert sum(r.units for r in usage) == len(all_comments(data))


def test_start_timestamp_is_honoured(ews, sync, tmp_path):
    srv = ews(["ap@example.com=generate:1"])
    srv.add_message("ap@example.com", make_mime("old", "<old@acme.com>"), received="2023-06-01T00:00:00Z")
    srv.add_message("ap@example.com", make_mime("new", "<new@acme.com>"), received="2024-06-01T00:00:00Z")
    data = make_config(srv, tmp_path, [{"email": "ap@example.com", "start_timestamp": "2024-01-01T00:00:00Z"}])
    summary, code = sync(data)
    assert code == 0
    ids = set(all_comments(data))
    assert hexid("<new@acme.com>") in ids and hexid("<old@acme.com>") not in ids
    assert all(c.timestamp.year >= 2024 for c in all_comments(data).values())


def test_missing_and_denied_mailboxes_are_reported_and_the_others_sync(ews, sync, tmp_path):
    srv = ews(["ap@example.com=generate:5", "private@example.com=generate:5"],
              grants=["svc-sync@example.com=ap@example.com"])
    data = make_config(srv, tmp_path, ["ap@example.com", "private@example.com", "ghost@example.com"])
    summary, code = sync(data)
    rows = {m["mailbox"]: m for m in summary["mailboxes"]}
    assert rows["ap@example.com"]["status"] == "ok" and rows["ap@example.com"]["new"] > 0
    assert rows["private@example.com"]["reason"] == "mailbox_access_denied"
    assert rows["ghost@example.com"]["reason"] == "mailbox_not_found"
    assert code == 3  # completed, some mailboxes skipped


def test_bad_password_fails_the_run_with_invalid_exchange_credentials(ews, sync, tmp_path, monkeypatch, capsys):
    srv = ews(["ap@example.com=generate:5"])
    data = make_config(srv, tmp_path, ["ap@example.com"])
    monkeypatch.setenv("EXSYNC_E2E_PASSWORD", "wrong-password")
    summary, code = sync(data)
    assert code == 1
    assert summary["mailboxes"][0]["reason"] == "invalid_exchange_credentials"
    assert "invalid_exchange_credentials" in capsys.readouterr().err
    assert "wrong-password" not in str(summary)


def test_backfill_reads_a_window_and_leaves_watermarks_alone(ews, sync, tmp_path):
    from datetime import datetime, timezone

    srv = ews(["ap@example.com=generate:1"])
    for i, month in enumerate((1, 2, 3)):
        srv.add_message("ap@example.com", make_mime(f"m{month}", f"<bf-{month}@acme.com>"),
                        received=f"2024-0{month}-15T00:00:00Z")
    data = make_config(srv, tmp_path, ["ap@example.com"])
    summary, code = sync(data, mode="backfill", start=datetime(2024, 2, 1, tzinfo=timezone.utc),
                         end=datetime(2024, 3, 1, tzinfo=timezone.utc))
    assert code == 0
    assert set(all_comments(data)) == {hexid("<bf-2@acme.com>")}
    assert all(f.sync_state is None for f in store_of(data).list_folder_states("e2e"))
    ops = {e["operation"] for e in srv.log()}
    assert "SyncFolderItems" not in ops and "FindItem" in ops
    # The incremental sync afterwards still sees everything, and bills the backfilled comment once only.
    summary, code = sync(data)
    assert code == 0
    assert {hexid(f"<bf-{m}@acme.com>") for m in (1, 2, 3)} <= set(all_comments(data))
    assert sum(r.units for r in store_of(data).usage("e2e")) == len(all_comments(data))


def test_replay_reloads_staged_batches_without_exchange(ews, sync, tmp_path):
    from exchange_sync.config import parse_config
    from exchange_sync.pipeline.replay import replay

    srv = ews(["ap@example.com=generate:20"])
    data = make_config(srv, tmp_path, ["ap@example.com"])
    summary, _ = sync(data)
    mark = srv.last_seq()
    result = replay(parse_config(data))
    assert result["comments"] == summary["totals"]["new"] + summary["totals"]["updated_properties_only"]
    assert result["counts"]["units"] == 0 and result["counts"]["new"] == 0
    assert srv.operations(mark) == []


def _task_run_names_of_latest_flow_run() -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        (latest,) = client.read_flow_runs(sort=FlowRunSort.END_TIME_DESC, limit=1)
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[latest.id])))
    return [r.name for r in runs]


def test_no_change_poll_commits_every_folder_without_load_task_runs(ews, sync, tmp_path):
    """Empty pages commit their state and sync time in a plain call (no `load` task run), and a
    run with nothing to fetch never starts the transform workers."""
    from exchange_sync.config import parse_config
    from exchange_sync.pipeline import steps
    from exchange_sync.pipeline.runtime import Runtime, checkpoint_store

    srv = ews(["ap@example.com=generate:30"])
    data = make_config(srv, tmp_path, ["ap@example.com"], transform_workers=1)
    _summary, code = sync(data)
    assert code == 0
    assert any(name.startswith("load") for name in _task_run_names_of_latest_flow_run())
    config = parse_config(data)
    store = checkpoint_store(config)
    before = {s.folder_id: s for s in store.list_folder_states(config.name)}
    _summary, code = sync(data)
    assert code == 0
    names = _task_run_names_of_latest_flow_run()
    assert names and not [n for n in names if n.startswith("load")], names
    after = {s.folder_id: s for s in store.list_folder_states(config.name)}
    store.close()
    assert after.keys() == before.keys()
    assert all(after[f].last_synced_at > before[f].last_synced_at for f in before)

    rt = Runtime.open(config)
    try:
        folder = next(f for f in rt.source.open_mailbox("ap@example.com").mail_folders() if f.path == "Inbox")
        empty = steps.extract_page(rt, "ap@example.com", folder, after[folder.folder_id].sync_state, None)
        assert empty.items == 0 and rt._transformer is None  # nothing to fetch: no workers started
        full = steps.extract_page(rt, "ap@example.com", folder, None, None)
        assert full.items > 0 and rt._transformer is not None
    finally:
        rt.close()


def test_staged_batches_older_than_keep_days_are_pruned_after_the_run(ews, sync, tmp_path):
    srv = ews(["ap@example.com=generate:20"])
    kept = make_config(srv, tmp_path / "kept", ["ap@example.com"])
    pruned = make_config(srv, tmp_path / "pruned", ["ap@example.com"], staging={"url": str(tmp_path / "pruned-staging"),
                                                                                  "keep_days": 0})
    for data in (kept, pruned):
        _summary, code = sync(data)
        assert code == 0
    assert list(Path(kept["staging"]["url"]).rglob("*.parquet"))  # default: kept for replay
    assert not [p for p in Path(pruned["staging"]["url"]).rglob("*") if p.is_file()]
    assert all_comments(pruned).keys() == all_comments(kept).keys()
