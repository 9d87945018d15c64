"""The pipeline over Microsoft Graph, end to end: the real flow through a real Prefect API against the
Graph test server (HTTPS, msal client credentials), into the embedded store."""

from __future__ import annotations

import secrets
from pathlib import Path

from ews_testserver.testing import date_n, make_mime, running_server

from .conftest import all_comments, graph_config, hexid, store_of

READ_ONLY = {"GET"}


def test_corpus_gives_the_same_comments_as_over_ews(graph, sync, tmp_path, corpus_dir: Path, monkeypatch):
    """The same mail in the EWS and the Graph test server -> identical comments (ids, text, properties)."""
    password = "pw-" + secrets.token_hex(6)
    monkeypatch.setenv("GRAPH_E2E_EWS_PASSWORD", password)
    gsrv = graph([f"ap@example.com={corpus_dir}"])
    gdata = graph_config(gsrv, tmp_path / "g", ["ap@example.com"])
    gsummary, code = sync(gdata)
    assert code == 0, gsummary
    with running_server(accounts=[f"svc@example.com:{password}"], mailboxes=[f"ap@example.com={corpus_dir}"],
                        grants=["svc@example.com=ap@example.com"], tls=True, auth="ntlm") as esrv:
        edata = graph_config(gsrv, tmp_path / "e", ["ap@example.com"], name="ews-e2e")
        edata["connection"] = {"kind": "ews", "server_url": esrv.url, "auth": "ntlm", "username": "svc@example.com",
                               "password": {"env": "GRAPH_E2E_EWS_PASSWORD"}, "access_type": "delegate",
                               "tls": {"verify": True, "ca_bundle": esrv.ca_file}}
        esummary, code = sync(edata)
        assert code == 0, esummary
    over_graph, over_ews = all_comments(gdata), all_comments(edata)
    assert len(over_graph) >= 50  # the corpus repeats Message-IDs: fewer comments than files
    assert set(over_graph) == set(over_ews)
    for cid, comment in over_graph.items():
        g, e = comment.to_api(), over_ews[cid].to_api()
        # The only legitimate difference: the server's item id (EWS ItemId vs Graph immutable id).
        assert g["user_properties"].pop("string:Item ID") != e["user_properties"].pop("string:Item ID")
        assert g == e, cid
    assert gsummary["items"] == esummary["items"]
    assert gsummary["totals"] == esummary["totals"]
    entries = gsrv.log()
    assert {e["method"] for e in entries if e["operation"] != "token"} <= READ_ONLY | {"POST"}
    assert not any(e.get("write") for e in entries)
    assert all(e["immutable"] for e in entries if e["operation"] not in ("token", "batch"))
    assert gsrv.health()["max_in_flight"]["ap@example.com"] <= 4


def test_move_cc_delete_and_quiet_poll(graph, sync, tmp_path):
    srv = graph(["ap@example.com=generate:30", "ar@example.com=generate:30"])
    srv.add_message("ap@example.com", make_mime("Invoice 4411 overdue", "<move-1@acme.com>", date_n(1)), "Inbox")
    srv.add_message("ap@example.com", make_mime("Spam", "<del-1@acme.com>", date_n(2)), "Inbox")
    srv.create_folder("ap@example.com", "Inbox/Suppliers")
    data = graph_config(srv, tmp_path, ["ap@example.com", "ar@example.com"])
    first, code = sync(data)
    assert code == 0, first
    comments = all_comments(data)
    # CC copies (the generator CCs ~10% into the other mailbox) are one comment each.
    per_box = {m["mailbox"]: m["items"] for m in first["mailboxes"]}
    assert per_box["ap@example.com"] + per_box["ar@example.com"] > len(comments)
    assert first["totals"]["new"] == len(comments) == first["totals"]["units"]
    cid = hexid("<move-1@acme.com>")
    assert comments[cid].user_properties["string:Folder"] == "Inbox"

    # A quiet poll: one delta GET per folder, no MIME.
    mark = srv.last_seq()
    quiet, code = sync(data)
    assert code == 0 and quiet["totals"]["units"] == 0 and quiet["totals"]["new"] == 0
    ops = [e["operation"] for e in srv.log(mark)]
    assert "message.value" not in ops and "messages.delta" in ops

    srv.move("ap@example.com", "<move-1@acme.com>", "Inbox/Suppliers")
    srv.delete("ap@example.com", "<del-1@acme.com>")
    summary, code = sync(data)
    assert code == 0, summary
    after = all_comments(data)
    assert after[cid].user_properties["string:Folder"] == "Inbox/Suppliers"
    assert after[cid].messages[0].subject.text == "Invoice 4411 overdue"
    assert summary["totals"]["units"] == 0 and summary["totals"]["updated_properties_only"] == 1
    ap = next(m for m in summary["mailboxes"] if m["mailbox"] == "ap@example.com")
    # The move's @removed in Inbox + the deletion: both recorded as deletions of the folder they left.
    assert ap["deleted"] == 2
    from exchange_sync.store import SqlStore

    assert SqlStore(data["state"]["url"]).count_deletions("graph-e2e", "ap@example.com") == 2


