"""``email_to_comment``: raw RFC 822 bytes + Exchange metadata -> a validated ``Comment`` or a ``Rejection``.

Pure and deterministic: the same bytes and metadata always give the same comment (no clock, no
randomness, no network). It never raises: anything unexpected inside becomes a degraded but valid
comment where possible, and a ``Rejection`` with a reason only when there is no email at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import ValidationError

from exchange_sync.comment import (
    MAX_ADDRESS_CHARS,
    MAX_ATTACHMENT_FIELD_CHARS,
    MAX_ATTACHMENTS,
    MAX_TEXT_CHARS,
    Attachment,
    Comment,
    Message,
    RichText,
    truncate_text,
)

from . import enrich
from .headers import Address, header_text, parse_addresses
from .html_text import html_to_text
from .language import detect_language
from .meta import ExchangeMeta, Rejection
from .mime import BodyPiece, ParsedMail, parse_mail, walk_body
from .quotes import first_marker_line, forwarded_content, split_quote
from .signature import SignatureSplit, split_signature, strip_trailing_delimiter
from .text import normalise_body, single_line

# Headers that make bytes an email; input with none of them is not one (e.g. random bytes).
_EMAIL_HEADERS = frozenset(
    "from sender to cc bcc subject date message-id received mime-version content-type reply-to "
    "return-path in-reply-to references delivered-to x-mailer".split()
)
# HTML that carries client markup for quotes or signatures: cutting the tree beats text rules.
# Markup of a mail client's quote or signature container: HTML is then the better source than the
# plain alternative. Literal markers are found with ``in`` on the lower-cased HTML (an IGNORECASE
# alternation costs ~0.5 ms on Outlook's 10-20 KB bodies); the three patterns are gated by a literal.
_STRUCTURE_MARKERS = (
    "gmail_quote", "divrplyfwdmsg", "appendonsend", "moz-cite-prefix", "gmail_signature", "moz-signature",
    "_mailautosig", "outlookmessageheader", "yahoo_quoted", "mail-editor-reference-message-container",
    "applemailsignature", "olk_src_body_section", "protonmail_quote", "protonmail_signature_block", "zmail_extra",
    "ymail_android_signature", "composer_signature",
)
_STRUCTURE_PATTERNS = (("cite", re.compile(r"type=\"?cite")), ("signature", re.compile(r"id=\"?signature")),
                       ("border-top", re.compile(r"border-top:\s*solid")))


def _has_quote_structure(html: str) -> bool:
    low = html.lower()
    return any(marker in low for marker in _STRUCTURE_MARKERS) or any(
        literal in low and pattern.search(low) for literal, pattern in _STRUCTURE_PATTERNS
    )


_STUB_RE = re.compile(r"html|this (?:is a )?(?:multi-?part )?message|mime format|e-?mail client", re.IGNORECASE)
_FORWARD_SUBJECT_RE = re.compile(
    r"^\s*(?:fwd?|fw|wg|tr|rv|enc|i|doorst|vs|vl|fs|trs|pd|rif)\s*(?:\[\d+\])?\s*:", re.IGNORECASE
)
_SIGNATURE_ONLY_RE = re.compile(r"^\s*$")

# Size caps on what the cleaning rules see (docs/transform.md, "Size caps"). The comment keeps at
# most MAX_TEXT_CHARS (65,536) of body text, so larger inputs only cost time: HTML beyond
# MAX_HTML_CHARS is not parsed, text beyond MAX_CLEAN_CHARS is not cleaned; both set
# ``string:Truncated``.
MAX_HTML_CHARS = 1_000_000
MAX_CLEAN_CHARS = 4 * MAX_TEXT_CHARS
MAX_BODY_PIECES = 64  # displayable parts joined into one body (the rest are counted as truncated)
# Set when the safety net kept text the quote/signature cuts would have removed entirely.
CLEANING_PROPERTY = "string:Cleaning"
CLEANING_FALLBACK = "fallback"


@dataclass
class _Body:
    text: str
    quoted: str
    signature: str
    source: str  # plain | html | calendar | forwarded | none
    quote_kind: str | None
    # a size cap cut the input of the cleaning rules (MAX_HTML_CHARS, MAX_CLEAN_CHARS) or the HTML parser
    # stopped early (nesting deeper than every cap)
    capped: bool = False
    fallback: bool = False  # the cuts would have left nothing: the safety net kept the author's text


def _plain_is_stub(plain: str | None) -> bool:
    if plain is None:
        return True
    stripped = plain.strip()
    return len(stripped) < 3 or (len(stripped) < 300 and bool(_STUB_RE.search(stripped)) and "\n\n" not in stripped)


def _cap(text: str | None, limit: int, cut_at: str = "\n") -> tuple[str | None, bool]:
    """``text`` cut to at most ``limit`` characters (at the last ``cut_at`` before it, if any)."""
    if text is None or len(text) <= limit:
        return text, False
    head = text[:limit]
    index = head.rfind(cut_at, limit // 2)
    return (head[:index] if index > 0 else head), True


def _piece_text(piece: BodyPiece) -> tuple[str, str, str | None, bool, str, bool]:
    """(new text, quoted text, marked signature, structural quote found, source, capped) of one body piece."""
    html, html_capped = _cap(piece.html, MAX_HTML_CHARS, "<")
    plain, plain_capped = _cap(piece.plain, MAX_CLEAN_CHARS)
    use_html = html is not None and (_plain_is_stub(plain) or _has_quote_structure(html))
    if use_html:
        converted = html_to_text(html or "")
        # Everything inside a quote container (seen: a whole message wrapped in gmail_quote):
        # the plain alternative, if real, is the better source then.
        usable = converted.text.strip() or (converted.quoted.strip() and _plain_is_stub(plain))
        if usable or plain is None:
            text, text_capped = _cap(converted.text, MAX_CLEAN_CHARS)
            quoted, quoted_capped = _cap(converted.quoted, MAX_CLEAN_CHARS)
            capped = html_capped or text_capped or quoted_capped or converted.truncated
            return text or "", quoted or "", converted.signature, converted.quote_cut, "html", capped
    return plain or "", "", None, False, "plain", plain_capped


def _body(
    parsed: ParsedMail, subject: str, sender_name: str | None, depth: int = 0, *, automated: bool = False
) -> _Body:
    new_parts: list[str] = []
    quoted_parts: list[str] = []
    marked_signatures: list[str] = []
    structural = False
    capped = False
    source = "none"
    for piece in parsed.pieces[:MAX_BODY_PIECES]:
        new, quoted, signature, cut, kind, piece_capped = _piece_text(piece)
        capped = capped or piece_capped
        if new.strip() or quoted.strip():
            source = kind if source == "none" else source
        new_parts.append(new)
        quoted_parts.append(quoted)
        if signature:
            marked_signatures.append(signature)
        structural = structural or cut
    joined, joined_capped = _cap("\n\n".join(part for part in new_parts if part.strip()), MAX_CLEAN_CHARS)
    text = normalise_body(joined or "")
    joined_quoted, quoted_capped = _cap("\n\n".join(part for part in quoted_parts if part.strip()), MAX_CLEAN_CHARS)
    structural_quoted = normalise_body(joined_quoted or "")
    capped = capped or joined_capped or quoted_capped or len(parsed.pieces) > MAX_BODY_PIECES

    split = split_quote(text)
    new_text = normalise_body(split.new)
    quoted = normalise_body("\n\n".join(part for part in (split.quoted, structural_quoted) if part))
    # Only a cut that removed something is reported.
    quote_kind = (split.kind if split.quoted.strip() else None) or ("html" if structural else None)

    if marked_signatures:
        new_text = strip_trailing_delimiter(new_text)
    # Machine-written mail (bounces) has no personal signature; its trailing details are content.
    sig = SignatureSplit(new_text, "") if automated else split_signature(new_text, sender_name)
    body_text = normalise_body(sig.body)
    signature = normalise_body("\n".join(part for part in (sig.signature, *marked_signatures) if part.strip()))
    # The "-- " delimiter that opens a signature is markup, not content.
    signature = re.sub(r"\A--[ \t]*\n", "", signature).strip()

    # A pure forward keeps the forwarded message (docs/transform.md): no new text, and either a
    # forward marker or a forward subject over a header block.
    if not body_text and quoted and (
        split.kind == "forward" or _FORWARD_SUBJECT_RE.match(subject) or _starts_with_forward(structural_quoted)
    ):
        forwarded = normalise_body(forwarded_content(quoted))
        if forwarded:
            return _Body(forwarded, quoted, signature, source, "forward", capped)
    # Forwarded as an attachment (message/rfc822) with no text of its own: show the attached text.
    if not body_text and parsed.forwarded and depth == 0:
        inner = ParsedMail(message=parsed.forwarded[0], headers={}, pieces=walk_body(parsed.forwarded[0]))
        inner_body = _body(inner, "", None, depth + 1)
        if inner_body.text:
            return _Body(inner_body.text, quoted, signature, "forwarded", quote_kind, capped or inner_body.capped)
    # Safety net: cleaning never turns author text into an empty body (docs/transform.md).
    if not body_text and not automated:
        kept = _fallback_text(text, new_text, signature)
        if kept:
            lost_cut = kept == text or not split.quoted.strip()
            kind = None if lost_cut and not structural else ("html" if lost_cut else quote_kind)
            return _Body(kept, quoted, "", source, kind, capped, fallback=True)
    if not body_text and not signature and parsed.calendar_text:
        calendar, calendar_capped = _cap(parsed.calendar_text, MAX_CLEAN_CHARS)
        return _Body(normalise_body(calendar or ""), quoted, "", "calendar", quote_kind, capped or calendar_capped)
    return _Body(body_text, quoted, signature, source, quote_kind, capped)


def _fallback_text(text: str, new_text: str, signature: str) -> str:
    """What the safety net keeps when the cuts left an empty body ("" when nothing should be kept).

    Text that starts with a history marker or ``>`` quoting has no author text above it: nothing is
    kept. Otherwise the text above the first line that is on its own a marker; failing that the whole
    new text (the signature cut included), or the text as written.
    """
    stripped = text.strip()
    if not stripped:
        return signature if signature else ""
    lines = stripped.split("\n")
    first = first_marker_line(stripped)
    if first == 0:
        return ""
    above = normalise_body("\n".join(lines[:first])) if first is not None else ""
    kept = above or new_text or stripped
    # A message that is only a signature keeps it, without the "-- " markup line.
    return re.sub(r"\A--[ \t]*\n", "", kept).strip() or kept


def _starts_with_forward(quoted: str) -> bool:
    first = quoted.strip().split("\n", 1)[0] if quoted.strip() else ""
    return bool(re.search(r"forward|weitergeleitet|transf[ée]r|reenviado|doorgestuurd|inoltrato|encaminhad", first, re.I))


def _displays(addresses: list[Address]) -> list[str]:
    return [text for text in (a.display(MAX_ADDRESS_CHARS) for a in addresses) if text]


def _reject(reason: str, meta: ExchangeMeta, message_id: str | None = None) -> Rejection:
    return Rejection(
        reason=reason,
        item_id=meta.item_id,
        mailbox=meta.mailbox,
        folder_path=meta.folder_path,
        message_id=message_id,
    )


def email_to_comment(raw: bytes, meta: ExchangeMeta | None = None) -> Comment | Rejection:
    """Turn one raw email into a comment; a ``Rejection`` (with reason) only for non-emails."""
    meta = meta or ExchangeMeta()
    if raw is None:
        return _reject("no MIME content", meta, meta.internet_message_id)
    if not isinstance(raw, bytes):
        try:
            raw = bytes(raw)
        except (TypeError, ValueError):
            return _reject(f"MIME content is {type(raw).__name__}, not bytes", meta, meta.internet_message_id)
    if not raw.strip():
        return _reject("empty MIME content", meta, meta.internet_message_id)
    try:
        parsed = parse_mail(raw)
    except RecursionError:
        return _reject("MIME structure too deeply nested to parse", meta, meta.internet_message_id)
    except Exception as exc:  # noqa: BLE001 - the stdlib parser is lenient; this is a last resort
        return _reject(f"unparseable MIME ({type(exc).__name__})", meta, meta.internet_message_id)
    if not _EMAIL_HEADERS.intersection(parsed.headers):
        return _reject(
            "not an email: no RFC 5322 header (From, To, Subject, Date, Message-ID, ...) found",
            meta,
            meta.internet_message_id,
        )
    try:
        return _build(raw, parsed, meta)
    except ValidationError as exc:
        # A bug upstream of the model: say which field, keep the message out of the store.
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _reject(f"invalid comment at {where}: {first.get('msg', 'validation error')}", meta)


def _build(raw: bytes, parsed: ParsedMail, meta: ExchangeMeta) -> Comment:
    headers = parsed.headers
    subject = single_line(header_text(headers, "subject") or "", MAX_TEXT_CHARS)
    senders = parse_addresses(headers.get("from")) or parse_addresses(headers.get("sender"))
    sender = next((a for a in senders if a.addr), senders[0] if senders else None)
    to = parse_addresses(headers.get("to"))
    cc = parse_addresses(headers.get("cc"))
    bcc = parse_addresses(headers.get("bcc"))
    recipients = [a for a in (*to, *cc, *bcc) if a.addr]

    cid, id_source = enrich.comment_id(parsed, raw, meta.internet_message_id)
    thread = enrich.thread_id(parsed, meta.conversation_id, cid)
    timestamp, sent_at, timestamp_source = enrich.timestamps(parsed, meta.datetime_received)

    if parsed.encrypted:
        body = _Body("", "", "", "none", None)
    else:
        automated = enrich.is_bounce(parsed, subject, sender)
        body = _body(parsed, subject, sender.name if sender else None, automated=automated)
    body_text = truncate_text(body.text, MAX_TEXT_CHARS)
    signature_text = truncate_text(body.signature, MAX_TEXT_CHARS)

    found = parsed.attachments
    attachments = [
        Attachment(
            name=single_line(item.name, MAX_ATTACHMENT_FIELD_CHARS) or "attachment",
            size=item.size,
            content_type=single_line(item.content_type, MAX_ATTACHMENT_FIELD_CHARS) or "application/octet-stream",
            inline=item.inline,
            content_hash=item.sha256,
        )
        for item in found[:MAX_ATTACHMENTS]
    ]

    message = Message(
        from_=sender.display(MAX_ADDRESS_CHARS) if sender else None,
        to=_displays(to),
        cc=_displays(cc),
        bcc=_displays(bcc),
        sent_at=sent_at,
        language=detect_language(body_text) if body_text else None,
        subject=RichText(text=subject) if subject else None,
        body=RichText(text=body_text),
        signature=RichText(text=signature_text) if signature_text else None,
    )

    properties: dict[str, str | int | float] = {}

    def put(key: str, value: str | None, limit: int = 1024) -> None:
        cleaned = enrich.prop(value, limit)
        if cleaned:
            properties[key] = cleaned

    raw_message_id = enrich.message_id(parsed)
    if id_source == "header":
        put("string:Message ID", header_text(headers, "message-id"))
    elif id_source == "exchange":
        put("string:Message ID", meta.internet_message_id)
    properties[enrich.MESSAGE_ID_SOURCE] = id_source
    if meta.internet_message_id and id_source != "exchange" and raw_message_id != meta.internet_message_id.strip():
        put("string:Exchange Message ID", meta.internet_message_id)
    put("string:Mailbox", meta.mailbox, 512)
    put("string:Folder", meta.folder_path)
    if sender is not None:
        put("string:Sender", sender.addr.lower() if sender.addr else None, 512)
        put("string:Sender Domain", sender.domain, 255)
    put("string:Recipient Domains", ",".join(enrich.domains(recipients)), MAX_TEXT_CHARS)
    properties["number:Recipients"] = len({a.addr.lower() for a in recipients})
    properties["number:Attachments"] = len(found)
    if len(found) > MAX_ATTACHMENTS:
        properties["number:Attachments Dropped"] = len(found) - MAX_ATTACHMENTS
    put("string:In Reply To", header_text(headers, "in-reply-to"))
    if enrich.is_auto_reply(parsed, subject):
        properties["string:Auto Reply"] = "true"
    put("string:Auto Submitted", header_text(headers, "auto-submitted"), 128)
    if enrich.is_bounce(parsed, subject, sender):
        properties["string:Bounce"] = "true"
    if parsed.delivery:
        put("string:Bounced Recipients", ",".join(sorted({d.recipient for d in parsed.delivery})))
        put("string:Delivery Status", ",".join(sorted({d.status for d in parsed.delivery if d.status})), 256)
    if parsed.report_type:
        put("string:Report Type", parsed.report_type, 128)
    if parsed.encrypted:
        properties["string:Encrypted"] = parsed.encrypted
    if parsed.signed:
        properties["string:Signed"] = parsed.signed
    if parsed.calendar_method:
        put("string:Calendar Method", parsed.calendar_method, 64)
    if parsed.tnef:
        properties["string:TNEF"] = "true"
    put("string:Importance", header_text(headers, "importance") or header_text(headers, "x-priority"), 64)
    put("string:Sensitivity", header_text(headers, "sensitivity"), 64)
    put("string:Mailer", header_text(headers, "x-mailer") or header_text(headers, "user-agent"), 256)
    put("string:Item ID", meta.item_id, 1024)
    properties["string:Body Source"] = body.source
    if body.quote_kind:
        properties["string:Quoted History"] = body.quote_kind
    if body.fallback:
        properties[CLEANING_PROPERTY] = CLEANING_FALLBACK
    properties["string:Timestamp Source"] = timestamp_source
    if parsed.too_deep or parsed.unreadable_parts:
        properties["number:Unreadable Parts"] = parsed.unreadable_parts + int(parsed.too_deep)
    if len(body.text) > MAX_TEXT_CHARS or len(body.signature) > MAX_TEXT_CHARS or body.capped or parsed.truncated:
        properties["string:Truncated"] = "true"

    return Comment(
        id=cid,
        timestamp=timestamp,
        thread_id=thread,
        messages=[message],
        user_properties=properties,
        attachments=attachments,
    )
