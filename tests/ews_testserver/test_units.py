"""In-process tests of the mail store, loaders and generator (no sockets)."""

from __future__ import annotations

import base64
import email
import email.policy
from datetime import datetime, timezone

from testserver_core.generate import generate_messages
from testserver_core.loaders import received_for, split_mbox
from testserver_core.mailstore import MailStore, StoreError, meta_from_raw, rewrite_subject
from ews_testserver.testing import make_mime


def _store_with(n: int):
    store = MailStore()
    mbx = store.add_mailbox("u@example.com")
    inbox = mbx.distinguished["inbox"]
    items = [store.add_item(inbox, raw=make_mime(f"s{i}", f"<{i}@x>"), received=datetime(2024, 1, 1, tzinfo=timezone.utc))
             for i in range(n)]
    return store, mbx, inbox, items


def test_change_log_reports_each_item_once_at_its_latest_change() -> None:
    store, mbx, inbox, items = _store_with(5)
    changes, seq, last = inbox.changes_since(0, 512)
    assert [k for k, _o, _r in changes] == ["create"] * 5 and last
    store.update_item(items[0], rewrite_subject(items[0].raw, "new"))
    store.update_item(items[0], rewrite_subject(items[0].raw, "newer"))
    store.set_read(items[1], True)
    store.delete_item(items[2])
    extra = store.add_item(inbox, raw=make_mime("late", "<late@x>"))
    store.delete_item(extra)  # created and deleted since the state: invisible
    changes2, seq2, _ = inbox.changes_since(seq, 512)
    assert [(k, getattr(o, "num", o)) for k, o, _r in changes2] == [
        ("update", items[0].num), ("read", items[1].num), ("delete", items[2].num)]
    assert items[0].meta.subject == "newer"
    # from scratch, the state reflects only what exists now
    fresh, _s, _l = inbox.changes_since(0, 512)
    assert sorted(o.num for _k, o, _r in fresh) == sorted([items[0].num, items[1].num, items[3].num, items[4].num])