def test_start_time_skips_older_mail(graph, sync, tmp_path):
    srv = graph(["ap@example.com="])
    srv.add_message("ap@example.com", make_mime("old", "<old@acme.com>"), received="2023-06-01T00:00:00Z")
    srv.add_message("ap@example.com", make_mime("new", "<new@acme.com>"), received="2024-06-01T00:00:00Z")
    data = graph_config(srv, tmp_path, [{"email": "ap@example.com", "start_timestamp": "2024-01-01T00:00:00Z"}])
    summary, code = sync(data)
    assert code == 0
    ids = set(all_comments(data))
    assert hexid("<new@acme.com>") in ids and hexid("<old@acme.com>") not in ids


def test_throttling_with_retry_after_is_honoured(graph, sync, tmp_path):
    srv = graph(["ap@example.com=generate:40"])
    srv.set_faults([{"operation": "messages.delta", "kind": "throttle", "retry_after_s": 1, "count": 2},
                    {"operation": "message.value", "kind": "throttle", "retry_after_s": 1, "after": 3, "count": 5},
                    {"operation": "mailFolders.delta", "kind": "http_503", "retry_after_s": 1, "count": 1}])
    data = graph_config(srv, tmp_path, ["ap@example.com"])
    summary, code = sync(data)
    assert code == 0, summary
    assert summary["totals"]["new"] == len(all_comments(data)) > 0
    assert summary["items"] == 40
    fired = {f["operation"]: f["fired"] for f in srv.faults()}
    assert fired == {"messages.delta": 2, "message.value": 5, "mailFolders.delta": 1}
    statuses = [e["status"] for e in srv.log() if e["operation"] == "message.value"]
    assert statuses.count(429) == 5 and statuses.count(200) == 40  # every throttled $value was resent
    assert srv.health()["max_in_flight"]["ap@example.com"] <= 4


def test_token_expiry_mid_run_reacquires(graph, sync, tmp_path):
    srv = graph(["ap@example.com=generate:30"])
    # After a few delta pages, the token is expired server-side: msal must fetch a new one and carry on.
    srv.set_faults([{"operation": "messages.delta", "kind": "unauthorized", "after": 2, "count": 1}])
    data = graph_config(srv, tmp_path, ["ap@example.com"], batch_size=5)
    summary, code = sync(data)
    assert code == 0, summary
    assert summary["items"] == 30
    tokens = [e for e in srv.log() if e["operation"] == "token"]
    assert len(tokens) == 2 and all(e["status"] == 200 for e in tokens)
    assert srv.health()["tokens_issued"] == 2


def test_410_resyncs_without_duplicates_or_double_billing(graph, sync, tmp_path):
    srv = graph(["ap@example.com=generate:25"])
    data = graph_config(srv, tmp_path, ["ap@example.com"])
    first, code = sync(data)
    assert code == 0
    billed = first["totals"]["units"]
    srv.add_message("ap@example.com", make_mime("late 1", "<late-1@acme.com>", date_n(5)), "Inbox")
    srv.add_message("ap@example.com", make_mime("late 2", "<late-2@acme.com>", date_n(6)), "Inbox")
    srv.expire_delta_states()  # every stored deltaLink now answers 410 Gone
    second, code = sync(data)
    assert code == 0, second
    assert second["totals"]["new"] == 2 and second["totals"]["units"] == 2
    assert second["totals"]["updated_text_changed"] == 0
    assert len(all_comments(data)) == first["totals"]["new"] + 2
    gone = [e for e in srv.log() if e.get("status") == 410]
    assert gone, "the stored delta links were not rejected"
    usage = store_of(data).usage_report("graph-e2e") if hasattr(store_of(data), "usage_report") else None
    assert billed + 2 == first["totals"]["units"] + second["totals"]["units"]
    assert usage is None or usage  # the ledger exists when the store exposes it
