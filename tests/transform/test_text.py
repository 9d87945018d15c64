"""Text hygiene: the ASCII fast paths give what the full passes give."""

from __future__ import annotations

from email.header import Header

import pytest

from exchange_sync.transform import ExchangeMeta, email_to_comment
from exchange_sync.transform.text import normalise_body, single_line


@pytest.mark.parametrize(("value", "limit", "expected"), [
    ("  Invoice 4411  ", 1024, "Invoice 4411"),          # printable ASCII: strip only
    ("Invoice  4411", 1024, "Invoice 4411"),              # double space: collapsed
    ("Invoice\t4411", 1024, "Invoice 4411"),              # tab is not printable: becomes a space
    ("Invoice\r\nBcc: x@evil", 1024, "Invoice Bcc: x@evil"),  # header injection: one line
    ("a\x00b\x7f", 1024, "ab"),                           # controls removed
    ("Re\u00a0: caf\u00e9\u200b", 1024, "Re : café"),     # non-ASCII spaces and invisibles
    ("abcdefghij", 5, "abcd…"),                           # capped, ASCII
    ("ab   cdefghij", 5, "ab c…"),                        # capped after collapsing
])
def test_single_line(value, limit, expected):
    assert single_line(value, limit) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Hello,\r\n\r\n\r\n\r\nthanks  \r\nAnn\t", "Hello,\n\nthanks\nAnn"),
    ("a\tb\x00c\x0bd", "a bcd"),
    ("Gr\u00fc\u00dfe\u200b\u00a0Ann \n\n\n\nx", "Grüße Ann\n\nx"),
    ("\n\n  \n", ""),
])
def test_normalise_body(text, expected):
    assert normalise_body(text) == expected


# Unicode's Bidi_Control property (PropList.txt), all of it: ALM, LRM, RLM, LRE..RLO, LRI..PDI.
BIDI_CONTROLS = [
    "\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))
]


@pytest.mark.parametrize("control", BIDI_CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_every_bidi_control_is_removed(control):
    assert single_line(f"Invoice{control} 4411{control}") == "Invoice 4411"
    assert normalise_body(f"Hello{control} Ann,\nthanks{control}") == "Hello Ann,\nthanks"


@pytest.mark.parametrize("control", BIDI_CONTROLS, ids=lambda c: f"U+{ord(c):04X}")
def test_bidi_controls_are_removed_from_the_subject_and_properties(control):
    arabic = "\u0641\u0627\u062a\u0648\u0631\u0629"
    subject = Header(f"Rechnung{control} 4411 {arabic}{control}", "utf-8").encode()
    raw = (
        f"From: Ann <ann@acme.example>\r\nTo: bob@beta.example\r\nSubject: {subject}\r\n"
        f"X-Mailer: Mail{control}er\r\nMessage-ID: <bidi@acme.example>\r\n"
        "Date: Mon, 2 Nov 2026 09:14:03 +0100\r\n\r\nHello there, this is the body.\r\n"
    ).encode()
    comment = email_to_comment(raw, ExchangeMeta(folder_path=f"Inbox{control}"))
    assert comment.message.subject.text == f"Rechnung 4411 {arabic}"
    assert comment.user_properties["string:Mailer"] == "Mailer"
    assert comment.user_properties["string:Folder"] == "Inbox"
