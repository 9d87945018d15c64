"""Enrichment: ids, thread id, timestamps, flags and the user properties of a comment."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

from exchange_sync.comment import MAX_ID_CHARS, message_id_to_comment_id

from .headers import Address, header_raw, header_text, parse_date, received_date, unfold
from .mime import ParsedMail
from .text import single_line

MESSAGE_ID_SOURCE = "string:Message ID Source"
FALLBACK_TIMESTAMP = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MSGID_RE = re.compile(r"<[^<>\s]+>")
# Headers that identify an email's content independently of the mailbox copy (no Received,
# no X-MS-Exchange-*): the basis of the derived id.
_CANONICAL_HEADERS = ("from", "sender", "to", "cc", "date", "subject", "in-reply-to", "references")
_AUTO_SUBJECT_RE = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?reply|autoreply|out of (?:the )?office|abwesenheitsnotiz"
    r"|automatische antwort|réponse automatique|respuesta automática|automatisch antwoord"
    r"|risposta automatica|resposta automática|fuera de la oficina|absence)\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT_RE = re.compile(
    r"^\s*(?:undeliverable|undelivered mail|delivery status notification|mail delivery failed"
    r"|returned mail|delivery failure|failure notice|unzustellbar|non remis|no se puede entregar"
    r"|onbestelbaar|non recapitabile|mail delivery failure)\b",
    re.IGNORECASE,
)
_BOUNCE_SENDER_RE = re.compile(r"^(?:mailer-daemon|postmaster|microsoftexchange[0-9a-f]*)@", re.IGNORECASE)


def message_id(parsed: ParsedMail) -> str | None:
    """The Message-ID value as sent: raw (undecoded), unfolded, ends stripped; None when empty."""
    raw = header_raw(parsed.headers, "message-id")
    if raw is None:
        return None
    raw = raw.strip()
    return raw or None


def derived_id(parsed: ParsedMail, raw: bytes) -> str:
    """sha256 (hex) over the canonical headers and the body bytes: stable for the same content.

    Line endings and trailing whitespace are normalised so a CRLF and an LF copy of the same
    email get the same id; headers are taken raw (undecoded) so no decoder change can move it.
    """
    digest = hashlib.sha256()
    for name in _CANONICAL_HEADERS:
        for value in parsed.headers.get(name, []):
            digest.update(name.encode() + b":" + unfold(value).strip().encode("utf-8", "surrogateescape") + b"\n")
    separator = re.search(rb"\r?\n\r?\n", raw)
    body = raw[separator.end() :] if separator else b""
    body = re.sub(rb"[ \t]*\r?\n", b"\n", body).rstrip()
    digest.update(b"\n" + body)
    return digest.hexdigest()


def comment_id(parsed: ParsedMail, raw: bytes, exchange_message_id: str | None) -> tuple[str, str]:
    """(id, source): 'header' (the MIME Message-ID), 'exchange' (EWS InternetMessageId) or 'derived'."""
    value = message_id(parsed)
    if value is not None:
        hexed = message_id_to_comment_id(value)
        if len(hexed) <= MAX_ID_CHARS:
            return hexed, "header"
    if exchange_message_id and exchange_message_id.strip():
        hexed = message_id_to_comment_id(exchange_message_id)
        if len(hexed) <= MAX_ID_CHARS:
            return hexed, "exchange"
    return derived_id(parsed, raw), "derived"


def thread_id(parsed: ParsedMail, conversation_id: str | None, own_id: str) -> str:
    """EWS ConversationId (hex) when known, else the root of References/In-Reply-To, else the comment id."""
    if conversation_id and conversation_id.strip():
        hexed = conversation_id.strip().encode("utf-8").hex()
        if len(hexed) <= MAX_ID_CHARS:
            return hexed
    for name in ("references", "in-reply-to"):
        raw = header_raw(parsed.headers, name)
        if raw:
            found = _MSGID_RE.findall(raw)
            if found:
                hexed = message_id_to_comment_id(found[0])
                if len(hexed) <= MAX_ID_CHARS:
                    return hexed
    return own_id


def timestamps(parsed: ParsedMail, received: datetime | None) -> tuple[datetime, datetime | None, str]:
    """(timestamp, sent_at, timestamp source). Exchange's received time, else Date, else the
    topmost Received header, else the Unix epoch (deterministic; flagged by the source property)."""
    sent_at = parse_date(header_text(parsed.headers, "date"))
    if received is not None:
        if received.tzinfo is None:
            received = received.replace(tzinfo=timezone.utc)
        return received.astimezone(timezone.utc), sent_at, "exchange"
    if sent_at is not None:
        return sent_at, sent_at, "date"
    hop = received_date(parsed.headers)
    if hop is not None:
        return hop, sent_at, "received"
    return FALLBACK_TIMESTAMP, sent_at, "none"


def is_auto_reply(parsed: ParsedMail, subject: str) -> bool:
    headers = parsed.headers
    auto_submitted = (header_text(headers, "auto-submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return True
    if header_text(headers, "x-autoreply") or header_text(headers, "x-autorespond"):
        return True
    precedence = (header_text(headers, "precedence") or "").lower()
    if "auto_reply" in precedence or "auto-reply" in precedence:
        return True
    suppress = (header_text(headers, "x-auto-response-suppress") or "").lower()
    # Exchange sets "X-Auto-Response-Suppress: All" on its own automatic replies (OOF).
    if suppress and ("all" in suppress or "oof" in suppress or "autoreply" in suppress) and _AUTO_SUBJECT_RE.match(subject):
        return True
    if _AUTO_SUBJECT_RE.match(subject):
        return True
    return False


def is_bounce(parsed: ParsedMail, subject: str, sender: Address | None) -> bool:
    if parsed.report_type == "delivery-status" or parsed.delivery:
        return True
    if sender is not None and _BOUNCE_SENDER_RE.match(sender.addr) and _BOUNCE_SUBJECT_RE.match(subject):
        return True
    return False


def domains(addresses: list[Address]) -> list[str]:
    return sorted({domain for domain in (a.domain for a in addresses) if domain})


def prop(value: str | None, limit: int = 1024) -> str | None:
    """A header-derived property value made single-line and capped; None when empty."""
    if value is None:
        return None
    cleaned = single_line(value, limit)
    return cleaned or None
