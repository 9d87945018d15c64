"""Split the new text of an email from the quoted history, in plain text, in many languages.

Markers of where history starts (the earliest wins):

- separator lines: ``-----Original Message-----`` and translations, Outlook's
  ``________________________________`` rule when a header block follows;
- header blocks: ``From:`` / ``Von:`` / ``De:`` / ``Van:`` / ``Da:`` ... followed within a few lines
  by ``Sent:`` / ``Date:`` / ``To:`` / ``Subject:`` (and translations), optionally ``*bold*``;
- attributions: ``On <date>, <name> wrote:`` and translations (``Am ... schrieb ...:``,
  ``Le ... a écrit :``, ``El ... escribió:``, ``Op ... schreef ...:``, ``Il ... ha scritto:``,
  ``Em ... escreveu:``, ``Den ... skrev ...:`` ...), also wrapped over up to three lines;
- forward markers: ``---------- Forwarded message ---------``, ``Begin forwarded message:`` ...;
- ``>`` quoting: a trailing block of ``>`` lines is history; ``>`` lines interleaved with new
  text (inline replies) are removed and the new lines kept.

A pure forward (no new text before a forward marker, or a forward subject with only a header
block) keeps the forwarded message, its own history cut: an empty body would tell an analyst
nothing, and the forwarded text is what the sender chose to send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATOR_WORDS = (
    r"original message|original-nachricht|ursprüngliche nachricht|urspr.ngliche nachricht|originalnachricht"
    r"|message d'origine|message original|mensaje original|mensagem original|mensagem original"
    r"|oorspronkelijk bericht|origineel bericht|messaggio originale|oprindelig meddelelse"
    r"|opprinnelig melding|ursprungligt meddelande|alkuperäinen viesti|wiadomość oryginalna"
    r"|původní zpráva|eredeti üzenet|исходное сообщение|original"
)
_ORIGINAL_RE = re.compile(rf"^\s*[-_=*]{{2,}}\s*(?:{_SEPARATOR_WORDS})\s*[-_=*]{{2,}}\s*$", re.IGNORECASE)
_FORWARD_WORDS = (
    r"forwarded message|forwarded message follows|original message follows|weitergeleitete nachricht"
    r"|nachricht weitergeleitet|message transféré|message transmis|message réexpédié|mensaje reenviado"
    r"|mensaje reenviado|mensagem encaminhada|mensagem reencaminhada|doorgestuurd bericht"
    r"|doorgestuurde bericht|messaggio inoltrato|videresendt meddelelse|videresendt melding"
    r"|vidarebefordrat meddelande|välitetty viesti|przekazana wiadomość|přeposlaná zpráva"
    r"|begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié"
    r"|début du message transféré|inicio del mensaje reenviado|comienzo del mensaje reenviado"
    r"|início da mensagem reencaminhada|início da mensagem encaminhada|inizio messaggio inoltrato"
    r"|begin doorgestuurd bericht|forwarded by .{1,80}"
)
_FORWARD_RE = re.compile(
    rf"^\s*(?:[-_=*>]{{2,}}\s*)?(?:{_FORWARD_WORDS})\s*:?\s*(?:[-_=*<]{{2,}})?\s*$", re.IGNORECASE
)
_RULE_RE = re.compile(r"^\s*_{10,}\s*$")

_FROM_KEYS = (
    r"from|von|de|van|da|fra|från|od|lähettäjä|feladó|від|от|de la|nadawca|afzender|remitente"
    r"|送信者|发件人|寄件者|보낸 사람"
)
_OTHER_KEYS = (
    r"sent|date|gesendet|datum|envoyé|envoye|enviado|enviada|fecha|verzonden|inviato|data|skickat|sendt"
    r"|lähetetty|wysłano|odesláno|elküldve|отправлено|to|an|à|a|para|aan|til|till|subject|betreff|objet"
    r"|asunto|onderwerp|oggetto|assunto|emne|ämne|cc|kopie|temat|předmět|tárgy|тема|kome|komu|destinatario"
    r"|destinatário|envoyé le|sent on|received|empfangen|件名|主题|收件人|日期|宛先"
)
_FROM_LINE_RE = re.compile(rf"^\s*[*>]?\s*\**\s*(?:{_FROM_KEYS})\s*\**\s*:\s*\**", re.IGNORECASE)
_OTHER_LINE_RE = re.compile(rf"^\s*[*>]?\s*\**\s*(?:{_OTHER_KEYS})\s*\**\s*:", re.IGNORECASE)

_WROTE = (
    r"wrote|writes|schrieb|a écrit|a ecrit|escribió|escribio|schreef|ha scritto|escreveu|escrevia"
    r"|skrev|kirjoitti|napisał|napisała|napisal|napsal|napsala|írta|написал|написала|yazdı|έγραψε"
    r"|kirjutas|rašė|rakstīja|scrise|wrote the following|heeft geschreven|hat geschrieben"
)
_ATTRIBUTION_RE = re.compile(rf"(?:^|\W)(?:{_WROTE})(?:\W[^:]{{0,160}})?\s*:\s*$", re.IGNORECASE)
_ATTRIBUTION_START_RE = re.compile(
    r"^\s*(?:on|am|le|el|op|il|em|den|w dniu|dne|dnia|på|pe|в|el día|il giorno|em \w|le \w|"
    r"\d|\w+,|\"|'|<|\w+ \w+ <)",
    re.IGNORECASE,
)
_QUOTED_LINE_RE = re.compile(r"^\s*>")
_ATTRIBUTION_MAX_CHARS = 300


@dataclass(frozen=True)
class QuoteSplit:
    new: str  # the new text
    quoted: str  # the history that was cut ("" when none)
    kind: str | None  # what was found: separator, header, attribution, forward, angle, or None


def _is_header_block(lines: list[str], index: int) -> bool:
    """A From-line followed closely by other header lines, or a block of 3 header lines."""
    line = lines[index]
    if _FROM_LINE_RE.match(line):
        others = 0
        for follower in lines[index + 1 : index + 7]:
            if not follower.strip():
                continue
            if _OTHER_LINE_RE.match(follower) or _FROM_LINE_RE.match(follower):
                others += 1
                if others >= 1:
                    return True
            else:
                # Long wrapped recipient lists continue without a key: allow one such line.
                if len(follower) > 200:
                    return False
        return False
    if _OTHER_LINE_RE.match(line):
        # Thunderbird/Apple forward blocks start with Subject:/Date: and contain a From: line.
        window = [l for l in lines[index : index + 6] if l.strip()]
        keyed = [l for l in window if _OTHER_LINE_RE.match(l) or _FROM_LINE_RE.match(l)]
        return len(keyed) >= 3 and any(_FROM_LINE_RE.match(l) for l in keyed)
    return False


def _attribution_at(lines: list[str], index: int) -> bool:
    """``On ... wrote:`` starting at ``index``, possibly wrapped over up to three lines."""
    first = lines[index].strip()
    if not first or len(first) > _ATTRIBUTION_MAX_CHARS or _QUOTED_LINE_RE.match(first):
        return False
    joined = first
    for extra in range(3):
        if extra:
            if index + extra >= len(lines) or not lines[index + extra].strip():
                return False
            joined = f"{joined} {lines[index + extra].strip()}"
            if len(joined) > _ATTRIBUTION_MAX_CHARS:
                return False
        if joined.endswith(":") and _ATTRIBUTION_RE.search(joined):
            # Short "Bob wrote:" lines and date/address-bearing ones both count; a sentence in the
            # body ending with "wrote:" rarely starts like an attribution and carries no date or address.
            return bool(
                len(joined) <= 60
                or "@" in joined
                or re.search(r"\d", joined)
                or _ATTRIBUTION_START_RE.match(joined)
            )
    return False


def _quote_start(lines: list[str]) -> tuple[int, str] | None:
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if _ORIGINAL_RE.match(stripped):
            return index, "separator"
        if _FORWARD_RE.match(stripped):
            return index, "forward"
        if _RULE_RE.match(stripped):
            following = [l for l in lines[index + 1 : index + 4] if l.strip()]
            if following and (_FROM_LINE_RE.match(following[0]) or _OTHER_LINE_RE.match(following[0])):
                return index, "header"
            continue
        if (_FROM_LINE_RE.match(line) or _OTHER_LINE_RE.match(line)) and _is_header_block(lines, index):
            return index, "header"
        if stripped.endswith(":") or (index + 1 < len(lines)):
            if _attribution_at(lines, index):
                return index, "attribution"
    return None


def _angle_quotes(lines: list[str]) -> tuple[list[str], list[str]] | None:
    """Remove ``>``-quoted lines: (kept lines, removed lines), or None when there are none."""
    quoted = [i for i, line in enumerate(lines) if _QUOTED_LINE_RE.match(line)]
    if not quoted:
        return None
    quoted_set = set(quoted)  # built once: a set per line made this quadratic (hostile-input test)
    kept = [line for i, line in enumerate(lines) if i not in quoted_set]
    removed = [lines[i] for i in quoted]
    return kept, removed


def _interleaved(tail: list[str]) -> bool:
    """After an attribution: are there new (unquoted) lines after the first quoted line?"""
    first_quoted = next((i for i, line in enumerate(tail) if _QUOTED_LINE_RE.match(line)), None)
    if first_quoted is None:
        return False
    rest = tail[first_quoted:]
    if _quote_start([line for line in rest if not _QUOTED_LINE_RE.match(line)]) is not None:
        return False  # a further attribution/header below: a normal quoted thread
    return any(line.strip() and not _QUOTED_LINE_RE.match(line) for line in rest)


def split_quote(text: str) -> QuoteSplit:
    """Split ``text`` (LF line ends) into new text and quoted history."""
    lines = text.split("\n")
    found = _quote_start(lines)
    if found is not None and found[1] == "attribution" and _interleaved(lines[found[0] + 1 :]):
        # Inline (or bottom-posted) reply: the new text sits between the quoted lines.
        kept = lines[: found[0]] + [line for line in lines[found[0] + 1 :] if not _QUOTED_LINE_RE.match(line)]
        removed = [lines[found[0]]] + [line for line in lines[found[0] + 1 :] if _QUOTED_LINE_RE.match(line)]
        return QuoteSplit("\n".join(kept), "\n".join(removed), "inline")
    if found is not None:
        index, kind = found
        head, tail = lines[:index], lines[index:]
        angle = _angle_quotes(head)
        if angle is not None:
            head = angle[0]
        return QuoteSplit("\n".join(head), "\n".join(tail), kind)
    angle = _angle_quotes(lines)
    if angle is not None:
        return QuoteSplit("\n".join(angle[0]), "\n".join(angle[1]), "angle")
    return QuoteSplit(text, "", None)


_KEYED_LINE_RE = re.compile(r"^\s*\**\s*[\w\u00c0-\uffff][\w\u00c0-\uffff .'-]{0,30}\s*\**\s*:\s*\S?")


def forwarded_content(quoted: str) -> str:
    """The forwarded message of a pure forward: its marker and header block, then its own new text."""
    lines = quoted.split("\n")
    index = 0
    # The marker / separator line itself.
    if lines and (
        _FORWARD_RE.match(lines[0].strip()) or _ORIGINAL_RE.match(lines[0].strip()) or _RULE_RE.match(lines[0])
    ):
        index = 1
    # The forwarded header block (key: value lines, wrapped continuations, blank lines).
    while index < len(lines):
        line = lines[index]
        if not line.strip() or _FROM_LINE_RE.match(line) or _OTHER_LINE_RE.match(line):
            index += 1
            continue
        if _KEYED_LINE_RE.match(line) and index < 12:
            index += 1
            continue
        break
    header, rest = lines[:index], lines[index:]
    inner = split_quote("\n".join(rest))
    return "\n".join(header + [inner.new]).strip("\n")
