"""Refuse EWS responses that carry a DTD, before lxml sees them.

SOAP 1.1 forbids a Document Type Declaration in a message, and Exchange never sends one. A DTD in a
response can only be an attack or a broken proxy: entity expansion ("billion laughs", quadratic
blow-up) or external entities (XXE: ``<!ENTITY x SYSTEM "file:///etc/passwd">`` or an outbound URL).

exchangelib 5.6.0 already parses with ``resolve_entities=False`` (entities are left as references,
external ones are never loaded; lxml's ``no_network`` and ``load_dtd=False`` defaults hold), but it
also sets ``huge_tree=True`` and ``recover=True``, which lift libxml2's own limits and swallow errors.
This guard does not depend on those settings: a response whose prolog declares a DTD is refused
with ``UnsafeXmlResponse`` and never parsed. Tests: tests/reliability/test_hostile.py.
"""

from __future__ import annotations

import re

from ..errors import ServerUnavailable

_PROLOG_SCAN = 64 * 1024
# XML declaration, comments, processing instructions and whitespace may precede the DTD.
_DTD_RE = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*<!DOCTYPE", re.DOTALL | re.IGNORECASE)


class UnsafeXmlResponse(ServerUnavailable):
    """The server answered with a DTD (entity declarations): refused unparsed."""

    reason = "server_unavailable"


def _ascii_view(head: bytes) -> bytes:
    """The prolog as ASCII-compatible bytes (UTF-16 responses are re-encoded for the check)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) > 1 and (head[0] == 0 or head[1] == 0)):
        for codec in ("utf-16", "utf-16-le", "utf-16-be"):
            try:
                return head.decode(codec, "ignore").encode("utf-8", "ignore")
            except (UnicodeDecodeError, LookupError):
                continue
    return head


def check_response(body: bytes) -> None:
    """Raise ``UnsafeXmlResponse`` if ``body`` declares a DTD."""
    head = _ascii_view(body[:_PROLOG_SCAN])
    if b"<!" in head and _DTD_RE.match(head):
        raise UnsafeXmlResponse(
            "the Exchange server's response declares a DTD (<!DOCTYPE ...>), which SOAP forbids: refused "
            "without parsing (possible XML entity-expansion or external-entity attack, or a broken proxy)"
        )
