"""The source against the project's EWS test server: real sockets, HTTPS with the test CA, NTLM."""

from __future__ import annotations

from datetime import timedelta

import pytest
from exchangelib.services import GetItem
from lxml import etree

from exchange_sync.sources import STAGED_SCHEMA, InvalidSyncState, MailboxAccessDenied, MailboxNotFound
from exchange_sync.sources.ews.source import FETCH_FIELDS
from exchange_sync.sources.ews.services import RawGetItem

from .source_support import IMP_PASSWORD, files_by_folder

READ_OPS = {"GetFolder", "FindFolder", "SyncFolderHierarchy", "SyncFolderItems", "FindItem", "GetItem", "ConvertId",
            "ResolveNames"}
pytestmark = pytest.mark.timeout(180)


def folder(mb, path):
    return next(f for f in mb.mail_folders(None, []) if f.path == path)


def full_sync(mb, f, page_size=512, state=None):
    pages = list(mb.sync_pages(f, state, page_size=page_size))
    return pages, [r for p in pages for r in p.changes]


def ops_since(srv, seq):
    return [e["operation"] for e in srv.log(seq)]


# ---- folders ------------------------------------------------------------------------------------
def test_folder_discovery_and_request_count(srv, make_source):
    src = make_source()
    mb = src.open_mailbox("ap@example.com")
    seq = srv.last_seq()
    folders = mb.mail_folders(None, [])
    paths = [f.path for f in folders]
    assert {"Inbox", "Inbox/Suppliers", "Archive", "Sent Items"} <= set(paths)
    assert not {"Calendar", "Contacts", "Tasks", "Notes", "Drafts", "Outbox"} & set(paths)
    assert all(f.folder_class.startswith("IPF.Note") for f in folders)
    inbox = next(f for f in folders if f.path == "Inbox")
    assert inbox.distinguished_id == "inbox" and inbox.display_name == "Inbox"
    # Version configured -> no ConvertId. First contact: GetFolder of root + the Exchange 2007 well-known
    # ids, then (the answer told the server's version) one GetFolder of the ids that version knows.
    assert ops_since(srv, seq) == ["GetFolder", "GetFolder", "FindFolder"]
    # Once the server's version is known: one GetFolder (root + every well-known id) and one FindFolder Deep.
    seq = srv.last_seq()
    assert src.open_mailbox("mover@example.com").mail_folders(None, [])
    assert ops_since(srv, seq) == ["GetFolder", "FindFolder"]


def test_allow_and_deny_lists(srv, make_source):
    mb = make_source().open_mailbox("ap@example.com")
    assert [f.path for f in mb.mail_folders(["inbox"], [])] == ["Inbox", "Inbox/Suppliers"]
    assert [f.path for f in mb.mail_folders(["Inbox"], ["INBOX/suppliers"])] == ["Inbox"]
    assert "Archive" not in [f.path for f in mb.mail_folders(None, ["archive"])]


def test_version_probe_when_not_configured(srv, make_source):
    mb = make_source(exchange_version=None).open_mailbox("ap@example.com")
    seq = srv.last_seq()
    assert mb.mail_folders(["Inbox"], [])
    assert ops_since(srv, seq) == ["ConvertId", "GetFolder", "FindFolder"]


