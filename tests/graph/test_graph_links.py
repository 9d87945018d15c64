"""Graph's @odata.nextLink / @odata.deltaLink are opaque: the client stores and replays them byte for byte.

The Graph test server writes links as Microsoft documents them (``https://.../v1.0/users('...')/mailFolders('...')
/messages/delta?$skiptoken=...``). A client that parses them to check which folder a state belongs to
rejected these as foreign and resynced the folder from scratch after every page: a 42-message folder then
never finished (868 delta requests in 90 s). These tests fail fast on such a client: every resume is
bounded by a request budget (the server refuses delta requests beyond it with 403).
"""

from __future__ import annotations

import base64

import pytest

from exchange_sync.config import GraphConnection
from exchange_sync.sources.graph import GraphSource
from exchange_sync.sources import InvalidSyncState, ServerUnavailable
from graph_testserver.testing import running_graph_server

from .conftest import all_comments, graph_config

FOLDER_SIZE = 42
PAGE = 10
PAGES = -(-FOLDER_SIZE // PAGE)  # 5


@pytest.fixture(scope="module")
def srv():
    with running_graph_server(mailboxes=["ap@example.com=generate:3"]) as server:
        server.create_folder("ap@example.com", "Big")
        from ews_testserver.testing import date_n, make_mime

        for i in range(FOLDER_SIZE):
            server.add_message("ap@example.com", make_mime(f"m{i}", f"<big-{i}@acme.com>", date_n(i)), "Big")
        yield server


def source(srv, **kw) -> GraphSource:
    return GraphSource(GraphConnection.model_validate(srv.connection(**kw)))


def big(mb):
    return next(f for f in mb.mail_folders() if f.path == "Big")


def resume_page_by_page(mb, folder, state, budget: int):
    """What the pipeline does: one page per call, resumed from the committed state; bounded."""
    pages = []
    for _ in range(budget):
        page = next(iter(mb.sync_pages(folder, state, page_size=PAGE)))
        pages.append(page)
        state = page.sync_state
        if page.last_page:
            return pages
    raise AssertionError(f"no deltaLink after {budget} resumed pages (the folder has {PAGES})")


def test_links_are_in_microsofts_form_and_replayed_byte_for_byte(srv):
    with source(srv) as src:
        mb = src.open_mailbox("ap@example.com")
        folder = big(mb)
        mark = srv.last_seq()
        pages = resume_page_by_page(mb, folder, None, budget=PAGES + 2)
        assert len(pages) == PAGES
        assert sum(len(p.changes) for p in pages) == FOLDER_SIZE
        deltas = [e for e in srv.log(mark) if e["operation"] == "messages.delta"]
        assert len(deltas) == PAGES  # no resync: one request per page
        # Every request after the first is exactly the link the previous response gave.
        prefix = srv.graph_url.removesuffix("/v1.0")
        for page, sent in zip(pages[:-1], deltas[1:]):
            link = page.sync_state.split(":", 3)[3]
            assert link.startswith(f"{srv.graph_url}/users('ap%40example.com')/mailFolders('")
            assert "/messages/delta?$skiptoken=" in link
            assert prefix + sent["target"] == link
        assert "?$deltatoken=" in pages[-1].sync_state
        # The deltaLink of the round is replayed as given too (a quiet poll: one request, no changes).
        mark = srv.last_seq()
        again = list(mb.sync_pages(folder, pages[-1].sync_state, page_size=PAGE))
        assert len(again) == 1 and not again[0].changes and again[0].last_page
        [sent] = [e for e in srv.log(mark) if e["operation"] == "messages.delta"]
        assert prefix + sent["target"] == pages[-1].sync_state.split(":", 3)[3]


def test_state_carries_the_folder_id_and_a_foreign_state_is_rejected(srv):
    with source(srv) as src:
        mb = src.open_mailbox("ap@example.com")
        folder = big(mb)
        first = next(iter(mb.sync_pages(folder, None, page_size=PAGE)))
        assert first.sync_state.startswith(f"graph2:i:{folder.folder_id}:https://")
        inbox = next(f for f in mb.mail_folders() if f.path == "Inbox")
        with pytest.raises(InvalidSyncState):
            next(iter(mb.sync_pages(inbox, first.sync_state)))
        for junk in ("not-a-graph-state", "graph2:x:abc:https://x", "graph2:i:", "SyncState-from-EWS=="):
            with pytest.raises(InvalidSyncState):
                next(iter(mb.sync_pages(folder, junk)))


def test_graph1_states_of_the_current_format_are_still_accepted(srv):
    """States written before graph2 (links relative to graph_url, our old server's path form) resume where
    they were; so do graph1 states that hold Microsoft's key form (what the old client stored from Graph)."""
    with source(srv) as src:
        mb = src.open_mailbox("ap@example.com")
        folder = big(mb)
        first = next(iter(mb.sync_pages(folder, None, page_size=PAGE)))
        link = first.sync_state.split(":", 3)[3]
        rel = link.removeprefix(srv.graph_url)
        token = rel.split("?", 1)[1]
        old_path_form = f"graph1:i:/users/ap%40example.com/mailFolders/{folder.folder_id}/messages/delta?{token}"
        old_key_form = f"graph1:i:{rel}"
        for state in (old_path_form, old_key_form):
            mark = srv.last_seq()
            pages = resume_page_by_page(mb, folder, state, budget=PAGES + 2)
            assert len(pages) == PAGES - 1
            assert sum(len(p.changes) for p in pages) == FOLDER_SIZE - PAGE
            assert all(p.sync_state.startswith("graph2:") for p in pages)
            assert len([e for e in srv.log(mark) if e["operation"] == "messages.delta"]) == PAGES - 1
        other = next(f for f in mb.mail_folders() if f.path == "Inbox")
        with pytest.raises(InvalidSyncState):  # a graph1 state of another folder is still foreign
            next(iter(mb.sync_pages(other, old_path_form)))


def test_the_pipeline_finishes_a_42_message_folder_in_5_delta_requests(graph, sync, tmp_path):
    """End to end: with Microsoft-form links the run completes; delta requests beyond a budget are refused
    (403), so a client that resyncs after every page fails within seconds instead of looping."""
    srv = graph(["ap@example.com="])
    srv.create_folder("ap@example.com", "Big")
    from ews_testserver.testing import date_n, make_mime

    for i in range(FOLDER_SIZE):
        srv.add_message("ap@example.com", make_mime(f"m{i}", f"<big-{i}@acme.com>", date_n(i)), "Big")
    srv.set_faults([{"operation": "messages.delta", "kind": "forbidden", "after": 30, "count": 0}])
    data = graph_config(srv, tmp_path, ["ap@example.com"], batch_size=PAGE)
    summary, code = sync(data)
    deltas = [e for e in srv.log() if e["operation"] == "messages.delta"]
    refused = sum(1 for e in deltas if e.get("fault"))
    assert not refused, f"{len(deltas)} delta requests ({refused} over the budget): the client kept resyncing"
    assert code == 0, summary
    # Big: 5 pages; each other default-synced mail folder (Inbox, Sent Items, Deleted Items, Junk Email): 1.
    assert len(deltas) == PAGES + 4, [e["target"] for e in deltas]
    assert len(all_comments(data)) == FOLDER_SIZE


def test_batch_bodies_are_decoded_by_content_type():
    from exchange_sync.sources.graph.session import body_bytes

    raw = b"From: a@b\r\nSubject: x\r\n\r\nbody\xff\r\n"
    b64 = base64.b64encode(raw).decode()
    assert body_bytes({"Content-Type": "text/plain"}, b64) == raw
    assert body_bytes({"content-type": "message/rfc822"}, b64) == raw
    assert body_bytes({"Content-Type": "application/octet-stream"}, base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    # A JSON content type is a JSON body: never a MIME message, whatever Python type it decoded to.
    for body in ({"a": 1}, "RnJvbTog", ["x"]):
        with pytest.raises(ServerUnavailable, match="JSON"):
            body_bytes({"Content-Type": "application/json; odata.metadata=minimal; charset=utf-8"}, body)
    # Not JSON: the body must be base64 text (not a JSON object, not garbage), and a Content-Type is required.
    with pytest.raises(ServerUnavailable, match="base64"):
        body_bytes({"Content-Type": "text/plain"}, {"value": b64})
    with pytest.raises(ServerUnavailable, match="base64"):
        body_bytes({"Content-Type": "text/plain"}, "not base64 at all!")
    with pytest.raises(ServerUnavailable, match="Content-Type"):
        body_bytes({}, b64)


def test_state_format_round_trip_without_a_server():
    from exchange_sync.sources.graph.session import GraphMailboxSession

    session = GraphMailboxSession.__new__(GraphMailboxSession)
    session.email = "ap@example.com"
    link = "https://graph.microsoft.com/v1.0/users('ap%40example.com')/mailFolders('AAMk%3D%3D')/messages/delta?$deltatoken=Gw-_.~x"
    state = session.encode_state("d", "AAMkAD:x/y==", link)
    from exchange_sync.sources.models import FolderInfo

    folder = FolderInfo(folder_id="AAMkAD:x/y==", path="Inbox", display_name="Inbox", folder_class="IPF.Note",
                        distinguished_id="inbox", change_key=None, parent_id=None, total_count=0)
    assert session.decode_state(folder, state) == ("d", link)
