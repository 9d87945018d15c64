"""Robust MIME parsing: raw bytes -> headers, body candidates, attachments and flags. Never raises.

Parsing uses ``policy.compat32`` (fast, lenient, raw header values) and decodes everything by
hand: transfer encodings with lenient base64/QP, charsets through ``charset.decode_bytes``,
file names through RFC 2231 and RFC 2047. The walk is explicit about each multipart kind:

- ``alternative``: one body piece holding the plain and the HTML version (build chooses);
- ``related``: the root is the body, the other parts are inline attachments;
- ``signed``: the first part is the content, the signature part is a flag, not an attachment;
- ``encrypted`` / S/MIME ``enveloped-data``: no body, ``encrypted`` says which kind;
- S/MIME opaque ``signed-data``: the inner entity is unwrapped and walked;
- ``report``: the human-readable first part is the body, delivery statuses are collected;
- ``message/rfc822``: an attachment, kept aside so a pure forward can show its text;
- ``text/calendar``: summarised (method, summary, time, place) for invitations without text;
- ``application/ms-tnef`` (winmail.dat): the attachments inside are listed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import quopri
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.parser import BytesParser
from email.message import Message as MimeMessage
from email.policy import compat32

from . import feedparser_boundary, smime
from .charset import decode_bytes
from .headers import decode_words, header_map, raw_bytes, unfold

MAX_DEPTH = 32  # MIME nesting deeper than this is hostile or broken; deeper parts are ignored
# Size caps (docs/transform.md, "Size caps"): the cost of one message must stay bounded whatever it holds.
MAX_PARSE_BYTES = 100 * 1024 * 1024  # bytes beyond this are not parsed (Exchange's own limit is 150 MB)
MAX_PARTS = 5_000  # MIME parts walked per message; further parts count as unreadable
# Runs of base64 lines at least this long are set aside before the stdlib parser sees them (it works
# line by line in Python: ~5 s for a 50 MB attachment, ~1 ms for a 60 KB one, more than the rest of
# the transform) and put back, byte for byte, when a part's payload is read. Only messages larger
# than ELIDE_MIN_MESSAGE_BYTES are scanned (the scan and the marker cost ~20 us).
ELIDE_MIN_RUN_BYTES = 4 * 1024
ELIDE_MIN_MESSAGE_BYTES = 16 * 1024
_B64_RUN_RE = re.compile(rb"^(?:[A-Za-z0-9+/]{16,200}={0,2}\r?\n)+", re.MULTILINE)
_ELIDED_ATTR = "_exsync_elided"
# Characters of a base64 body (alphabet, padding, whitespace): what bytes.translate deletes to count junk.
_B64_TEXT_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\r\n\x0b\x0c"
_B64_STRIP_RE = re.compile(rb"[^A-Za-z0-9+/]")


@dataclass
class BodyPiece:
    """One displayable body: plain text, HTML, or both versions of the same content."""

    plain: str | None = None
    html: str | None = None


@dataclass
class AttachmentInfo:
    name: str
    size: int
    content_type: str
    inline: bool
    sha256: str


@dataclass
class DeliveryStatus:
    recipient: str
    action: str
    status: str


@dataclass
class ParsedMail:
    message: MimeMessage
    headers: dict[str, list[str]]
    pieces: list[BodyPiece] = field(default_factory=list)
    attachments: list[AttachmentInfo] = field(default_factory=list)
    forwarded: list[MimeMessage] = field(default_factory=list)
    encrypted: str | None = None  # "smime" | "pgp"
    signed: str | None = None  # "smime" | "pgp"
    report_type: str | None = None
    delivery: list[DeliveryStatus] = field(default_factory=list)
    calendar_method: str | None = None
    calendar_text: str | None = None
    tnef: bool = False
    too_deep: bool = False
    unreadable_parts: int = 0
    truncated: bool = False  # longer than MAX_PARSE_BYTES: the rest was not parsed


_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
# Python < 3.13 compiles a regex per multipart part; give it 3.13's matcher (same results, see module).
feedparser_boundary.install()

_OBS_COLON_RE = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)


class Elided:
    """Long base64 runs taken out of a message before parsing, keyed by their marker line."""

    def __init__(self, raw: bytes, head_end: int, min_run: int = ELIDE_MIN_RUN_BYTES) -> None:
        self.chunks: dict[bytes, bytes] = {}
        self.text = raw
        nonce = hashlib.sha256(raw).hexdigest()[:16].encode()
        self.prefix = b"\x00exsync-elided-" + nonce + b"-"
        out: list[bytes] = []
        pos = 0
        for match in _B64_RUN_RE.finditer(raw, head_end):
            start, end = match.span()
            if end - start < min_run:
                continue
            chunk = raw[start:end]
            newline = b"\r\n" if chunk.endswith(b"\r\n") else b"\n"
            marker = self.prefix + str(len(self.chunks)).encode() + b"\x00"
            # The marker stands for the run without its last line end: the parser drops the line end
            # before a boundary, and the one that stays (mid-part) follows the marker.
            self.chunks[marker] = chunk[: -len(newline)]
            out += [raw[pos:start], marker, newline]
            pos = end
        if self.chunks:
            out.append(raw[pos:])
            self.text = b"".join(out)

    def restore(self, data: bytes) -> bytes:
        if self.prefix not in data:
            return data
        for marker, chunk in self.chunks.items():
            data = data.replace(marker, chunk)
        return data


def restore_elided(part: MimeMessage, data: bytes) -> bytes:
    """``data`` (bytes of ``part``) with any set-aside base64 runs put back."""
    elided: Elided | None = getattr(part, _ELIDED_ATTR, None)
    return elided.restore(data) if elided is not None else data


def parse_bytes(raw: bytes) -> MimeMessage:
    """compat32 parse, after two repairs the parser does not make itself:

    - leading blank lines would make it see no headers at all;
    - RFC 5322 obsolete syntax allows whitespace before the colon (``Subject  : x``), which the
      parser takes for body text (and ``From  :`` for an mbox separator): it is removed in the
      header section only.

    Large messages have their long base64 runs set aside first (``Elided``); every part carries
    the table so that ``payload_bytes`` reads the exact original bytes.
    """
    raw = raw.lstrip(b"\r\n\t ")
    end = _HEADER_END_RE.search(raw)
    head_end = end.start() if end else len(raw)
    if _OBS_COLON_RE.search(raw, 0, head_end):
        raw = _OBS_COLON_RE.sub(rb"\1:", raw[:head_end]) + raw[head_end:]
    elided = Elided(raw, head_end, ELIDE_MIN_RUN_BYTES) if len(raw) >= ELIDE_MIN_MESSAGE_BYTES else None
    if elided is None or not elided.chunks:
        return message_from_bytes(raw, policy=compat32)
    message = message_from_bytes(elided.text, policy=compat32)
    for part in message.walk():
        setattr(part, _ELIDED_ATTR, elided)
    return message


def _header_str(part: MimeMessage, name: str) -> str:
    value = part.get(name)
    if value is None:
        return ""
    return unfold(str(value))


def content_type(part: MimeMessage) -> str:
    value = _header_str(part, "content-type").split(";", 1)[0].strip().strip("\"'").lower()
    if value.count("/") != 1 or " " in value:
        # RFC 2045: an invalid type means text/plain (inside multipart/digest: message/rfc822).
        return part.get_default_type()
    return value


def _param(part: MimeMessage, name: str, header: str = "content-type") -> str | None:
    try:
        value = part.get_param(name, header=header)
    except Exception:  # noqa: BLE001
        return None
    if value is None:
        return None
    if isinstance(value, tuple):  # RFC 2231: (charset, language, %-decoded text)
        charset, _language, text = value
        try:
            data = str(text).encode("raw-unicode-escape")
        except UnicodeEncodeError:
            data = str(text).encode("utf-8", "surrogateescape")
        return decode_bytes(data, charset or "utf-8")
    return str(value).strip().strip('"')


def _filename(part: MimeMessage) -> str | None:
    name = _param(part, "filename", "content-disposition") or _param(part, "name")
    if not name:
        return None
    # Non-standard but common: RFC 2047 words inside a quoted parameter; or raw 8-bit names.
    name = decode_words(name).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name or None


def _disposition(part: MimeMessage) -> str:
    return _header_str(part, "content-disposition").split(";", 1)[0].strip().lower()


_B64_WHITESPACE = b" \t\r\n\x0b\x0c"


def _lenient_b64(data: bytes) -> bytes:
    """Base64 that tolerates junk characters, missing padding and concatenated padded chunks."""
    # Fast path (the usual case, and the only one that matters for big attachments): only
    # alphabet characters and whitespace, padding only at the end. Same result as the loop below.
    compact = data.rstrip(b"=" + _B64_WHITESPACE).translate(None, _B64_WHITESPACE)
    if len(compact) % 4 != 1:
        try:
            # strict_mode refuses junk and any "=" before the end, in C (a regex pre-check cost more
            # than the decoding itself on attachments).
            return binascii.a2b_base64(compact + b"=" * (-len(compact) % 4), strict_mode=True)
        except (binascii.Error, ValueError):
            pass
    out = []
    for chunk in re.split(rb"=+", data):
        cleaned = _B64_STRIP_RE.sub(b"", chunk)
        cleaned = cleaned[: len(cleaned) - (len(cleaned) % 4 == 1)]
        if not cleaned:
            continue
        cleaned += b"=" * (-len(cleaned) % 4)
        try:
            out.append(base64.b64decode(cleaned))
        except (binascii.Error, ValueError):
            continue
    return b"".join(out)


def payload_bytes(part: MimeMessage) -> bytes:
    """The decoded bytes of a leaf part; a broken transfer encoding yields the raw bytes."""
    # get_payload() would re-decode 8-bit bodies with the declared charset and errors="replace",
    # losing bytes before we can repair the charset; the stored payload is the raw text
    # (undecodable bytes as surrogate escapes).
    payload = getattr(part, "_payload", None)
    if payload is None or isinstance(payload, list):
        return b""
    data = restore_elided(part, raw_bytes(payload) if isinstance(payload, str) else bytes(payload))
    cte = _header_str(part, "content-transfer-encoding").split(";", 1)[0].strip().strip("\"'").lower()
    if "base64" in cte:
        body = data.strip()
        # Text sent as-is under a base64 label (seen in the wild): decoding would be garbage.
        if body and len(body.translate(None, _B64_TEXT_CHARS)) > len(body) // 20:
            return data
        return _lenient_b64(body)
    if "quoted-printable" in cte or cte == "qp":
        try:
            return quopri.decodestring(data)
        except (ValueError, binascii.Error):
            return data
    if "uuencode" in cte or cte in ("x-uue", "uue"):
        try:
            decoded = None if getattr(part, _ELIDED_ATTR, None) else part.get_payload(decode=True)
        except Exception:  # noqa: BLE001
            decoded = None
        return decoded if isinstance(decoded, bytes) else data
    return data


def part_text(part: MimeMessage) -> str:
    return decode_bytes(payload_bytes(part), _param(part, "charset"))


def _guess_name(ctype: str, index: int) -> str:
    extension = mimetypes.guess_extension(ctype, strict=False) or ".bin"
    return f"attachment-{index}{extension}"


AttachmentSink = Callable[[AttachmentInfo, bytes], None]


class _Walker:
    def __init__(self, result: ParsedMail, sink: AttachmentSink | None = None) -> None:
        self.result = result
        self.parts = 0
        # Attachment content (exchange_sync.attachments): called with each attachment's decoded bytes,
        # in the order of ``result.attachments``, so content is stored without a second decode.
        self.sink = sink

    # -- leaves ----------------------------------------------------------------------------
    def attach(self, ctype: str, data: bytes, *, inline: bool, name: str | None) -> None:
        index = len(self.result.attachments) + 1
        info = AttachmentInfo(
            name=name or _guess_name(ctype, index),
            size=len(data),
            content_type=ctype,
            inline=inline,
            sha256=hashlib.sha256(data).hexdigest(),
        )
        self.result.attachments.append(info)
        if self.sink is not None:
            self.sink(info, data)

    def _calendar(self, text: str) -> None:
        unfolded = re.sub(r"\r?\n[ \t]", "", text)
        fields: dict[str, str] = {}
        in_event = False
        for line in unfolded.splitlines():
            upper = line.upper()
            if upper.startswith("METHOD:") and self.result.calendar_method is None:
                self.result.calendar_method = line.split(":", 1)[1].strip().upper()
            elif upper.startswith("BEGIN:VEVENT"):
                in_event = True
            elif upper.startswith("END:VEVENT"):
                break
            elif in_event and ":" in line:
                key = line.split(":", 1)[0].split(";", 1)[0].upper()
                if key in ("SUMMARY", "DTSTART", "DTEND", "LOCATION", "DESCRIPTION") and key not in fields:
                    value = line.split(":", 1)[1]
                    fields[key] = (
                        value.replace("\\n", "\n").replace("\\N", "\n").replace("\\,", ",").replace("\\;", ";")
                    )
        lines = []
        if "SUMMARY" in fields:
            lines.append(f"Meeting: {fields['SUMMARY']}")
        if "DTSTART" in fields:
            lines.append(f"When: {fields['DTSTART']}" + (f" - {fields['DTEND']}" if "DTEND" in fields else ""))
        if "LOCATION" in fields:
            lines.append(f"Where: {fields['LOCATION']}")
        if "DESCRIPTION" in fields:
            lines.append("")
            lines.append(fields["DESCRIPTION"])
        if lines and self.result.calendar_text is None:
            self.result.calendar_text = "\n".join(lines)

    def _tnef(self, data: bytes) -> None:
        self.result.tnef = True
        try:
            from tnefparse import TNEF

            tnef = TNEF(data, do_checksum=False)
        except Exception:  # noqa: BLE001 - a broken winmail.dat is still an attachment
            self.attach("application/ms-tnef", data, inline=False, name="winmail.dat")
            return
        for item in getattr(tnef, "attachments", []) or []:
            try:
                name = item.long_filename() or item.name
            except Exception:  # noqa: BLE001
                name = getattr(item, "name", None)
            if isinstance(name, bytes):
                name = decode_bytes(name, None)
            name = str(name or "").strip("\x00 ") or None
            content = getattr(item, "data", b"") or b""
            if not isinstance(content, bytes):
                content = bytes(content)
            ctype = (mimetypes.guess_type(name or "")[0] if name else None) or "application/octet-stream"
            self.attach(ctype, content, inline=False, name=name)
        body = getattr(tnef, "htmlbody", None)
        if body:
            text = body if isinstance(body, str) else decode_bytes(body, None)
            self.result.pieces.append(BodyPiece(html=text))
        else:
            plain = getattr(tnef, "body", None)
            if plain:
                text = plain if isinstance(plain, str) else decode_bytes(plain, None)
                self.result.pieces.append(BodyPiece(plain=text))

    def _delivery_status(self, part: MimeMessage) -> None:
        payload = part.get_payload()
        if isinstance(payload, list):
            # compat32 parses message/delivery-status into header blocks: one per recipient after the first
            blocks = payload
            texts = ["\n".join(f"{k}: {v}" for k, v in block.items()) for block in blocks]
            text = "\n\n".join(texts)
        else:
            text = part_text(part)
        for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
            fields: dict[str, str] = {}
            for line in block.splitlines():
                if ":" in line and not line[:1].isspace():
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
            recipient = fields.get("final-recipient") or fields.get("original-recipient")
            if recipient:
                recipient = recipient.split(";", 1)[-1].strip()
                self.result.delivery.append(
                    DeliveryStatus(recipient, fields.get("action", ""), fields.get("status", ""))
                )

    def _smime(self, part: MimeMessage, ctype: str, depth: int) -> list[BodyPiece]:
        data = payload_bytes(part)
        kind = (_param(part, "smime-type") or "").lower()
        detected = smime.content_kind(data)
        if kind == "signed-data" or detected == "signed":
            inner = smime.signed_content(data)
            self.result.signed = "smime"
            if inner:
                return self.walk(parse_bytes(inner), depth + 1)
            return []
        if kind in ("enveloped-data", "authenveloped-data") or detected == "encrypted" or not kind:
            self.result.encrypted = "smime"
            return []
        self.attach(ctype, data, inline=False, name=_filename(part))
        return []

    # -- the walk -----------------------------------------------------------------------------
    def walk(self, part: MimeMessage, depth: int = 0) -> list[BodyPiece]:
        if depth > MAX_DEPTH:
            self.result.too_deep = True
            return []
        self.parts += 1
        if self.parts > MAX_PARTS:
            self.result.unreadable_parts += 1
            return []
        try:
            return self._walk(part, depth)
        except RecursionError:
            self.result.too_deep = True
            return []
        except Exception:  # noqa: BLE001 - one broken part must not lose the message
            self.result.unreadable_parts += 1
            return []

    def _walk(self, part: MimeMessage, depth: int) -> list[BodyPiece]:
        ctype = content_type(part)
        maintype, _, subtype = ctype.partition("/")
        payload = part.get_payload()
        if maintype == "multipart" and isinstance(payload, list):
            return self._multipart(part, subtype, payload, depth)
        if ctype == "message/rfc822" and isinstance(payload, list) and payload:
            inner = payload[0]
            self.result.forwarded.append(inner)
            try:
                data = inner.as_bytes(policy=compat32)
            except Exception:  # noqa: BLE001
                data = raw_bytes(str(inner))
            data = restore_elided(part, data)
            subject = decode_words(unfold(str(inner.get("subject") or ""))).strip()
            name = _filename(part) or ((subject[:200] or "forwarded message") + ".eml")
            self.attach(ctype, data, inline=False, name=name)
            return []
        if ctype == "message/delivery-status":
            self._delivery_status(part)
            return []
        if maintype == "multipart":
            # A multipart without a usable boundary: its text is all we have.
            return [BodyPiece(plain=part_text(part))]
        return self._leaf(part, ctype, depth)

    def _leaf(self, part: MimeMessage, ctype: str, depth: int) -> list[BodyPiece]:
        disposition = _disposition(part)
        name = _filename(part)
        if ctype in ("application/pkcs7-signature", "application/x-pkcs7-signature"):
            self.result.signed = "smime"
            return []
        if ctype == "application/pgp-signature":
            self.result.signed = "pgp"
            return []
        if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime") or (
            name and name.lower().endswith(".p7m") and ctype == "application/octet-stream"
        ):
            return self._smime(part, ctype, depth)
        if ctype == "application/pgp-encrypted":
            self.result.encrypted = "pgp"
            return []
        if ctype == "application/ms-tnef" or (name or "").lower() == "winmail.dat":
            self._tnef(payload_bytes(part))
            return []
        if ctype == "text/calendar":
            data = payload_bytes(part)
            self._calendar(decode_bytes(data, _param(part, "charset")))
            if disposition == "attachment" or name:
                self.attach(ctype, data, inline=False, name=name)
            return []
        if ctype in ("text/plain", "text/html", "text/enriched", "text/richtext") and not (
            disposition == "attachment" or (name and disposition != "inline" and ctype != "text/plain")
        ):
            text = part_text(part)
            if "-----BEGIN PGP MESSAGE-----" in text[:4096]:
                self.result.encrypted = "pgp"
                return []
            if ctype == "text/html":
                return [BodyPiece(html=text)]
            return [BodyPiece(plain=text)]
        if ctype == "text/rfc822-headers":
            return []  # the returned headers of a bounce: part of the report, not an attachment
        inline = disposition == "inline" or (disposition == "" and part.get("content-id") is not None)
        self.attach(ctype, payload_bytes(part), inline=inline, name=name)
        return []

    def _multipart(self, part: MimeMessage, subtype: str, children: list, depth: int) -> list[BodyPiece]:
        children = [c for c in children if isinstance(c, MimeMessage)]
        if subtype == "alternative":
            plain: str | None = None
            html: str | None = None
            for child in children:
                for piece in self.walk(child, depth + 1):
                    if piece.html is not None:
                        html = piece.html  # the last (richest) HTML alternative wins
                        if piece.plain is not None and plain is None:
                            plain = piece.plain
                    elif piece.plain is not None and plain is None:
                        plain = piece.plain
            return [BodyPiece(plain=plain, html=html)] if plain is not None or html is not None else []
        if subtype == "related":
            start = _param(part, "start")
            root_index = 0
            if start:
                for index, child in enumerate(children):
                    if str(child.get("content-id", "")).strip() == start.strip():
                        root_index = index
                        break
            pieces: list[BodyPiece] = []
            for index, child in enumerate(children):
                if index == root_index:
                    pieces.extend(self.walk(child, depth + 1))
                else:
                    ctype = content_type(child)
                    if ctype.startswith("multipart/") or ctype.startswith("message/"):
                        self.walk(child, depth + 1)
                    else:
                        self.attach(ctype, payload_bytes(child), inline=True, name=_filename(child))
            return pieces
        if subtype == "signed":
            protocol = (_param(part, "protocol") or "").lower()
            self.result.signed = "pgp" if "pgp" in protocol else "smime"
            pieces = self.walk(children[0], depth + 1) if children else []
            for child in children[1:]:
                self.walk(child, depth + 1)  # signature parts are recognised and skipped
            return pieces
        if subtype == "encrypted":
            protocol = (_param(part, "protocol") or "").lower()
            self.result.encrypted = "pgp" if "pgp" in protocol or not protocol else "smime"
            return []
        if subtype == "report":
            self.result.report_type = (_param(part, "report-type") or "").lower() or "unknown"
            pieces = self.walk(children[0], depth + 1) if children else []
            for child in children[1:]:
                self.walk(child, depth + 1)
            return pieces
        pieces = []
        for child in children:
            pieces.extend(self.walk(child, depth + 1))
        return pieces


def parse_mail(raw: bytes, sink: AttachmentSink | None = None) -> ParsedMail:
    """Parse and walk a message; a structure the walk cannot read degrades to its raw text.

    Beyond ``MAX_PARSE_BYTES`` the rest is not parsed (``truncated``). Nesting so deep that the
    stdlib parser itself recurses out (hundreds of levels) keeps the headers and no body.
    """
    truncated = len(raw) > MAX_PARSE_BYTES
    if truncated:
        raw = raw[:MAX_PARSE_BYTES]
    try:
        message = parse_bytes(raw)
    except RecursionError:
        message = BytesParser(policy=compat32).parsebytes(raw.lstrip(b"\r\n\t "), headersonly=True)
        result = ParsedMail(message=message, headers=header_map(message), too_deep=True, truncated=truncated)
        return result
    result = ParsedMail(message=message, headers=header_map(message), truncated=truncated)
    walker = _Walker(result, sink)
    pieces = walker.walk(message)
    result.pieces[:0] = pieces  # TNEF bodies were appended during the walk; the MIME body comes first
    return result


def walk_body(message: MimeMessage) -> list[BodyPiece]:
    """The body pieces of an attached (forwarded) message, for pure forwards."""
    scratch = ParsedMail(message=message, headers={})
    return _Walker(scratch).walk(message)