# ---- sync pages ---------------------------------------------------------------------------------
def test_sync_pages_one_request_per_page_and_page_sizes_agree(srv, make_source):
    mb = make_source().open_mailbox("ap@example.com")
    inbox = folder(mb, "Inbox")
    seq = srv.last_seq()
    pages1, refs1 = full_sync(mb, inbox, page_size=1)
    assert ops_since(srv, seq) == ["SyncFolderItems"] * len(pages1)
    assert all(len(p.changes) <= 1 for p in pages1) and pages1[-1].last_page
    assert not any(p.last_page for p in pages1[:-1])
    assert len({p.sync_state for p in pages1}) == len(pages1)  # the state advances with every page
    seq = srv.last_seq()
    pages512, refs512 = full_sync(mb, inbox, page_size=512)
    assert len(pages512) == 1 and pages512[0].last_page and ops_since(srv, seq) == ["SyncFolderItems"]
    assert [r.item_id for r in refs1] == [r.item_id for r in refs512]
    assert len(refs512) == 6 and {r.change_type for r in refs512} == {"create"}
    assert {r.internet_message_id for r in refs512} == {f"<inv-{i}@acme.example>" for i in range(6)}
    assert all(r.datetime_received is not None and r.datetime_received.tzinfo for r in refs512)
    assert all(r.size and r.change_key for r in refs512)
    # a no-change poll: one request, nothing in it
    seq = srv.last_seq()
    again = list(mb.sync_pages(inbox, pages512[-1].sync_state))
    assert len(again) == 1 and not again[0].changes and not again[0].deletes and again[0].last_page
    assert ops_since(srv, seq) == ["SyncFolderItems"]


def test_resume_from_a_midway_state(srv, make_source):
    mb = make_source().open_mailbox("ap@example.com")
    inbox = folder(mb, "Inbox")
    _, everything = full_sync(mb, inbox)
    first = []
    it = mb.sync_pages(inbox, None, page_size=2)
    for _ in range(2):
        page = next(it)
        first += page.changes
        state = page.sync_state
    it.close()  # the run "dies" here; the committed state is the second page's
    _, rest = full_sync(mb, inbox, page_size=2, state=state)
    assert [r.item_id for r in first + rest] == [r.item_id for r in everything]


def test_invalid_sync_state(srv, make_source):
    mb = make_source().open_mailbox("ap@example.com")
    with pytest.raises(InvalidSyncState) as info:
        list(mb.sync_pages(folder(mb, "Inbox"), "bm90LWEtc3RhdGU="))
    assert info.value.reason == "invalid_sync_state"


