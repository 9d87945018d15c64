"""Split the signature from the new text of an email.

The signature starts at the earliest of these, searched only near the end of the text:

- the ``-- `` delimiter (RFC 3676) or a bare ``--`` / ``__`` line;
- a mobile or client signature: "Sent from my iPhone", "Von meinem iPhone gesendet",
  "Envoyé de mon iPhone", "Enviado desde mi iPhone", "Get Outlook for Android" ...;
- the line after a closing ("Best regards,", "Mit freundlichen Grüßen", "Cordialement",
  "Saludos", "Met vriendelijke groet", "Cordiali saluti", "Atenciosamente" ...) when short
  name/title/contact lines follow; the closing itself stays in the body, it is part of the message;
- a line that is the sender's name (or first name) followed by short lines;
- a trailing block of contact lines (phone, e-mail, web, address) of a name/title block;
- a legal disclaimer / confidentiality notice paragraph (which goes into the signature as well).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MOBILE_RE = re.compile(
    r"^\s*(?:"
    r"sent (?:\w+ ){0,2}from (?:my |the )?(?:.{0,40}|[^,;:!?]{0,70})|sent via .{0,40}|sent using .{0,40}|sent with .{0,40}"
    r"|sent on the go|get outlook for .{0,30}|download outlook for .{0,30}|obtenir outlook pour .{0,30}"
    r"|outlook für .{0,20} herunterladen|outlook voor .{0,20} downloaden|descargar outlook para .{0,20}"
    r"|von meinem .{0,40} gesendet|gesendet von meinem .{0,40}|gesendet von .{0,30}|gesendet mit .{0,30}"
    r"|envoyé de mon .{0,40}|envoyé depuis mon .{0,40}|envoyé à partir de .{0,40}|envoyé de .{0,30}"
    r"|enviado desde mi .{0,40}|enviado desde .{0,30}|enviado de meu .{0,40}|enviado do meu .{0,40}"
    r"|enviado a partir do .{0,40}|verzonden vanaf mijn .{0,40}|verstuurd vanaf mijn .{0,40}"
    r"|verzonden met .{0,30}|inviato da(?:l mio)? .{0,40}|skickat från min .{0,40}|sendt fra min .{0,40}"
    r"|sendt fra .{0,30}|skickat från .{0,30}|lähetetty .{0,40}|wysłane z .{0,40}|wysłano z .{0,40}"
    r"|odesláno z .{0,40}|odoslané z .{0,40}|poslano s .{0,40}|poslano iz .{0,40}|trimis de pe .{0,40}"
    r"|enviat des de(?:l meu)? .{0,40}|отправлено с .{0,40}|отправлено из .{0,40}|надіслано з .{0,40}"
    r"|изпратено от .{0,40}|εστάλη από .{0,40}|được gửi từ .{0,40}|dikirim dari .{0,40}|iphone'umdan gönderildi"
    r"|.{1,30}(?:['’]?(?:dan|den|tan|ten|umdan|imden)) gönderildi|.{1,30}-?(?:ról|ről) küldve"
    r"|从我的.{1,20}发送|发自我的.{1,20}|從我的.{1,20}傳送|寄自我的.{1,20}|.{1,20}から送信|나의 .{1,20}에서 보냄"
    r"|נשלח מ.{1,30}|أرسلت من .{1,30}|ส่งจาก .{1,30}"
    r")(?:\s*<[^<>\s]{1,200}>)?\s*$",  # Outlook mobile appends its link: "Get Outlook for iOS<https://aka.ms/o0ukef>"
    re.IGNORECASE,
)
_DELIMITER_RE = re.compile(r"^(?:--|—|__|-- ?\s*)$")
_RULE_DELIMITER_RE = re.compile(r"^[-—–─━_=~*]{2,}$")
# "/John" or "-John" (no space: "- milk" is a list item) as the last line.
_SLASH_SIGNOFF_RE = re.compile(r"^(?:/\s?|[-–—~])[^\W\d_][\w.'-]*(?: [^\W\d_][\w.'-]*){0,2}$")
_CLOSING_RE = re.compile(
    r"^\s*(?:"
    r"(?:best|kind|warm|warmest|many|kindest|with kind|with best)?\s*(?:regards|wishes)"
    r"|regards|best|cheers|thanks|thank you|thanks again|many thanks|thanks and regards|thx|ta|all the best"
    r"|sincerely|yours sincerely|yours truly|yours faithfully|respectfully|take care|talk soon|speak soon"
    r"|mit freundlichen grüßen|mit freundlichen grüssen|freundliche grüße|freundliche grüsse|viele grüße"
    r"|viele grüsse|beste grüße|beste grüsse|liebe grüße|liebe grüsse|herzliche grüße|schöne grüße|grüße"
    r"|gruß|lg|vg|mfg|danke|vielen dank|besten dank"
    r"|cordialement|bien cordialement|bien à vous|salutations|sincères salutations|meilleures salutations"
    r"|bonne journée|merci|merci beaucoup|amicalement|bises|à bientôt"
    r"|saludos|un saludo|saludos cordiales|atentamente|un abrazo|gracias|muchas gracias|cordialmente"
    r"|met vriendelijke groet(?:en)?|vriendelijke groet(?:en)?|groeten|groet|hartelijke groet(?:en)?"
    r"|bedankt|alvast bedankt|mvg"
    r"|cordiali saluti|distinti saluti|saluti|un saluto|grazie|grazie mille|buona giornata"
    r"|atenciosamente|cumprimentos|melhores cumprimentos|abraços|abraço|obrigado|obrigada"
    r"|med vänlig hälsning|vänliga hälsningar|mvh|med venlig hilsen|venlig hilsen|med vennlig hilsen"
    r"|pozdrawiam|z poważaniem|s pozdravem|üdvözlettel|с уважением|ystävällisin terveisin"
    r"|hilsen|hilsner|mange hilsner|bedste hilsner|venlige hilsner|kærlig hilsen|kh|vh|bh|mvh|vennlig hilsen"
    r"|beste hilsen|hälsningar|hälsning|vänlig hälsning|bästa hälsningar|ha det bra|terveisin|t\.|parhain terveisin"
    r"|pozdrowienia|serdecznie|s pozdravom|srdečně|üdv|pozdrav|lp|lep pozdrav|cu stimă|toate cele bune"
    r"|saygılarımla|iyi çalışmalar|с наилучшими пожеланиями|всего доброго|спасибо|з повагою|дякую"
    r"|με εκτίμηση|salutacions|atentament|abrazos|besos|saludos cordiales|ciao|a presto|tschüss|servus"
    r"|此致|敬礼|谢谢|よろしくお願いします|よろしくお願いいたします|감사합니다|trân trọng|salam|terima kasih"
    r")\s*[,.!:;-]*\s*$",
    re.IGNORECASE,
)
_CONTACT_RE = re.compile(
    r"(?:\+?\d[\d ()./-]{6,}\d)"  # phone numbers
    r"|(?:\b(?:tel|phone|mobile|mob|cell|fax|direct|office|handy|portable|móvil|telefone|telefono|telefoon|"
    r"téléphone|telefon|t|m|f|p|e|w)\b\.?\s*[:|])"
    r"|(?:(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+)"  # starts a run only: linear on long lines
    r"|(?:\bwww\.|https?://)"
    r"|(?:\b\d{4,5}\s+[A-ZÄÖÜ][a-zäöüß]+)"  # postcode + town
    r"|(?:\b(?:gmbh|ltd|inc|llc|s\.a\.|b\.v\.|s\.r\.l\.|ag|plc|sarl|sas|spa|corp)\b)",
    re.IGNORECASE,
)
_DISCLAIMER_RE = re.compile(
    r"confidentiality notice|disclaimer|this e-?mail (?:message )?(?:and any|is intended|may contain|contains"
    r"|is confidential|and its attachments)|this message (?:and any|is intended|may contain|contains"
    r"|is confidential)|intended (?:only |solely )?for the (?:use of the )?(?:addressee|recipient|individual|person)"
    r"|if you (?:are not the intended|have received this (?:e-?mail|message|communication) in error)"
    r"|please consider the environment before printing|think before you print"
    r"|diese (?:e-?mail|nachricht) (?:enthält|ist|kann) (?:vertrauliche|nur)|sind nicht der richtige adressat"
    r"|irrtümlich erhalten|ce (?:message|courriel|e-?mail)[^.]{0,80}(?:confidentiel|destiné)"
    r"|este (?:mensaje|correo)[^.]{0,80}(?:confidencial|destinado)"
    r"|dit (?:e-?mail)?bericht[^.]{0,80}(?:vertrouwelijk|uitsluitend)"
    r"|questo messaggio[^.]{0,80}(?:riservat|destinat|confidenzial)"
    r"|esta mensagem[^.]{0,80}(?:confidencial|destinada)|informações contidas nesta",
    re.IGNORECASE,
)
# Words one of which every footer of _MOBILE_RE contains: a few substring tests on the lower-cased text
# rule most texts out (an IGNORECASE alternation scanning the text costs ~50x more).
_FOOTER_HINTS = (
    "sent", "outlook", "gesendet", "envoy", "enviad", "verzonden", "verstuurd", "inviato", "skickat", "sendt",
    "lähetetty", "wysłan", "odeslán", "odoslan", "poslano", "trimis", "enviat", "отправлено", "надіслано",
    "изпратено", "εστάλη", "gửi", "dikirim", "gönderildi", "küldve", "发送", "发自", "傳送", "寄自", "送信", "보냄",
    "נשלח", "أرسلت", "ส่งจาก",
)


def is_mobile_footer(line: str) -> bool:
    return bool(_MOBILE_RE.match(line))


def may_have_mobile_footer(text: str) -> bool:
    """False when no line of ``text`` can be a mobile footer (a cheap pre-test)."""
    low = text.lower()
    return any(hint in low for hint in _FOOTER_HINTS)


def is_disclaimer(line: str) -> bool:
    return bool(_DISCLAIMER_RE.search(line))


_TAIL_LINES = 15  # signatures live in the last lines of the new text
_MAX_SIGNATURE_LINE = 120


@dataclass(frozen=True)
class SignatureSplit:
    body: str
    signature: str


def _nonblank_tail_start(lines: list[str], count: int) -> int:
    seen = 0
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip():
            seen += 1
            if seen >= count:
                return index
    return 0


def _looks_like_signature_block(lines: list[str]) -> bool:
    """Short lines, no sentence-like prose, and at most ~10 non-blank lines."""
    content = [line.strip() for line in lines if line.strip()]
    if not content or len(content) > 12:
        return False
    for line in content:
        if len(line) > _MAX_SIGNATURE_LINE:
            return False
    return not any(_is_prose(line) for line in content)


def _is_prose(line: str) -> bool:
    """A sentence, not a name/title/contact line: "Call me on 0171 555 0142 after 5 tomorrow."."""
    words = len(line.split())
    if line.endswith("?") and words >= 3:
        return True
    if len(line) > 60 and line.endswith((".", "!")) and words > 1:
        return True
    return words >= 6 and line.endswith((".", "!")) and not _CONTACT_RE.match(line)


def _rule_signature(after: list[str]) -> bool:
    """Below a typed rule: a few short name/title/contact lines, not a table of "Key: value" details
    (a fax or system notice under a rule is content)."""
    content = [line.strip() for line in after if line.strip()]
    if not content or len(content) > 6 or not _looks_like_signature_block(content):
        return False
    keyed = sum(1 for line in content if re.match(r"^[^\W\d_][\w ]{0,25}:\s", line))
    return keyed * 2 < len(content)


def _name_tokens(sender_name: str | None) -> list[str]:
    if not sender_name:
        return []
    name = sender_name.strip().strip("\"'")
    if "," in name:  # "Smith, Ann"
        last, _, first = name.partition(",")
        name = f"{first.strip()} {last.strip()}"
    name = re.sub(r"\(.*?\)|\[.*?\]", " ", name)
    tokens = [token for token in re.split(r"\s+", name) if len(token) >= 2 and "@" not in token]
    return tokens


def _is_name_line(line: str, tokens: list[str]) -> bool:
    stripped = line.strip().strip("-–—,.").strip()
    if not stripped or len(stripped) > 60 or not tokens:
        return False
    lower = stripped.lower()
    full = " ".join(tokens).lower()
    if lower == full or lower.startswith(full):
        return True
    words = lower.split()
    return len(words) <= 4 and words[0] in {tokens[0].lower(), tokens[-1].lower()}


def _disclaimer_start(lines: list[str]) -> int | None:
    """Start line of the first disclaimer paragraph, when it is not the whole text."""
    paragraph_start = 0
    for index, line in enumerate(lines):
        if not line.strip():
            paragraph_start = index + 1
            continue
        if _DISCLAIMER_RE.search(line):
            start = paragraph_start
            # A separator line (*****, ----) right above belongs to the disclaimer.
            return start if any(l.strip() for l in lines[:start]) else None
    return None


def split_signature(text: str, sender_name: str | None = None) -> SignatureSplit:
    """Split ``text`` (the new text, LF line ends) into body and signature."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return SignatureSplit("", "")
    starts: list[int] = []

    disclaimer = _disclaimer_start(lines)
    if disclaimer is not None:
        starts.append(disclaimer)
    limit = disclaimer if disclaimer is not None else len(lines)
    # Look for the personal signature above any disclaimer.
    region = lines[:limit]
    while region and not region[-1].strip():
        region.pop()
    region_tail = _nonblank_tail_start(region, _TAIL_LINES) if region else 0

    for index in range(len(region) - 1, region_tail - 1, -1):
        stripped = region[index].strip()
        if _DELIMITER_RE.match(region[index].rstrip()):
            starts.append(index)
            break
        # A typed rule ("——————", "________") above short name/title lines opens a signature too.
        if _RULE_DELIMITER_RE.match(stripped) and _rule_signature(region[index + 1 :]):
            starts.append(index)
            break
    # "/John", "-John": a sign-off on the last line (Scandinavian, German and English habits).
    if region and _SLASH_SIGNOFF_RE.match(region[-1].strip()) and len(region) > 1:
        previous = next((line.strip() for line in reversed(region[:-1]) if line.strip()), "")
        if previous[:1] != region[-1].strip()[:1]:  # "-Eggs\n-Milk" is a list, not a sign-off
            starts.append(len(region) - 1)
    if may_have_mobile_footer("\n".join(region[region_tail:])):
        for index in range(region_tail, len(region)):
            if _MOBILE_RE.match(region[index]):
                starts.append(index)
                break

    tokens = _name_tokens(sender_name)
    for index in range(len(region) - 1, region_tail - 1, -1):
        stripped = region[index].strip()
        if _CLOSING_RE.match(stripped) or (
            len(stripped) <= 40 and re.match(r"^\s*(?:best|kind|warm)\s+regards\b", stripped, re.IGNORECASE)
        ):
            after = region[index + 1 :]
            if any(line.strip() for line in after) and _looks_like_signature_block(after):
                first = index + 1
                while first < len(region) and not region[first].strip():
                    first += 1
                starts.append(first)
            break
    else:
        # No closing: the sender's name on a line of its own, or a contact block, at the end.
        for index in range(region_tail, len(region)):
            if index > 0 and _is_name_line(region[index], tokens) and _looks_like_signature_block(region[index:]):
                starts.append(index)
                break
        else:
            block_start = len(region)
            while block_start > 0 and region[block_start - 1].strip():
                block_start -= 1
            block = region[block_start:]
            # Cheap shape test first: contact regexes only ever run on short lines.
            if block_start > 0 and _looks_like_signature_block(block) and (
                sum(1 for line in block if _CONTACT_RE.search(line)) >= 2
            ):
                starts.append(block_start)

    # A signature can be the whole text only when it is explicitly marked ("-- ", "Sent from ...").
    starts = [
        start
        for start in starts
        if 0 < start < len(lines)
        or (start == 0 and (_MOBILE_RE.match(lines[0]) or lines[0].rstrip() == "--"))
    ]
    if not starts:
        return SignatureSplit("\n".join(lines), "")
    start = min(starts)
    # A delimiter right above the start (or a doubled "--") belongs to the signature, not the body.
    while start > 0 and (not lines[start - 1].strip() or _DELIMITER_RE.match(lines[start - 1].rstrip())):
        if not any(line.strip() for line in lines[: start - 1]) and lines[start - 1].strip():
            break  # keep a body: a delimiter as the first line stays where it is
        start -= 1
    while start < len(lines) and not lines[start].strip():
        start += 1
    body = "\n".join(lines[:start]).rstrip()
    signature_lines = lines[start:]
    # The RFC 3676 "-- " delimiter is markup, not signature content; every other line is kept, so body
    # and signature are together the new text.
    if signature_lines and signature_lines[0].strip() == "--":
        signature_lines = signature_lines[1:]
    return SignatureSplit(body, "\n".join(signature_lines).strip("\n"))


def strip_trailing_delimiter(text: str) -> str:
    """Remove a dangling ``--`` line left where an HTML signature container was cut out."""
    lines = text.rstrip().split("\n")
    while lines and (not lines[-1].strip() or _DELIMITER_RE.match(lines[-1].rstrip())):
        lines.pop()
    return "\n".join(lines)
