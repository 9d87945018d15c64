"""EWS notifications on the test server: Subscribe, GetStreamingEvents, GetEvents, Unsubscribe.

The independent client is exchangelib (its own subscribe/get_streaming_events/get_events code);
raw HTTP (requests) where exchangelib cannot show a case: chunk boundaries, heartbeats, a socket
closed mid-stream, the per-user connection limit. The server runs with small clocks (a protocol
minute of 1 s, heartbeats every 0.25 s) so streams end in about a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from exchangelib.errors import (
    ErrorAccessDenied, ErrorExpiredSubscription, ErrorInvalidPullSubscriptionId, ErrorInvalidWatermark,
    ErrorExceededSubscriptionCount, ErrorReadEventsFailed, ErrorSubscriptionNotFound,
)
from exchangelib.properties import (
    CopiedEvent, CreatedEvent, DeletedEvent, ModifiedEvent, MovedEvent, NewMailEvent, StatusEvent,
)
from exchangelib.services import GetEvents, SubscribeToStreaming
from lxml import etree
from urllib3.exceptions import ProtocolError

from ews_testserver.testing import RunningServer, exchangelib_account, make_mime, running_server

M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
KNOBS = {"heartbeat_s": 0.25, "minute_s": 1.0, "streaming_expiry_s": 1800, "connection_limit": 10,
         "max_pull_events": 50, "streaming_supported": True, "require_affinity": False,
         "expired_code": "ErrorSubscriptionNotFound"}
USER, OTHER = "user@example.com", "other@example.com"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with running_server(mailboxes=[f"{USER}=generate:3", f"{OTHER}="], grants=[f"{USER}={OTHER}"],
                        notifications=KNOBS) as server:
        yield server
    assert server.returncode == 0


@pytest.fixture(autouse=True)
def _reset(srv: RunningServer) -> Iterator[None]:
    yield
    srv.set_notifications(**KNOBS)
    srv.clear_refusals()
    srv.kill_subscriptions()


def account(srv: RunningServer, mailbox: str = USER):
    return exchangelib_account(srv, USER, "secret", mailbox)


def events_of(notifications) -> list:
    return [ev for n in notifications for ev in n.events]


def collect(acc, ids, want: int, timeout: int = 1) -> list:
    """Streamed events until ``want`` have arrived (or the stream's Closed)."""
    got = []
    for n in acc.inbox.get_streaming_events(ids, connection_timeout=timeout):
        got.extend(n.events)
        if len(got) >= want:
            break
    return got


# -- raw SOAP ---------------------------------------------------------------------------------------

def soap(body: str, version: str = "Exchange2016") -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:m="{M}" xmlns:t="{T}"><s:Header><t:RequestServerVersion Version="{version}"/></s:Header>'
            f"<s:Body>{body}</s:Body></s:Envelope>").encode()


def streaming_body(ids: list[str], minutes: int = 1) -> str:
    subs = "".join(f"<t:SubscriptionId>{i}</t:SubscriptionId>" for i in ids)
    return f"<m:GetStreamingEvents><m:SubscriptionIds>{subs}</m:SubscriptionIds>" \
           f"<m:ConnectionTimeout>{minutes}</m:ConnectionTimeout></m:GetStreamingEvents>"


def post(srv: RunningServer, body: bytes, stream: bool = False, session: requests.Session | None = None,
         **headers: str) -> requests.Response:
    return (session or requests).post(srv.url, data=body, auth=(USER, "secret"), stream=stream, timeout=30,
                                      headers={"Content-Type": "text/xml; charset=utf-8", **headers})


def chunks(resp: requests.Response) -> Iterator[etree._Element]:
    """Each HTTP chunk of a streaming response, parsed on its own (one complete SOAP envelope each)."""
    for data in resp.raw.read_chunked(decode_content=False):
        yield etree.fromstring(data)


def message(env: etree._Element) -> etree._Element:
    return env.find(f".//{{{M}}}GetStreamingEventsResponseMessage")


def status(env: etree._Element) -> str | None:
    return message(env).findtext(f"{{{M}}}ConnectionStatus")


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


# -- events --------------------------------------------------------------------------------------