# ---- fetch --------------------------------------------------------------------------------------
def test_fetch_is_byte_identical_to_the_eml_files(srv, make_source, eml_root):
    src = make_source(max_connections=3, fetch_chunk_size=5)
    mb = src.open_mailbox("ap@example.com")
    expected = files_by_folder(eml_root)
    for path, files in expected.items():
        f = folder(mb, path)
        _, refs = full_sync(mb, f)
        seq = srv.last_seq()
        result = mb.fetch(refs, f)
        assert ops_since(srv, seq).count("GetItem") == -(-len(refs) // 5)
        table = result.table
        assert table.schema == STAGED_SCHEMA and result.missing_ids == [] and result.failed == {}
        assert table.column("item_id").to_pylist() == [r.item_id for r in refs]  # input order kept
        assert sorted(table.column("mime_content").to_pylist()) == sorted(files), path
        assert set(table.column("folder_path").to_pylist()) == {path}
        assert set(table.column("folder_id").to_pylist()) == {f.folder_id}
        assert set(table.column("mailbox").to_pylist()) == {"ap@example.com"}
        assert table.column("datetime_received").null_count == 0


def test_parse_fix_equivalence_over_the_wire(srv, make_source):
    """Our GetItem (buffered parse) and the same request through exchangelib's 1-byte path give identical XML."""

    class OriginalParseGetItem(GetItem):
        get = RawGetItem.get

    mb = make_source().open_mailbox("ap@example.com")
    _, refs = full_sync(mb, folder(mb, "Inbox"))
    ids = [r.item_id for r in refs] + ["AAMkAGRvZXMtbm90LWV4aXN0"]
    fast = RawGetItem(account=mb.account).get(ids, FETCH_FIELDS)
    slow = OriginalParseGetItem(account=mb.account).get(ids, FETCH_FIELDS)
    assert len(fast) == len(slow) == len(ids)
    for a, b in zip(fast, slow):
        if isinstance(a, Exception):
            assert type(a) is type(b) and str(a) == str(b)
        else:
            assert etree.tostring(a, method="c14n") == etree.tostring(b, method="c14n")
    assert isinstance(fast[-1], Exception)


def test_vanished_items_are_skipped_and_reported(srv, make_source):
    mb = make_source().open_mailbox("mover@example.com")
    inbox = folder(mb, "Inbox")
    _, refs = full_sync(mb, inbox)
    gone = refs[0]
    srv.delete("mover@example.com", gone.internet_message_id)
    result = mb.fetch(refs, inbox)
    assert result.missing_ids == [gone.item_id]
    assert result.table.num_rows == len(refs) - 1


def test_move_is_delete_plus_create_with_a_new_id(srv, make_source):
    mb = make_source().open_mailbox("mover@example.com")
    inbox, archive = folder(mb, "Inbox"), folder(mb, "Archive")
    in_pages, in_refs = full_sync(mb, inbox)
    ar_pages, _ = full_sync(mb, archive)
    moved = in_refs[0]
    srv.move("mover@example.com", moved.internet_message_id, "Archive")
    in_after, _ = full_sync(mb, inbox, state=in_pages[-1].sync_state)
    assert [d for p in in_after for d in p.deletes] == [moved.item_id]
    ar_after, ar_new = full_sync(mb, archive, state=ar_pages[-1].sync_state)
    assert len(ar_new) == 1 and ar_new[0].change_type == "create"
    assert ar_new[0].item_id != moved.item_id
    assert ar_new[0].internet_message_id == moved.internet_message_id
    assert ar_new[0].datetime_received == moved.datetime_received
    result = mb.fetch([moved, ar_new[0]], archive)
    assert result.missing_ids == [moved.item_id] and result.table.num_rows == 1


# ---- backfill -----------------------------------------------------------------------------------
def test_backfill_by_received_range(srv, make_source):
    mb = make_source().open_mailbox("ap@example.com")
    inbox = folder(mb, "Inbox")
    _, refs = full_sync(mb, inbox)
    times = sorted(r.datetime_received for r in refs)
    start, end = times[1], times[4]
    seq = srv.last_seq()
    pages = list(mb.find_range(inbox, start, end, page_size=2))
    got = [r for p in pages for r in p]
    assert all(len(p) <= 2 for p in pages)
    assert ops_since(srv, seq) == ["FindItem"] * len(pages)  # never SyncFolderItems
    assert sorted(r.item_id for r in got) == sorted(r.item_id for r in refs if start <= r.datetime_received < end)
    assert {r.change_type for r in got} == {"backfill"}
    assert [r.datetime_received for r in got] == sorted(r.datetime_received for r in got)  # oldest first
    everything = [r for p in mb.find_range(inbox, None, None) for r in p]
    assert len(everything) == len(refs)
    assert [r for p in mb.find_range(inbox, times[-1] + timedelta(seconds=1), None) for r in p] == []


# ---- access -------------------------------------------------------------------------------------
def test_delegate_without_grant_is_denied(srv, make_source):
    with pytest.raises(MailboxAccessDenied) as info:
        make_source().open_mailbox("other@example.com").mail_folders(None, [])
    assert info.value.reason == "mailbox_access_denied" and "other@example.com" in str(info.value)


def test_impersonation_allowed_and_denied(srv, make_source):

    mb = make_source(IMP_PASSWORD, username="imp@example.com", access_type="impersonation").open_mailbox(
        "other@example.com")
    seq = srv.last_seq()
    assert mb.mail_folders(["Inbox"], [])
    assert all(e.get("mailbox") in (None, "other@example.com") for e in srv.log(seq))
    with pytest.raises(MailboxAccessDenied):
        make_source(username="svc@example.com", access_type="impersonation").open_mailbox(
            "ap@example.com").mail_folders(None, [])


def test_unknown_mailbox(srv, make_source):

    with pytest.raises(MailboxNotFound) as info:
        make_source(IMP_PASSWORD, username="imp@example.com", access_type="impersonation").open_mailbox(
            "nobody@example.com").mail_folders(None, [])
    assert info.value.reason == "mailbox_not_found" and "nobody@example.com" in str(info.value)


def test_only_read_operations_were_sent(srv):
    log = srv.log()
    assert log and {e["operation"] for e in log} <= READ_OPS
    assert not any(e.get("write") for e in log)
