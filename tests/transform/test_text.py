"""Text hygiene: the ASCII fast paths give what the full passes give."""

from __future__ import annotations

import pytest

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