def test_add_move_edit_read_copy_delete_raise_exchanges_events(srv: RunningServer) -> None:
    acc = account(srv)
    sid = SubscribeToStreaming(account=acc).get(folders=None, event_types=SubscribeToStreaming.EVENT_TYPES)
    unread = next(f["unread"] for b in srv.mailboxes() if b["address"] == USER for f in b["folders"] if f["path"] == "Inbox")
    added = srv.add_message(USER, make_mime("new", "<ev1@x>"))
    srv.create_folder(USER, "Inbox/Done")
    moved_id = srv.move(USER, "<ev1@x>", "Inbox/Done")["item_ids"][0]
    srv.edit(USER, "<ev1@x>", subject="edited")
    srv.mark_read(USER, "<ev1@x>")
    copied_id = srv.copy(USER, "<ev1@x>", "Inbox")["item_ids"][0]
    srv.delete(USER, "<ev1@x>")  # both the moved message and its copy
    got = collect(acc, sid, want=19)
    kinds = [type(e).__name__ for e in got]
    assert kinds[:3] == ["CreatedEvent", "NewMailEvent", "ModifiedEvent"]
    created, newmail, folder_mod = got[:3]
    assert created.item_id.id == newmail.item_id.id == added["item_id"]
    assert created.parent_folder_id.id == added["folder_id"] and created.timestamp is not None
    assert created.watermark is None  # streaming events carry none (pull events do)
    assert folder_mod.folder_id.id == added["folder_id"] and folder_mod.unread_count == unread + 1
    moves = [e for e in got if isinstance(e, MovedEvent)]
    assert len(moves) == 1
    assert moves[0].old_item_id.id == added["item_id"] and moves[0].item_id.id == moved_id
    assert moves[0].old_parent_folder_id.id == added["folder_id"] and moves[0].parent_folder_id.id != added["folder_id"]
    item_mods = [e for e in got if isinstance(e, ModifiedEvent) and e.item_id is not None]
    assert [m.item_id.id for m in item_mods] == [moved_id, moved_id]  # edit, then mark-read
    copies = [e for e in got if isinstance(e, CopiedEvent)]
    assert copies[0].old_item_id.id == moved_id and copies[0].item_id.id == copied_id
    deleted = {e.item_id.id for e in got if isinstance(e, DeletedEvent)}
    assert deleted == {moved_id, copied_id}
    assert any(isinstance(e, CreatedEvent) and e.folder_id is not None for e in got)  # the new folder


def test_folder_subscription_sees_its_folder_only_and_its_event_types(srv: RunningServer) -> None:
    acc = account(srv)
    sid = acc.inbox.subscribe_to_streaming(event_types=["NewMailEvent"])
    srv.add_message(USER, make_mime("elsewhere", "<f1@x>"), folder="Archive-f")
    srv.add_message(USER, make_mime("inbox", "<f2@x>"))
    first = next(iter(acc.inbox.get_streaming_events(sid, connection_timeout=1)))
    assert [type(e) for e in first.events] == [NewMailEvent]
    assert first.subscription_id == sid


def test_several_subscriptions_share_one_connection(srv: RunningServer) -> None:
    mine, theirs = account(srv), account(srv, OTHER)
    sid_a, sid_b = mine.inbox.subscribe_to_streaming(), theirs.inbox.subscribe_to_streaming()
    srv.add_message(USER, make_mime("a", "<s1@x>"))
    srv.add_message(OTHER, make_mime("b", "<s2@x>"))
    seen: dict[str, int] = {}
    for n in mine.inbox.get_streaming_events([sid_a, sid_b], connection_timeout=1):
        seen[n.subscription_id] = seen.get(n.subscription_id, 0) + sum(isinstance(e, NewMailEvent) for e in n.events)
        if len(seen) == 2:
            break
    assert seen == {sid_a: 1, sid_b: 1}
    streams = [e for e in srv.log() if e["operation"] == "GetStreamingEvents"]
    assert streams[-1]["subscriptions"] == 2 and streams[-1]["mailboxes"] == [OTHER, USER]


def test_heartbeats_then_closed_at_connection_timeout_each_chunk_an_envelope(srv: RunningServer) -> None:
    sid = account(srv).inbox.subscribe_to_streaming()
    resp = post(srv, soap(streaming_body([sid], minutes=1)), stream=True)
    assert resp.status_code == 200 and resp.headers["Transfer-Encoding"] == "chunked"
    statuses = [status(env) for env in chunks(resp)]  # ends when the server ends the chunked body
    assert statuses[-1] == "Closed" and set(statuses[:-1]) == {"OK"} and len(statuses) >= 3
    # exchangelib reads the same stream to its end: no notifications, and it returns after Closed
    assert list(account(srv).inbox.get_streaming_events(sid, connection_timeout=1)) == []


