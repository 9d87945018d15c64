"""Participant and domain filters (issue #20) through the real flow against the EWS test server:
filtered mail is never fetched (no MIME GetItem) nor staged, counted as ``filtered``, never billed."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from ews_testserver.testing import date_n

from .conftest import all_comments, make_config

MAILBOX = "ap@example.com"
FILTERS = {
    "participant_allowlist": ["JANE@Vip.com"],
    "participant_denylist": ["mallory@partner.com"],
    "participant_domain_allowlist": ["partner.com"],
    "participant_domain_denylist": ["@blocked.net"],
}
# (message id, From, Cc, kept by FILTERS)
MESSAGES = [
    ("<f1@x>", "Alice <alice@partner.com>", None, True),            # domain allowlist
    ("<f2@x>", "Bob <bob@EU.Partner.com>", None, True),             # a subdomain, any case
    ("<f3@x>", "Carol <carol@notpartner.com>", None, False),        # not allowlisted ("partner.com" is no suffix)
    ("<f4@x>", "Dave <dave@other.org>", "Jane <jane@vip.com>", True),  # address allowlist, on Cc
    ("<f5@x>", "Eve <eve@partner.com>", "spam@mx.blocked.net", False),  # domain deny wins over allow
    ("<f6@x>", "Mallory <Mallory@Partner.com>", None, False),       # address deny wins over domain allow
    ("<f7@x>", "Nobody <nobody@example.com>", None, False),         # the mailbox's own domain is not allowlisted
]


def mime(msgid: str, sender: str, cc: str | None, n: int) -> bytes:
    cc_line = f"Cc: {cc}\r\n" if cc else ""
    return (f"From: {sender}\r\nTo: {MAILBOX}\r\n{cc_line}Subject: message {msgid}\r\nDate: {date_n(n)}\r\n"
            f"Message-ID: {msgid}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"body of {msgid}\r\n").encode()


def hexid(message_id: str) -> str:
    return message_id.encode().hex()


def server_with_messages(ews):
    srv = ews([f"{MAILBOX}=generate:0"])
    for n, (msgid, sender, cc, _) in enumerate(MESSAGES):
        srv.add_message(MAILBOX, mime(msgid, sender, cc, n), "Inbox")
    return srv


def staged_message_ids(staging: Path) -> set[str]:
    ids: set[str] = set()
    for path in staging.rglob("*.parquet"):
        table = pq.read_table(path)
        if "internet_message_id" in table.column_names and "mime_content" in table.column_names:
            ids.update(v for v in table.column("internet_message_id").to_pylist() if v)
    return ids


def test_allow_deny_and_domains_before_the_mime_is_fetched(ews, sync, tmp_path):
    srv = server_with_messages(ews)
    data = make_config(srv, tmp_path, [{"email": MAILBOX, **FILTERS}], staging={"url": str(tmp_path / "staging"),
                                                                                "keep_days": None})
    mark = srv.last_seq()
    summary, code = sync(data)
    assert code == 0, summary
    kept = {hexid(m) for m, _, _, keep in MESSAGES if keep}
    assert set(all_comments(data)) == kept
    [row] = summary["mailboxes"]
    assert row["filtered"] == 4 and row["items"] == 3 and summary["filtered"] == 4
    assert summary["totals"]["new"] == 3 and summary["totals"]["units"] == 3
    # One participants GetItem for the 7 changes (IdOnly + From/Sender/To/Cc), then the MIME of the 3 kept.
    getitems = [e for e in srv.log(mark) if e["operation"] == "GetItem"]
    assert sorted(e["items"] for e in getitems) == [3, 7], getitems
    assert staged_message_ids(tmp_path / "staging") == {m for m, _, _, keep in MESSAGES if keep}


def test_unfiltered_mailbox_sends_no_participant_request(ews, sync, tmp_path):
    srv = server_with_messages(ews)
    data = make_config(srv, tmp_path, [MAILBOX])
    mark = srv.last_seq()
    summary, code = sync(data)
    assert code == 0 and summary["mailboxes"][0]["filtered"] == 0
    assert len(all_comments(data)) == len(MESSAGES)
    assert [e["items"] for e in srv.log(mark) if e["operation"] == "GetItem"] == [len(MESSAGES)]


def test_a_changed_filter_applies_to_later_mail_and_a_backfill_applies_the_current_one(ews, sync, tmp_path):
    srv = server_with_messages(ews)
    data = make_config(srv, tmp_path, [{"email": MAILBOX, **FILTERS}])
    summary, code = sync(data)
    assert code == 0 and summary["mailboxes"][0]["filtered"] == 4
    # Drop the address denylist: the next incremental run does not revisit mail already synced...
    data["mailboxes"][0]["participant_denylist"] = []
    srv.add_message(MAILBOX, mime("<f8@x>", "Mallory <mallory@partner.com>", None, 20), "Inbox")
    summary, code = sync(data)
    assert code == 0, summary
    assert summary["mailboxes"][0]["items"] == 1 and summary["mailboxes"][0]["filtered"] == 0
    assert hexid("<f6@x>") not in all_comments(data) and hexid("<f8@x>") in all_comments(data)
    # ... a backfill applies the current filters to everything in its window.
    summary, code = sync(data, mode="backfill")
    assert code == 0, summary
    comments = all_comments(data)
    assert hexid("<f6@x>") in comments
    assert hexid("<f3@x>") not in comments and hexid("<f5@x>") not in comments and hexid("<f7@x>") not in comments
    assert summary["mailboxes"][0]["filtered"] == 3
    assert summary["totals"]["new"] == 1  # only f6 is new; billed once
