"""Header access and decoding on ``policy.compat32`` messages: raw values, RFC 2047/2231, addresses, dates.

compat32 keeps header values as the raw text (undecodable bytes as surrogate escapes) and builds
nothing lazily, which is why it is ~10x faster than ``policy.default`` (notes/performance-facts.md).
All decoding happens here, by hand, and none of it raises.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message as MimeMessage
from email.utils import getaddresses, parsedate_to_datetime

from .charset import decode_bytes
from .text import single_line

_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD_RE = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*?)\?=")
_BETWEEN_WORDS_RE = re.compile(r"^[ \t\r\n]*$")
_ADDR_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-\u0080-\uffff]+@[A-Za-z0-9.\-\u0080-\uffff]+")
_QP_HEX_RE = re.compile(rb"=([0-9A-Fa-f]{2})")


# Size caps (docs/transform.md): a header value longer than this is cut before it is decoded (a
# property keeps at most 65,536 characters anyway); at most this many values per header name.
MAX_HEADER_CHARS = 256 * 1024
MAX_HEADER_VALUES = 1_000


def header_map(msg: MimeMessage) -> dict[str, list[str]]:
    """Header name (lower case) -> raw values in order; one pass over the parsed headers."""
    headers: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        values = headers.setdefault(str(name).strip().lower(), [])
        if len(values) < MAX_HEADER_VALUES:
            text = value if isinstance(value, str) else str(value)
            values.append(text[:MAX_HEADER_CHARS])
    return headers


def unfold(value: str) -> str:
    """RFC 5322 unfolding: remove the CRLF before folding whitespace; stray line breaks become spaces."""
    value = _FOLD_RE.sub("", value)
    return value.replace("\r", " ").replace("\n", " ")


def raw_bytes(value: str) -> bytes:
    """The header's bytes as received (compat32 carries non-ASCII bytes as surrogate escapes)."""
    try:
        return value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        # Parsed from str (or already-decoded text): its UTF-8 form is the best byte view.
        return value.encode("utf-8", "surrogateescape")


def _decode_raw(value: str) -> str:
    # RFC 6532 allows UTF-8 in headers; older software sends its local charset raw.
    return decode_bytes(raw_bytes(value), None)


def _b_decode(payload: str) -> bytes:
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", payload)
    cleaned = cleaned[: len(cleaned) - (len(cleaned) % 4 == 1)]
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned)
    except (binascii.Error, ValueError):
        return b""


def _q_decode(payload: str) -> bytes:
    data = payload.replace("_", " ").encode("latin-1", "replace")
    return _QP_HEX_RE.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words in an (unfolded) header value; raw 8-bit text is decoded too.

    Adjacent encoded words in the same charset are joined at the byte level before decoding,
    because senders split multi-byte characters across words.
    """
    text = _decode_raw(value)
    if "=?" not in text:
        return text
    out: list[str] = []
    pending: bytes = b""
    pending_charset: str | None = None
    last_end = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending:
            out.append(decode_bytes(pending, pending_charset))
        pending, pending_charset = b"", None

    for match in _ENCODED_WORD_RE.finditer(text):
        between = text[last_end : match.start()]
        if between and not (pending and _BETWEEN_WORDS_RE.match(between)):
            flush()
            out.append(between)
        elif between and not pending:
            out.append(between)
        charset, kind, payload = match.group(1), match.group(2).lower(), match.group(3)
        charset = charset.split("*", 1)[0]
        data = _b_decode(payload) if kind == "b" else _q_decode(payload)
        if pending and charset.lower() != (pending_charset or "").lower():
            flush()
        pending_charset = charset
        pending += data
        last_end = match.end()
    flush()
    out.append(text[last_end:])
    return "".join(out)


def header_text(headers: dict[str, list[str]], name: str) -> str | None:
    """The first value of header ``name``, unfolded and decoded, or None when absent."""
    values = headers.get(name)
    if not values:
        return None
    return decode_words(unfold(values[0])).strip()


def header_raw(headers: dict[str, list[str]], name: str) -> str | None:
    """The first value of header ``name``, unfolded but not decoded (surrogate escapes kept)."""
    values = headers.get(name)
    if not values:
        return None
    return unfold(values[0])


@dataclass(frozen=True)
class Address:
    name: str
    addr: str

    @property
    def domain(self) -> str | None:
        if "@" not in self.addr:
            return None
        domain = self.addr.rsplit("@", 1)[1].strip().strip(".").lower()
        return domain or None

    def display(self, limit: int) -> str:
        """``Name <addr>``, or the address alone, or the name alone; one line, <= limit chars."""
        name = single_line(self.name.strip().strip("\"'").strip(), limit)
        addr = single_line(self.addr, limit)
        if name and addr and name.lower() != addr.lower():
            text = f"{name} <{addr}>"
            if len(text) > limit:
                room = max(limit - len(addr) - 3, 0)
                text = f"{name[:room]} <{addr}>" if room else addr[:limit]
            return text
        return (addr or name)[:limit]


def parse_addresses(values: list[str] | None) -> list[Address]:
    """Addresses of one or more address headers; unparseable text is kept as a name-only entry."""
    if not values:
        return []
    result: list[Address] = []
    for raw in values:
        raw = unfold(raw)
        try:
            pairs = getaddresses([raw])
        except Exception:  # noqa: BLE001 - stdlib parser bugs on hostile input
            pairs = []
        good = [(n, a) for n, a in pairs if a and "@" in a]
        if good:
            for name, addr in good:
                result.append(Address(decode_words(name).strip(), _decode_raw(addr).strip()))
            continue
        # The stdlib gave up (or found no address): fall back to anything address-shaped.
        decoded = decode_words(raw)
        found = _ADDR_RE.findall(decoded)
        if found:
            for addr in found:
                result.append(Address("", addr.strip(".<>")))
        else:
            # Nothing address-shaped (e.g. "undisclosed-recipients:;"): keep words, not groups.
            text = decoded.strip().rstrip(";").rstrip(":").strip()
            if text:
                result.append(Address(text, ""))
    return result


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_date(value: str | None) -> datetime | None:
    """An aware UTC datetime from a Date-like header, or None when it is not a plausible date."""
    if not value:
        return None
    value = single_line(value, 200)
    parsed: datetime | None = None
    try:
        parsed = parsedate_to_datetime(value)
    except Exception:  # noqa: BLE001 - ValueError, TypeError, IndexError, OverflowError all seen
        parsed = None
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        parsed = parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None
    # Dates before 1970 or far in the future are broken clocks, not information.
    if parsed < _EPOCH or parsed.year > 2200:
        return None
    return parsed


def received_date(headers: dict[str, list[str]]) -> datetime | None:
    """The date of the topmost Received header (the last hop: when our server got it)."""
    for value in headers.get("received", []):
        text = unfold(value)
        if ";" in text:
            found = parse_date(text.rsplit(";", 1)[1])
            if found is not None:
                return found
    return None