def test_events_wait_for_the_next_connection(srv: RunningServer) -> None:
    acc = account(srv)
    sid = acc.inbox.subscribe_to_streaming()
    srv.add_message(USER, make_mime("while away", "<w1@x>"))
    got = collect(acc, sid, want=3)
    assert [type(e) for e in got] == [CreatedEvent, NewMailEvent, ModifiedEvent]
    assert collect(acc, sid, want=1) == []  # delivered once: nothing is sent twice


# -- faults ----------------------------------------------------------------------------------------

def test_killed_subscription_ends_its_stream_and_is_not_found_afterwards(srv: RunningServer) -> None:
    acc = account(srv)
    sid, keep = acc.inbox.subscribe_to_streaming(), acc.inbox.subscribe_to_streaming()
    resp = post(srv, soap(streaming_body([sid, keep], minutes=1)), stream=True)
    assert wait_for(lambda: srv.notifications()["connections"])
    assert srv.kill_subscriptions(sid) == [sid]
    env = next(chunks(resp))
    msg = message(env)
    assert msg.get("ResponseClass") == "Error" and msg.findtext(f"{{{M}}}ResponseCode") == "ErrorSubscriptionNotFound"
    assert [e.text for e in msg.find(f"{{{M}}}ErrorSubscriptionIds")] == [sid]
    assert status(env) is None  # the stream goes on for the other subscription
    resp.close()
    with pytest.raises(ErrorSubscriptionNotFound):
        list(acc.inbox.get_streaming_events(sid, connection_timeout=1))
    with pytest.raises(ErrorSubscriptionNotFound):
        acc.inbox.unsubscribe(sid)
    assert srv.notifications()["ended"][sid] == "killed"
    srv.add_message(USER, make_mime("still there", "<k1@x>"))
    assert len(collect(acc, keep, want=3)) == 3  # the other subscription lives on


def test_dropped_connection_loses_nothing(srv: RunningServer) -> None:
    acc = account(srv)
    sid = acc.inbox.subscribe_to_streaming()
    resp = post(srv, soap(streaming_body([sid], minutes=1)), stream=True)
    assert wait_for(lambda: srv.notifications()["connections"])
    assert srv.drop_streams() == 1
    with pytest.raises((ProtocolError, ConnectionError, OSError)):  # mid-stream: no final chunk
        for _ in chunks(resp):
            pass
    assert srv.notifications()["counters"]["streams_dropped"] >= 1
    srv.add_message(USER, make_mime("after the drop", "<d1@x>"))
    assert [type(e) for e in collect(acc, sid, want=3)] == [CreatedEvent, NewMailEvent, ModifiedEvent]


def test_connection_limit_per_account(srv: RunningServer) -> None:
    srv.set_notifications(connection_limit=2)
    sid = account(srv).inbox.subscribe_to_streaming()
    sids = [account(srv).inbox.subscribe_to_streaming() for _ in range(2)]
    open_ = [post(srv, soap(streaming_body([s], minutes=1)), stream=True, session=requests.Session()) for s in sids]
    assert wait_for(lambda: len(srv.notifications()["connections"]) == 2)
    third = post(srv, soap(streaming_body([sid], minutes=1)), stream=True)
    envs = list(chunks(third))
    assert len(envs) == 1 and message(envs[0]).findtext(f"{{{M}}}ResponseCode") == "ErrorExceededConnectionCount"
    assert status(envs[0]) == "Closed"
    open_[0].close()  # the client hangs up: its slot is free again
    assert wait_for(lambda: len(srv.notifications()["connections"]) == 1)
    fourth = post(srv, soap(streaming_body([sid], minutes=1)), stream=True)
    assert status(next(chunks(fourth))) == "OK"
    fourth.close()
    open_[1].close()