def test_paging_a_100k_change_log_is_exact() -> None:
    store = MailStore()
    mbx = store.add_mailbox("u@example.com")
    inbox = mbx.distinguished["inbox"]
    for g in generate_messages(100_000, seed=1, owner="u@example.com"):
        store.add_item(inbox, render=g.render, received=g.received, meta_factory=g.meta)
    seq, seen, pages, last = 0, 0, 0, False
    while not last:
        page, seq, last = inbox.changes_since(seq, 512)
        seen += len(page)
        pages += 1
    assert seen == 100_000 and pages == -(-100_000 // 512)


def test_sync_state_validation() -> None:
    _store, mbx, inbox, _items = _store_with(1)
    state = inbox.sync_state(1)
    assert inbox.parse_sync_state(state) == 1
    for bad in ("", "garbage", state[:-2] + "AA", mbx.distinguished["sentitems"].sync_state(1), inbox.sync_state(99)):
        try:
            inbox.parse_sync_state(bad)
        except StoreError as exc:
            assert exc.code == "ErrorInvalidSyncStateData"
        else:
            raise AssertionError(f"accepted {bad!r}")


def test_generated_mail_is_deterministic_varied_and_parseable() -> None:
    a = generate_messages(400, seed=7, owner="u@example.com", peers=("p@example.com",))
    b = generate_messages(400, seed=7, owner="u@example.com", peers=("p@example.com",))
    assert [m.render() for m in a[:50]] == [m.render() for m in b[:50]]
    langs, charsets, kinds, quoted, attachments, sizes = set(), set(), set(), 0, 0, []
    for g in a:
        raw = g.render()
        sizes.append(len(raw))
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg["Message-ID"] == g.message_id and str(msg["Subject"]) == g.subject
        assert received_for(raw, None) == g.received
        meta = g.meta()
        assert meta.has_attachments == any(p.get_content_disposition() == "attachment" for p in msg.walk())
        attachments += meta.has_attachments
        langs.add(msg["Content-Language"])
        for part in msg.walk():
            if part.get_content_charset():
                charsets.add(part.get_content_charset())
            kinds.add(part.get_content_type())
        body = msg.get_body(("plain", "html")).get_content()
        quoted += ("wrote" in body or "schrieb" in body or "écrit" in body or "Original Message" in body
                   or "escribió" in body)
    assert {"en", "de", "fr", "es", "ja"} <= langs
    assert {"utf-8", "iso-8859-1", "iso-2022-jp"} <= charsets
    assert {"text/plain", "text/html", "multipart/alternative", "multipart/mixed"} <= kinds
    assert quoted > 50 and attachments > 20
    assert any(g.copies for g in a) and 1000 < sorted(sizes)[len(sizes) // 2] < 20000


def test_received_date_rules(tmp_path) -> None:
    with_received = b"Received: from a by b; Tue, 02 Jan 2024 10:00:00 +0000\r\nDate: Mon, 01 Jan 2024 09:00:00 +0000\r\n\r\nx"
    assert received_for(with_received, None) == datetime(2024, 1, 2, 10, tzinfo=timezone.utc)
    only_date = b"Date: Mon, 01 Jan 2024 09:00:00 +0000\r\n\r\nx"
    assert received_for(only_date, None) == datetime(2024, 1, 1, 9, tzinfo=timezone.utc)
    assert received_for(b"garbage without headers", 0.0) == datetime(1970, 1, 1, tzinfo=timezone.utc)


def test_broken_mail_never_crashes_metadata() -> None:
    for raw in (b"", b"\x00\xff\xfe", b"Subject: =?bogus?Q?x?=\r\nFrom: <<<\r\n\r\n", b"From: \x80\x81 <a@b>\r\n\r\n"):
        meta = meta_from_raw(raw)
        assert meta.size == len(raw)


def test_mbox_split_keeps_message_bytes() -> None:
    m1 = make_mime("one", "<1@x>").replace(b"\r\n", b"\n")
    m2 = make_mime("two", "<2@x>").replace(b"\r\n", b"\n")
    data = b"From a@b Mon Jan  1 00:00:00 2024\n" + m1 + b"\nFrom c@d Mon Jan  1 00:00:00 2024\n" + m2
    assert split_mbox(data) == [m1, m2]


def test_binary_parts_are_line_aligned_cuts_of_the_pool():
    """The pre-encoded pool gives the same base64 lines as encoding the cut bytes directly."""
    import random

    from testserver_core import generate as g

    raw, _encoded = g._pool()
    for size in (1, 56, 57, 58, 1_000, 60_000, g.ATTACHMENT_MAX_BYTES):
        drawn, replay = random.Random(size), random.Random(size)
        out = g._binary_b64(drawn, size)
        start = replay.randrange(len(raw) // 57 - size // 57 - 1) * 57
        assert out == g._b64(raw[start:start + size])
        assert len(base64.b64decode(out)) == size


def test_generated_sizes_are_realistic():
    """Mostly small mail with a long attachment tail (mean tens of KB), not minimal fixtures."""
    sizes = sorted(len(m.render()) for m in generate_messages(2_000, seed=5, owner="u@example.com"))
    mean = sum(sizes) / len(sizes)
    assert 1_500 < sizes[len(sizes) // 2] < 20_000
    assert 20_000 < mean < 120_000
    assert sizes[-1] > 500_000


def test_base64_values_are_spliced_into_the_envelope_exactly():
    import base64 as b64
    import os
    import re

    from lxml import etree

    from ews_testserver import schema, soap

    blobs = [os.urandom(n) for n in (0, 1, 70_000)]
    forged = "RAW0" + "0" * 16 + "0" * 12  # the token shape, another nonce: stays text
    resp, msgs = soap.response_root("GetItem")
    msg = soap.success_message(msgs, "GetItem")
    items = etree.SubElement(msg, soap.m("Items"))
    for blob in blobs:
        el = soap.sub(items, "Message")
        soap.sub_base64(el, "MimeContent", blob, CharacterSet="UTF-8")
        soap.sub(el, "ItemId", Id="AAMkAG", ChangeKey="CQAAAB")
        soap.sub(el, "Subject", f"{forged} is only text")
    # Before the splice, the placeholders are themselves valid base64Binary: the tree validates.
    placeholders = [e.text for e in resp.iter(soap.t("MimeContent"))]
    assert all(re.fullmatch(r"[A-Za-z0-9]+", p) and len(p) % 4 == 0 for p in placeholders)
    assert schema.validate_request(resp, "Exchange2016") == []
    doc = etree.fromstring(soap.envelope(resp))
    mime = doc.findall(".//" + soap.t("MimeContent"))
    assert [b64.b64decode(e.text or "") for e in mime] == blobs
    assert all(e.get("CharacterSet") == "UTF-8" for e in mime)
    assert [e.text for e in doc.findall(".//" + soap.t("Subject"))] == [f"{forged} is only text"] * 3
    # Nothing is carried over to the thread's next response.
    again, _ = soap.response_root("GetItem")
    assert b"RAW0" not in soap.envelope(again)
