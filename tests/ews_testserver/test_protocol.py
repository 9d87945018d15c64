"""The EWS test server against the unmodified exchangelib client, over real sockets."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import json
import signal
import subprocess
import sys

import pytest
import requests
from exchangelib import FolderCollection
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorImpersonateUserDenied,
    ErrorInvalidOperation,
    ErrorInvalidSyncStateData,
    ErrorItemNotFound,
    ErrorNameResolutionNoResults,
    ErrorNonExistentMailbox,
    UnauthorizedError,
)
from exchangelib.folders import Calendar, Contacts, Messages, Tasks
from exchangelib.items import Message

from ews_testserver.testing import RunningServer, date_n, exchangelib_account, make_mime

MIME_FIELDS = ["mime_content", "datetime_received"]


def _folder(acc, path: str):
    node = acc.msg_folder_root
    for part in path.split("/"):
        node = node / part
    return node


# -- CLI ----------------------------------------------------------------------------------------

def test_cli_prints_one_json_line_and_exits_cleanly_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "exchange_sync", "ews-server", "--account", "a@example.com:pw",
         "--mailbox", "a@example.com=generate:5", "--tls"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        info = json.loads(line)
        assert set(info) >= {"url", "admin_url", "ca_file", "admin_token"}
        assert info["url"].startswith("https://127.0.0.1:") and info["url"].endswith("/EWS/Exchange.asmx")
        with open(info["ca_file"]) as fh:
            assert "BEGIN CERTIFICATE" in fh.read()
        resp = requests.get(info["admin_url"] + "/mailboxes", verify=info["ca_file"],
                            headers={"Authorization": f"Bearer {info['admin_token']}"}, timeout=10)
        assert resp.status_code == 200 and resp.json()[0]["address"] == "a@example.com"
        assert requests.get(info["admin_url"] + "/log", verify=info["ca_file"], timeout=10).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _err = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert out == ""  # nothing after the JSON line


# -- folders ------------------------------------------------------------------------------------

def test_walk_folders_classes_and_counts(srv: RunningServer, user_account) -> None:
    prefix = user_account.msg_folder_root.absolute + "/"
    folders = {f.absolute[len(prefix):]: f for f in user_account.msg_folder_root.walk()}
    assert isinstance(folders["Calendar"], Calendar)
    assert isinstance(folders["Contacts"], Contacts)
    assert isinstance(folders["Tasks"], Tasks)
    expected = {f["path"]: f["count"] for f in srv.mailboxes()[0]["folders"]}
    for path, count in expected.items():
        assert folders[path].total_count == count, path
    assert isinstance(folders["Inbox/Suppliers"], Messages)
    assert sum(expected.values()) >= 120  # owned messages (+ CC'd copies from shared@)


def test_find_folder_pages_over_100_folders(srv: RunningServer) -> None:
    for i in range(105):
        srv.create_folder("moves@example.com", f"Projects/P{i:03d}")
    acc = exchangelib_account(srv, "moves@example.com", "x", "moves@example.com")
    srv.set_password("moves@example.com", "x")
    seq = srv.last_seq()
    names = {f.name for f in acc.msg_folder_root.walk()}
    assert {f"P{i:03d}" for i in range(105)} <= names
    assert srv.operations(seq).count("FindFolder") >= 2  # IndexedPageFolderView of 100


def test_sync_folder_hierarchy_reports_new_folders(srv: RunningServer) -> None:
    srv.set_password("moves@example.com", "x")
    acc = exchangelib_account(srv, "moves@example.com", "x", "moves@example.com")
    root = acc.msg_folder_root
    first = list(root.sync_hierarchy())
    assert {ct for ct, _f in first} == {"create"}
    srv.create_folder("moves@example.com", "Hierarchy/New")
    later = list(root.sync_hierarchy(sync_state=root.folder_sync_state))
    assert [(ct, f.name) for ct, f in later] == [("create", "Hierarchy"), ("create", "New")]


# -- SyncFolderItems ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def paging_folders(srv: RunningServer) -> dict[int, int]:
    sizes = [0, 1, 511, 512, 513]
    for n in sizes:
        srv.create_folder("paging@example.com", f"P{n}")
        for i in range(n):
            srv.add_message("paging@example.com", make_mime(f"m{i}", f"<p{n}.{i}@example.org>", date_n(i)), f"P{n}")
    return {n: n for n in sizes}


@pytest.mark.parametrize("n", [0, 1, 511, 512, 513])
def test_sync_items_paging(srv: RunningServer, paging_folders, n: int) -> None:
    srv.set_password("paging@example.com", "pw")
    acc = exchangelib_account(srv, "paging@example.com", "pw", "paging@example.com")
    folder = acc.msg_folder_root / f"P{n}"
    seq = srv.last_seq()
    changes = list(folder.sync_items(only_fields=["message_id", "datetime_received"], max_changes_returned=512))
    assert [c for c, _ in changes] == ["create"] * n
    assert sorted(item.message_id for _c, item in changes) == sorted(f"<p{n}.{i}@example.org>" for i in range(n))
    assert len({item.id for _c, item in changes}) == n
    assert srv.operations(seq).count("SyncFolderItems") == max(1, -(-n // 512))
    # Nothing new: one request, no changes, state unchanged.
    again = list(folder.sync_items(sync_state=folder.item_sync_state, only_fields=["message_id"], max_changes_returned=512))
    assert again == []


def test_find_item_paging_restrictions_and_sort(srv: RunningServer, paging_folders) -> None:
    srv.set_password("paging@example.com", "pw")
    acc = exchangelib_account(srv, "paging@example.com", "pw", "paging@example.com")
    folder = acc.msg_folder_root / "P513"
    seq = srv.last_seq()
    everything = list(folder.all().order_by("-datetime_received").only("subject", "datetime_received"))
    assert len(everything) == 513
    assert [i.subject for i in everything[:2]] == ["m512", "m511"]
    assert srv.operations(seq).count("FindItem") == 6  # pages of 100
    t = lambda i: dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=i)  # noqa: E731
    from exchangelib import EWSDateTime, UTC

    ews = lambda i: EWSDateTime.from_datetime(t(i)).astimezone(UTC)  # noqa: E731
    assert folder.filter(datetime_received__gt=ews(500)).count() == 12
    assert folder.filter(datetime_received__gte=ews(500)).count() == 13
    assert folder.filter(datetime_received__lt=ews(10)).count() == 10
    assert folder.filter(datetime_received__lte=ews(10)).count() == 11
    window = list(folder.filter(datetime_received__gte=ews(100), datetime_received__lt=ews(110))
                  .order_by("datetime_received").only("subject"))
    assert [i.subject for i in window] == [f"m{i}" for i in range(100, 110)]
    # a complex field makes exchangelib do FindItem(IdOnly) + GetItem
    ids = list(folder.filter(datetime_received__gte=ews(505)).order_by("datetime_received").only("message_id"))
    assert [i.message_id for i in ids] == [f"<p513.{i}@example.org>" for i in range(505, 513)]


def test_move_is_delete_plus_create_with_new_id_and_same_received(srv: RunningServer) -> None:
    srv.set_password("moves@example.com", "x")
    mime = make_mime("to be moved", "<move1@example.org>", date_n(1))
    srv.add_message("moves@example.com", mime, "Inbox")
    acc = exchangelib_account(srv, "moves@example.com", "x", "moves@example.com")
    inbox = acc.inbox
    srv.create_folder("moves@example.com", "Archive")
    archive = acc.msg_folder_root / "Archive"
    created = [i for c, i in inbox.sync_items(only_fields=["message_id", "datetime_received"]) if c == "create"]
    old = next(i for i in created if i.message_id == "<move1@example.org>")
    list(archive.sync_items(only_fields=["message_id"]))
    srv.move("moves@example.com", "<move1@example.org>", "Archive")
    src = list(inbox.sync_items(sync_state=inbox.item_sync_state, only_fields=["message_id"]))
    assert [(c, i.id) for c, i in src] == [("delete", old.id)]
    dst = list(archive.sync_items(sync_state=archive.item_sync_state, only_fields=["message_id", "datetime_received"]))
    assert [c for c, _ in dst] == ["create"]
    new = dst[0][1]
    assert new.id != old.id and new.message_id == old.message_id
    assert new.datetime_received == old.datetime_received
    stale, fresh = acc.fetch(ids=[(old.id, old.changekey), (new.id, new.changekey)], only_fields=MIME_FIELDS)
    assert isinstance(stale, ErrorItemNotFound)
    assert fresh.mime_content == mime


def test_edit_changes_changekey_and_is_an_update(srv: RunningServer) -> None:
    srv.set_password("moves@example.com", "x")
    srv.add_message("moves@example.com", make_mime("before", "<edit1@example.org>"), "Edits")
    acc = exchangelib_account(srv, "moves@example.com", "x", "moves@example.com")
    folder = acc.msg_folder_root / "Edits"
    (c, item), = list(folder.sync_items(only_fields=["subject", "message_id"]))
    srv.edit("moves@example.com", "<edit1@example.org>", subject="after – edited", body="new body")
    (c2, item2), = list(folder.sync_items(sync_state=folder.item_sync_state, only_fields=["subject", "text_body"]))
    assert c2 == "update" and item2.id == item.id and item2.changekey != item.changekey
    assert item2.subject == "after – edited"
    assert "new body" in item2.text_body
    fetched, = acc.fetch(ids=[(item2.id, item2.changekey)], only_fields=["mime_content"])
    msg = email.message_from_bytes(fetched.mime_content, policy=email.policy.default)
    assert msg["Subject"] == "after – edited" and msg["Message-ID"] == "<edit1@example.org>"
    srv.mark_read("moves@example.com", "<edit1@example.org>")
    (c3, (rid, is_read)), = list(folder.sync_items(sync_state=folder.item_sync_state, only_fields=["subject"]))
    assert c3 == "read_flag_change" and rid.id == item.id and is_read is True
    srv.delete("moves@example.com", "<edit1@example.org>")
    (c4, did), = list(folder.sync_items(sync_state=folder.item_sync_state, only_fields=["subject"]))
    assert c4 == "delete" and did.id == item.id


def test_invalid_sync_state(srv: RunningServer, user_account) -> None:
    with pytest.raises(ErrorInvalidSyncStateData):
        list(user_account.inbox.sync_items(sync_state="garbage!!", only_fields=["subject"]))
    list(user_account.inbox.sync_items(only_fields=["subject"]))
    state = user_account.inbox.item_sync_state
    with pytest.raises(ErrorInvalidSyncStateData):  # a state of another folder
        list((user_account.msg_folder_root / "Archive").sync_items(sync_state=state, only_fields=["subject"]))


# -- GetItem --------------------------------------------------------------------------------------

def test_get_item_fields_match_the_mime(srv: RunningServer, user_account) -> None:
    items = [i for _c, i in user_account.inbox.sync_items(only_fields=["subject"], max_changes_returned=50)][:40]
    fields = ["mime_content", "message_id", "subject", "datetime_sent", "datetime_received", "sender", "author",
              "to_recipients", "cc_recipients", "body", "text_body", "headers", "attachments", "has_attachments",
              "conversation_id", "parent_folder_id", "size", "is_read", "item_class"]
    fetched = list(user_account.fetch(ids=[(i.id, i.changekey) for i in items], only_fields=fields))
    with_attachments = 0
    for it in fetched:
        assert isinstance(it, Message)
        msg = email.message_from_bytes(it.mime_content, policy=email.policy.default)
        assert it.message_id == msg["Message-ID"]
        assert it.subject == str(msg["Subject"])
        assert it.author.email_address == msg["From"].addresses[0].addr_spec
        assert [r.email_address for r in it.to_recipients] == [a.addr_spec for a in msg["To"].addresses]
        assert it.size == len(it.mime_content)
        assert it.item_class == "IPM.Note"
        assert it.parent_folder_id.id == user_account.inbox.id
        assert it.text_body and it.body is not None and it.conversation_id is not None
        assert {h.name for h in it.headers} >= {"Received", "From", "Message-ID"}
        sent = msg["Date"].datetime
        assert it.datetime_sent == sent
        if it.attachments:
            with_attachments += 1
            assert it.has_attachments
            att = it.attachments[0]
            assert att.size > 0 and att.name
            assert len(att.content) == att.size  # GetAttachment
    assert with_attachments >= 1


def test_conversation_ids_group_threads(srv: RunningServer, user_account) -> None:
    items = [i for _c, i in user_account.inbox.sync_items(only_fields=["subject", "conversation_id", "message_id"])]
    by_conv: dict[str, set[str]] = {}
    for it in items:
        by_conv.setdefault(it.conversation_id.id, set()).add(it.subject.split(": ", 1)[-1].split(" : ", 1)[-1])
    assert any(len(v) == 1 for v in by_conv.values())
    assert len(by_conv) < len(items)  # replies share their thread's conversation


def test_cc_copies_are_distinct_items_with_same_message_id(srv: RunningServer) -> None:
    user = {f["path"]: f for f in srv.mailboxes()[0]["folders"]}
    assert user["Inbox"]["count"] > 0
    acc_u = exchangelib_account(srv, "user@example.com", "secret", "user@example.com")
    acc_d = exchangelib_account(srv, "delegate@example.com", "dpass", "shared@example.com")
    ids_u = {i.message_id: i.id for _c, i in acc_u.inbox.sync_items(only_fields=["message_id"])}
    ids_s = {i.message_id: i.id for _c, i in acc_d.inbox.sync_items(only_fields=["message_id"])}
    common = set(ids_u) & set(ids_s)
    assert common, "generate: should CC some messages to the other generated mailbox"
    assert all(ids_u[m] != ids_s[m] for m in common)


# -- auth and access --------------------------------------------------------------------------------

@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_auth_schemes_and_wrong_password(srv: RunningServer, auth: str) -> None:
    acc = exchangelib_account(srv, "user@example.com", "secret", "user@example.com", auth=auth)
    assert acc.inbox.total_count > 0
    from exchangelib import close_connections

    close_connections()
    bad = exchangelib_account(srv, "user@example.com", "wrong", "user@example.com", auth=auth)
    with pytest.raises(UnauthorizedError):
        bad.inbox  # noqa: B018


def test_auth_type_and_version_are_guessed(srv: RunningServer) -> None:
    from exchangelib import NTLM, Account, Configuration, Credentials

    cfg = Configuration(service_endpoint=srv.url, credentials=Credentials("user@example.com", "secret"))
    acc = Account("user@example.com", config=cfg, autodiscover=False, access_type="delegate")
    assert acc.inbox.total_count > 0
    assert cfg.auth_type == NTLM
    assert acc.version.build.major_version == 15 and acc.version.build.minor_version == 1
    assert "ConvertId" in srv.operations()


def test_resolve_names(srv: RunningServer, user_account) -> None:
    found = user_account.protocol.resolve_names(["shared@example.com"])
    assert [m.email_address for m in found] == ["shared@example.com"]
    (none,) = user_account.protocol.resolve_names(["nobody-at-all@nowhere.example"])
    assert isinstance(none, ErrorNameResolutionNoResults)  # exchangelib yields the error instance


def test_delegate_allowed_and_denied(srv: RunningServer) -> None:
    ok = exchangelib_account(srv, "delegate@example.com", "dpass", "shared@example.com", auth="ntlm")
    assert ok.inbox.total_count > 0
    denied = exchangelib_account(srv, "nobody@example.com", "npass", "shared@example.com")
    with pytest.raises(ErrorAccessDenied):
        list(denied.inbox.sync_items(only_fields=["subject"]))
    entries = [e for e in srv.log() if e["account"] == "nobody@example.com"]
    assert entries and all(e["mailbox"] == "shared@example.com" for e in entries)


def test_unknown_mailbox(srv: RunningServer) -> None:
    acc = exchangelib_account(srv, "user@example.com", "secret", "ghost@example.com")
    with pytest.raises(ErrorNonExistentMailbox):
        acc.inbox  # noqa: B018


@pytest.mark.parametrize("auth", ["ntlm", "basic"])
def test_impersonation_allowed(srv: RunningServer, auth: str) -> None:
    acc = exchangelib_account(srv, "EXAMPLE\\svc", "svc:pw", "shared@example.com", auth=auth,
                              access_type="impersonation")
    changes = list(acc.inbox.sync_items(only_fields=["message_id"]))
    assert changes
    last = [e for e in srv.log() if e["operation"] == "SyncFolderItems"][-1]
    assert last["impersonate"] == "shared@example.com" and last["account"] == "EXAMPLE\\svc"


def test_impersonation_denied_and_unknown(srv: RunningServer) -> None:
    acc = exchangelib_account(srv, "user@example.com", "secret", "shared@example.com", access_type="impersonation")
    with pytest.raises(ErrorImpersonateUserDenied):
        acc.inbox  # noqa: B018
    ghost = exchangelib_account(srv, "svc", "svc:pw", "ghost@example.com", access_type="impersonation", auth="ntlm")
    with pytest.raises(ErrorNonExistentMailbox):
        ghost.inbox  # noqa: B018


def test_bearer_token(srv: RunningServer) -> None:
    token = srv.issue_token("user@example.com")
    body = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            b'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
            b'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Body><m:GetFolder>'
            b'<m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds>'
            b'<t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder></s:Body></s:Envelope>')
    ok = requests.post(srv.url, data=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert ok.status_code == 200 and b"ResponseClass=\"Success\"" in ok.content
    bad = requests.post(srv.url, data=body, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad.status_code == 401 and bad.headers.get("Connection", "").lower() != "close"
    form = {"grant_type": "client_credentials", "client_id": "user@example.com", "client_secret": "secret"}
    tok = requests.post(srv.info["token_url"], data=form, timeout=10).json()["access_token"]
    assert requests.post(srv.url, data=body, headers={"Authorization": f"Bearer {tok}"}, timeout=10).status_code == 200


def test_password_change_and_mailbox_removal_mid_run(srv: RunningServer) -> None:
    srv.add_mailbox("temp@example.com")
    srv.set_password("temp@example.com", "one")
    for auth in ("basic", "ntlm"):
        srv.set_password("temp@example.com", "one")
        acc = exchangelib_account(srv, "temp@example.com", "one", "temp@example.com", auth=auth)
        assert acc.inbox.total_count == 0
        srv.set_password("temp@example.com", "two")
        with pytest.raises(UnauthorizedError):
            acc.inbox.refresh()
        from exchangelib import close_connections

        close_connections()
    srv.set_password("temp@example.com", "one")
    acc = exchangelib_account(srv, "temp@example.com", "one", "temp@example.com")
    inbox = acc.inbox
    srv.delete_mailbox("temp@example.com")
    with pytest.raises(ErrorNonExistentMailbox):
        list(inbox.sync_items(only_fields=["subject"]))


# -- writes and unimplemented operations ----------------------------------------------------------

def test_writes_are_refused_and_logged_except_move(srv: RunningServer) -> None:
    srv.set_password("moves@example.com", "x")
    srv.add_message("moves@example.com", make_mime("w", "<write1@example.org>"), "Writes")
    acc = exchangelib_account(srv, "moves@example.com", "x", "moves@example.com")
    folder = acc.msg_folder_root / "Writes"
    seq = srv.last_seq()
    with pytest.raises(ErrorAccessDenied):
        Message(account=acc, folder=folder, subject="new").save()
    (item,) = list(folder.all().only("subject"))
    with pytest.raises(ErrorAccessDenied):
        item.delete()
    new_id, = acc.bulk_move(ids=[(item.id, item.changekey)], to_folder=acc.inbox)
    assert new_id[0] != item.id
    writes = [e["operation"] for e in srv.log(seq) if e["write"]]
    assert writes == ["CreateItem", "DeleteItem", "MoveItem"]
    assert all(not e["write"] for e in srv.log() if e["account"] == "user@example.com")


def test_unimplemented_operation_is_a_clear_error(srv: RunningServer, user_account) -> None:
    with pytest.raises(ErrorInvalidOperation, match="does not implement"):
        user_account.oof_settings  # noqa: B018
    assert srv.operations()[-1] == "GetUserOofSettings"


def test_admin_api_errors(srv: RunningServer) -> None:
    with pytest.raises(AssertionError, match="404"):
        srv.move("user@example.com", "<nope@x>", "Archive")
    with pytest.raises(AssertionError, match="400"):
        srv.set_faults([{"kind": "explode"}])
    assert srv.admin("POST", "/messages", {"mailbox": "user@example.com", "mime_base64": "!!"}, expect=400)
    mbx = {m["address"]: m for m in srv.mailboxes()}
    assert "Inbox" in {f["path"] for f in mbx["user@example.com"]["folders"]}
    raw = base64.b64encode(make_mime("x", "<adm@x>")).decode()
    out = srv.admin("POST", "/messages", {"mailbox": "user@example.com", "folder": "Admin/New", "mime_base64": raw})
    assert out["message_id"] == "<adm@x>" and out["item_id"]
    srv.delete("user@example.com", "<adm@x>")
    assert FolderCollection is not None