def test_new_connection_takes_over_a_subscription(srv: RunningServer) -> None:
    sid = account(srv).inbox.subscribe_to_streaming()
    old = post(srv, soap(streaming_body([sid], minutes=1)), stream=True, session=requests.Session())
    assert wait_for(lambda: srv.notifications()["connections"])
    new = post(srv, soap(streaming_body([sid], minutes=1)), stream=True, session=requests.Session())
    envs = list(chunks(old))  # the old stream gets the error, then ends (it serves nothing any more)
    assert len(envs) == 1 and status(envs[0]) == "Closed"
    assert message(envs[0]).findtext(f"{{{M}}}ResponseCode") == "ErrorNewEventStreamConnectionOpened"
    assert status(next(chunks(new))) == "OK"
    new.close()


def test_refused_subscribe_for_one_mailbox(srv: RunningServer) -> None:
    srv.refuse_subscribe(OTHER, "ErrorAccessDenied")
    with pytest.raises(ErrorAccessDenied):
        account(srv, OTHER).inbox.subscribe_to_streaming()
    assert account(srv).inbox.subscribe_to_streaming()
    srv.refuse_subscribe("*", "ErrorServerBusy", count=1)
    codes = []
    for _ in range(2):
        resp = post(srv, soap('<m:Subscribe><m:StreamingSubscriptionRequest SubscribeToAllFolders="true">'
                              "<t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes>"
                              "</m:StreamingSubscriptionRequest></m:Subscribe>"))
        codes.append(etree.fromstring(resp.content).findtext(f".//{{{M}}}ResponseCode"))
    assert codes == ["ErrorServerBusy", "NoError"]


def test_streaming_needs_exchange_2010_sp1(srv: RunningServer) -> None:
    sid = account(srv).inbox.subscribe_to_streaming()
    resp = post(srv, soap(streaming_body([sid]), version="Exchange2010"))
    assert resp.status_code == 500 and b"ErrorInvalidRequest" in resp.content
    srv.set_notifications(streaming_supported=False)  # a server without streaming at all
    resp = post(srv, soap(streaming_body([sid])))
    assert resp.status_code == 500 and b"ErrorSchemaValidation" in resp.content


def test_subscriptions_expire(srv: RunningServer) -> None:
    srv.set_notifications(minute_s=0.3, streaming_expiry_s=0.3)
    acc = account(srv)
    streaming = acc.inbox.subscribe_to_streaming()
    pull, watermark = acc.inbox.subscribe_to_pull(timeout=1)
    time.sleep(0.5)
    with pytest.raises(ErrorSubscriptionNotFound):
        GetEvents(account=acc).get(subscription_id=pull, watermark=watermark)
    with pytest.raises(ErrorSubscriptionNotFound):
        list(acc.inbox.get_streaming_events(streaming, connection_timeout=1))
    ended = srv.notifications()["ended"]
    assert ended[pull] == ended[streaming] == "expired"
    srv.set_notifications(expired_code="ErrorExpiredSubscription")  # a server that still remembers them
    with pytest.raises(ErrorExpiredSubscription):
        GetEvents(account=acc).get(subscription_id=pull, watermark=watermark)


def test_affinity_cookie_groups_subscriptions(srv: RunningServer) -> None:
    srv.set_notifications(require_affinity=True)
    mine, theirs = account(srv), account(srv, OTHER)
    sid_a = mine.inbox.subscribe_to_streaming()
    sid_b = theirs.inbox.subscribe_to_streaming()  # one exchangelib session: it sends the group's cookie
    backends = {s["id"]: s["backend"] for s in srv.notifications()["subscriptions"]}
    assert backends[sid_a] == backends[sid_b] == mine.affinity_cookie
    # Subscribed without the group's cookie, OTHER's subscription lives on its anchor mailbox's server.
    raw = post(srv, soap('<m:Subscribe><m:StreamingSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="inbox">'
                         f"<t:Mailbox><t:EmailAddress>{OTHER}</t:EmailAddress></t:Mailbox></t:DistinguishedFolderId>"
                         "</t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes>"
                         "</m:StreamingSubscriptionRequest></m:Subscribe>"),
               **{"X-AnchorMailbox": OTHER, "X-PreferServerAffinity": "true"})
    assert raw.cookies.get("X-BackEndOverrideCookie") not in (None, mine.affinity_cookie)
    sid_c = etree.fromstring(raw.content).findtext(f".//{{{M}}}SubscriptionId")
    resp = post(srv, soap(streaming_body([sid_a, sid_c])), stream=True,
                **{"X-AnchorMailbox": USER, "X-PreferServerAffinity": "true", "X-BackEndOverrideCookie": mine.affinity_cookie})
    msg = message(next(chunks(resp)))
    assert msg.findtext(f"{{{M}}}ResponseCode") == "ErrorSubscriptionNotFound"
    assert [e.text for e in msg.find(f"{{{M}}}ErrorSubscriptionIds")] == [sid_c]
    srv.add_message(OTHER, make_mime("grouped", "<g1@x>"))
    got = collect(mine, [sid_a, sid_b], want=3)
    assert [type(e) for e in got] == [CreatedEvent, NewMailEvent, ModifiedEvent]


