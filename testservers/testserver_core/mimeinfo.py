"""Derive EWS item properties from raw RFC 822 bytes, never crashing on broken mail.

Parsing uses ``email.policy.compat32`` because the modern policy is ~10x slower and
raises on malformed headers that real mailboxes are full of. Every helper degrades to
a best-effort value instead of raising.
"""

from __future__ import annotations

import base64
import email.header
import email.utils
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.message import Message
from email.parser import BytesParser

_HEADER_PARSER = BytesParser(policy=policy.compat32)

# XML 1.0 forbids most control characters; broken mail carries them in headers and bodies.
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_safe(text: str) -> str:
    """Remove characters that cannot appear in an XML 1.0 document."""
    return _XML_BAD.sub("", text)


def decode_header_value(value: object) -> str:
    """Decode an RFC 2047 header value to text; undecodable parts are replaced, not raised."""
    if value is None:
        return ""
    if isinstance(value, email.header.Header):
        raw = str(value)
    else:
        raw = str(value)
    # compat32 keeps undecodable 8-bit bytes as surrogates: turn them back into latin-1/utf-8 text.
    if any("\udc80" <= ch <= "\udcff" for ch in raw):
        raw_bytes = raw.encode("utf-8", "surrogateescape")
        try:
            raw = raw_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raw = raw_bytes.decode("latin-1")
    try:
        parts = email.header.decode_header(raw)
        out = []
        for chunk, charset in parts:
            if isinstance(chunk, bytes):
                try:
                    out.append(chunk.decode(charset or "ascii", "replace"))
                except LookupError:
                    out.append(chunk.decode("latin-1", "replace"))
            else:
                out.append(chunk)
        # decode_header drops the whitespace between encoded and plain words inconsistently;
        # joining like make_header does is close enough for display purposes.
        text = "".join(out) if len(out) > 1 else (out[0] if out else "")
    except Exception:  # noqa: BLE001 - broken encoded words must never fail a load
        text = raw
    text = re.sub(r"\r?\n[ \t]+", " ", text)
    return xml_safe(text).strip()


def parse_date(value: str | None) -> datetime | None:
    """Parse an RFC 2822 date to an aware UTC datetime, or None."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_tz(str(value))
    except Exception:  # noqa: BLE001
        return None
    if not parsed:
        return None
    try:
        ts = email.utils.mktime_tz(parsed)
        dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    except (OverflowError, ValueError, OSError):
        return None
    if dt.year < 1980 or dt.year > 2100:
        return None
    return dt


def received_date(msg: Message) -> datetime | None:
    """The date of the top (most recent) Received header: the part after the last ';'."""
    received = msg.get_all("Received") or []
    for value in received[:1]:
        text = str(value)
        if ";" in text:
            return parse_date(text.rsplit(";", 1)[1].strip())
    return None


def parse_headers(raw: bytes) -> Message:
    """Parse only the header block (fast: the body is not split into parts)."""
    return _HEADER_PARSER.parsebytes(raw, headersonly=True)


def parse_full(raw: bytes) -> Message:
    return _HEADER_PARSER.parsebytes(raw)


@dataclass(slots=True)
class Address:
    name: str
    email: str


def parse_addresses(values: list[str] | None) -> list[Address]:
    if not values:
        return []
    try:
        pairs = email.utils.getaddresses([str(v) for v in values])
    except Exception:  # noqa: BLE001
        return []
    out = []
    for name, addr in pairs:
        name = decode_header_value(name)
        addr = xml_safe(addr.strip())
        if not addr and not name:
            continue
        out.append(Address(name=name or addr, email=addr))
    return out


@dataclass(slots=True)
class Attachment:
    name: str
    content_type: str
    size: int
    content_id: str | None
    is_inline: bool
    is_item: bool
    content: bytes = b""


@dataclass(slots=True)
class BodyInfo:
    html: str | None = None
    text: str | None = None
    attachments: list[Attachment] = field(default_factory=list)


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if payload is None:
        raw = part.get_payload()
        payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, "replace")
    except (LookupError, UnicodeError):
        text = payload.decode("latin-1", "replace")
    return xml_safe(text)


def body_info(raw: bytes) -> BodyInfo:
    """Bodies and attachment metadata from a full parse; tolerant of any structure."""
    info = BodyInfo()
    try:
        msg = parse_full(raw)
        parts = list(msg.walk())
    except Exception:  # noqa: BLE001
        info.text = xml_safe(raw.decode("utf-8", "replace"))
        return info
    for part in parts:
        try:
            ctype = part.get_content_type()
            if part.is_multipart():
                continue
            disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
            filename = part.get_filename()
            is_attachment = disposition == "attachment" or (
                filename is not None and not ctype.startswith("text/")
            ) or ctype == "message/rfc822"
            if not is_attachment and ctype == "text/html" and info.html is None:
                info.html = _part_text(part)
                continue
            if not is_attachment and ctype == "text/plain" and info.text is None:
                info.text = _part_text(part)
                continue
            if is_attachment or (filename is not None) or (
                disposition == "inline" and not ctype.startswith("text/")
            ):
                try:
                    content = part.get_payload(decode=True) or b""
                except Exception:  # noqa: BLE001
                    content = b""
                if ctype == "message/rfc822":
                    inner = part.get_payload()
                    if isinstance(inner, list) and inner:
                        content = inner[0].as_bytes() if hasattr(inner[0], "as_bytes") else b""
                cid = part.get("Content-ID")
                info.attachments.append(
                    Attachment(
                        name=decode_header_value(filename or "") or ("attachment" if ctype != "message/rfc822" else "message.eml"),
                        content_type=ctype,
                        size=len(content),
                        content_id=xml_safe(str(cid).strip("<> ")) if cid else None,
                        is_inline=disposition == "inline",
                        is_item=ctype == "message/rfc822",
                        content=content,
                    )
                )
        except Exception:  # noqa: BLE001 - one broken part must not hide the others
            continue
    return info


_TAG = re.compile(r"<[^>]+>")
_SCRIPT = re.compile(r"<(script|style)[^>]*>.*?</\1>", re.S | re.I)


def html_to_text(markup: str) -> str:
    markup = _SCRIPT.sub("", markup)
    markup = re.sub(r"<br\s*/?>|</p>|</div>|</tr>", "\n", markup, flags=re.I)
    return html.unescape(_TAG.sub("", markup)).strip()


def conversation_id(message_id: str | None, references: str | None, in_reply_to: str | None, subject: str) -> str:
    """Stable conversation id: the thread root Message-ID, else the normalised subject."""
    root = None
    if references:
        ids = re.findall(r"<[^>]+>", references)
        if ids:
            root = ids[0]
    if root is None and in_reply_to:
        ids = re.findall(r"<[^>]+>", in_reply_to)
        if ids:
            root = ids[0]
    if root is None:
        root = message_id or re.sub(r"^((re|fw|fwd|aw|wg|tr|sv)\s*:\s*)+", "", subject, flags=re.I)
    return base64.b64encode(hashlib.sha1(root.encode("utf-8", "replace")).digest()[:16]).decode()


def fmt_dt(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