# -- pull ------------------------------------------------------------------------------------------

def test_pull_get_events_watermarks(srv: RunningServer) -> None:
    srv.set_notifications(max_pull_events=4)
    acc = account(srv)
    svc = GetEvents(account=acc)
    sid, wm0 = acc.inbox.subscribe_to_pull(timeout=5)
    quiet = svc.get(subscription_id=sid, watermark=wm0)
    assert [type(e) for e in quiet.events] == [StatusEvent] and quiet.more_events is False
    assert quiet.previous_watermark == wm0 and quiet.events[0].watermark == wm0  # nothing happened
    for n in range(2):
        srv.add_message(USER, make_mime(f"pull {n}", f"<p{n}@x>"))
    first = svc.get(subscription_id=sid, watermark=wm0)  # 6 events, 4 per response
    assert first.more_events is True and len(first.events) == 4 and first.previous_watermark == wm0
    marks = [e.watermark for e in first.events]
    assert len(set(marks)) == 4 and wm0 not in marks
    again = svc.get(subscription_id=sid, watermark=wm0)  # a watermark can be read from again
    assert [e.watermark for e in again.events] == marks
    rest = svc.get(subscription_id=sid, watermark=marks[-1])
    assert rest.more_events is False and [type(e) for e in rest.events] == [NewMailEvent, ModifiedEvent]
    assert rest.previous_watermark == marks[-1]
    done = svc.get(subscription_id=sid, watermark=rest.events[-1].watermark)
    assert [type(e) for e in done.events] == [StatusEvent]
    with pytest.raises(ErrorInvalidWatermark):
        svc.get(subscription_id=sid, watermark="AAAAAGUhAAAAAAAAAQ==")
    streaming = acc.inbox.subscribe_to_streaming()
    with pytest.raises(ErrorInvalidPullSubscriptionId):
        svc.get(subscription_id=streaming, watermark=wm0)
    assert acc.inbox.unsubscribe(sid) is True
    with pytest.raises(ErrorSubscriptionNotFound):
        svc.get(subscription_id=sid, watermark=wm0)


def test_a_notification_carries_at_most_50_events(srv: RunningServer) -> None:
    acc = account(srv)
    sid = acc.inbox.subscribe_to_streaming()
    for n in range(17):  # 3 events each
        srv.add_message(USER, make_mime(f"burst {n}", f"<b{n}@x>"))
    sizes = []
    for note in acc.inbox.get_streaming_events(sid, connection_timeout=1):
        sizes.append(len(note.events))
        if sum(sizes) >= 51:
            break
    assert sizes == [50, 1]


def test_pull_resumes_from_a_watermark_until_the_log_is_trimmed(srv: RunningServer) -> None:
    acc = account(srv)
    svc = GetEvents(account=acc)
    sid, wm0 = acc.inbox.subscribe_to_pull(timeout=5)
    srv.add_message(USER, make_mime("resume", "<r1@x>"))
    mark = svc.get(subscription_id=sid, watermark=wm0).events[0].watermark  # after the CreatedEvent
    acc.inbox.unsubscribe(sid)
    # exchangelib writes the request's Watermark as m:Watermark, which the schema (t:Watermark) rejects:
    # a raw Subscribe resumes from the bookmark.
    resp = post(srv, soap('<m:Subscribe><m:PullSubscriptionRequest><t:FolderIds><t:DistinguishedFolderId Id="inbox"/>'
                          "</t:FolderIds><t:EventTypes><t:EventType>NewMailEvent</t:EventType></t:EventTypes>"
                          f"<t:Watermark>{mark}</t:Watermark><t:Timeout>5</t:Timeout></m:PullSubscriptionRequest>"
                          "</m:Subscribe>"), **{"X-AnchorMailbox": USER})
    answer = etree.fromstring(resp.content)
    resumed, wm = answer.findtext(f".//{{{M}}}SubscriptionId"), answer.findtext(f".//{{{M}}}Watermark")
    assert wm == mark
    assert [type(e) for e in svc.get(subscription_id=resumed, watermark=wm).events] == [NewMailEvent]
    srv.set_notifications(log_retention=2)
    for n in range(3):
        srv.add_message(USER, make_mime(f"trim {n}", f"<t{n}@x>"))  # 9 events: the log keeps the last 2-4
    with pytest.raises(ErrorReadEventsFailed):
        svc.get(subscription_id=resumed, watermark=wm)


def test_the_oldest_profile_streams_and_pulls() -> None:
    """Exchange 2010 SP2, the oldest profile, has streaming (from 2010 SP1); the module's server is 2016."""
    with running_server(mailboxes=[f"{USER}=generate:2"], exchange_version="Exchange2010_SP2",
                        notifications=KNOBS) as other:
        acc = account(other)
        sid = acc.inbox.subscribe_to_streaming()
        pull, wm = acc.inbox.subscribe_to_pull(timeout=5)
        other.add_message(USER, make_mime("profile", "<v1@x>"))
        assert [type(e) for e in collect(acc, sid, want=3)] == [CreatedEvent, NewMailEvent, ModifiedEvent]
        assert [type(e) for e in GetEvents(account=acc).get(subscription_id=pull, watermark=wm).events] == [
            CreatedEvent, NewMailEvent, ModifiedEvent]
    assert other.returncode == 0


def test_all_folders_means_the_callers_own_mailbox_for_a_delegate(srv: RunningServer) -> None:
    delegate = account(srv, OTHER)  # USER's credentials, OTHER's mailbox by delegate grant
    sid = SubscribeToStreaming(account=delegate).get(folders=None, event_types=["NewMailEvent"])
    by_folders = delegate.inbox.subscribe_to_streaming()  # FolderIds name the mailbox
    subs = {s["id"]: s for s in srv.notifications()["subscriptions"]}
    assert subs[sid]["mailbox"] == USER and subs[sid]["all_folders"]
    assert subs[by_folders]["mailbox"] == OTHER


def test_fault_plan_drops_streams_and_kills_subscriptions(srv: RunningServer) -> None:
    acc = account(srv)
    sid = acc.inbox.subscribe_to_streaming()
    srv.set_faults([{"operation": "GetStreamingEvents", "kind": "drop_stream", "delay_s": 0.2, "count": 1},
                    {"operation": "GetStreamingEvents", "kind": "kill_subscription", "delay_s": 0.2, "count": 1},
                    {"operation": "GetEvents", "kind": "kill_subscription", "count": 1}])
    try:
        with pytest.raises((ProtocolError, ConnectionError, OSError)):  # the first stream: socket closed
            for _ in chunks(post(srv, soap(streaming_body([sid])), stream=True)):
                pass
        with pytest.raises(ErrorSubscriptionNotFound):  # the second: its subscription killed under it
            list(acc.inbox.get_streaming_events(sid, connection_timeout=1))
        pull, wm = acc.inbox.subscribe_to_pull(timeout=5)
        with pytest.raises(ErrorSubscriptionNotFound):
            GetEvents(account=acc).get(subscription_id=pull, watermark=wm)
        assert [r["fired"] for r in srv.faults()] == [1, 1, 1]
        assert srv.notifications()["ended"][sid] == "killed"
    finally:
        srv.clear_faults()


def test_subscription_budget(srv: RunningServer) -> None:
    srv.kill_subscriptions()
    srv.set_notifications(max_subscriptions=2)  # EWSMaxSubscriptions (Exchange Online: 20)
    acc = account(srv)
    first = acc.inbox.subscribe_to_streaming()
    acc.inbox.subscribe_to_pull(timeout=5)
    with pytest.raises(ErrorExceededSubscriptionCount):
        acc.inbox.subscribe_to_streaming()
    acc.inbox.unsubscribe(first)  # a slot is free again
    assert acc.inbox.subscribe_to_streaming()
