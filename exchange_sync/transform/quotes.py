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

from .signature import is_disclaimer, is_mobile_footer, may_have_mobile_footer

_SEPARATOR_WORDS = (
    r"original message|original-nachricht|ursprüngliche nachricht|urspr.ngliche nachricht|originalnachricht"
    r"|message d'origine|message original|mensaje original|mensagem original|mensagem original"
    r"|oorspronkelijk bericht|origineel bericht|messaggio originale|oprindelig meddelelse"
    r"|opprinnelig melding|ursprungligt meddelande|alkuperäinen viesti|wiadomość oryginalna"
    r"|původní zpráva|eredeti üzenet|исходное сообщение|original"
    r"|oprindelig besked|opprinnelig e-?post|ursprungligt mejl|alkuperäinen sähköposti|oryginalna wiadomość"
    r"|pôvodná správa|izvorna poruka|originalna poruka|izvirno sporočilo|mesaj original|mesajul original"
    r"|orijinal mesaj|özgün ileti|αρχικό μήνυμα|оригинальное сообщение|исходное письмо|вихідне повідомлення"
    r"|оригінальне повідомлення|оригинално съобщение|originali žinutė|oriģinālā ziņa|algne kiri|tin nhắn gốc"
    r"|missatge original|mensaxe orixinal|jatorrizko mezua|原始邮件|原始郵件|原邮件|元のメッセージ|원본 메시지"
    r"|ההודעה המקורית|الرسالة الأصلية|ข้อความต้นฉบับ|pesan asli|mensaje original|reply message|original email"
    r"|antwort nachricht|réponse message|message de réponse|mensaje de respuesta|antwoord bericht"
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
    r"|videresendt besked|vidarebefordrat mejl|edelleenlähetetty viesti|przesłana wiadomość|továbbított üzenet"
    r"|proslijeđena poruka|posredovano sporočilo|preposlaná správa|mesaj redirecționat|mesaj transmis"
    r"|iletilen mesaj|yönlendirilen ileti|προωθημένο μήνυμα|пересылаемое сообщение|пересланное сообщение"
    r"|переслане повідомлення|препратено съобщение|persiųstas laiškas|pārsūtīta ziņa|edastatud kiri"
    r"|tin nhắn đã chuyển tiếp|missatge reenviat|mensaxe reenviada|转发的邮件|轉寄的郵件|転送されたメッセージ"
    r"|전달된 메시지|הודעה שהועברה|رسالة محولة|pesan yang diteruskan"
)
_FORWARD_RE = re.compile(
    rf"^\s*(?:[-_=*>]{{2,}}\s*)?(?:{_FORWARD_WORDS})\s*:?\s*(?:[-_=*<]{{2,}})?\s*$", re.IGNORECASE
)
_RULE_RE = re.compile(r"^\s*_{10,}\s*$")

_FROM_KEYS = (
    r"from|von|de|van|da|fra|från|od|lähettäjä|feladó|від|от|de la|nadawca|afzender|remitente"
    r"|送信者|发件人|寄件者|보낸 사람|差出人|kimden|từ|מאת|من|από|de la|šalje|dari|จาก|nuo|от|saatja|pošiljatelj"
    r"|odesílatel|feladó|lähettäjä"
)
_OTHER_KEYS = (
    r"sent|date|gesendet|datum|envoyé|envoye|enviado|enviada|fecha|verzonden|inviato|data|skickat|sendt"
    r"|lähetetty|wysłano|odesláno|elküldve|отправлено|to|an|à|a|para|aan|til|till|subject|betreff|objet"
    r"|asunto|onderwerp|oggetto|assunto|emne|ämne|cc|kopie|temat|předmět|tárgy|тема|kome|komu|destinatario"
    r"|destinatário|envoyé le|sent on|received|empfangen|件名|主题|收件人|日期|宛先"
    r"|送信日時|送信日|日付|発送日時|发送时间|發送時間|寄件日期|收件者|主旨|抄送|副本|보낸 날짜|받는 사람|제목|참조|날짜"
    r"|gönderildi|gönderilme tarihi|kime|konu|tarih|bilgi|đã gửi|ngày gửi|đến|chủ đề|gửi"
    r"|נשלח|אל|נושא|תאריך|تاريخ الإرسال|إلى|الموضوع|التاريخ|στάλθηκε|προς|θέμα|ημερομηνία"
    r"|trimis|către|subiect|poslano|prima|predmet|dikirim|kepada|perihal|tanggal|ส่ง|ถึง|เรื่อง|วันที่"
    r"|enviat|per a|assumpte|išsiųsta|kam|odoslané|изпратено|до|относно|дата|копия|надіслано|відправлено"
    r"|saadetud|adressaat|teema|nosūtīts|tēma|zadeva|poslato|aihe|vastaanottaja|kopio|címzett|elküldve|dátum"
    r"|odesláno|kopie|wysłano|do|dw|temat|data wysłania"
)
_INLINE_KEY_RE = re.compile(
    r"\S\s+\**(?:date|sent|subject|to|cc|datum|gesendet|betreff|an|envoyé|objet|à|enviado|asunto|para|verzonden"
    r"|onderwerp|aan|inviato|oggetto|data|skickat|sendt|ämne|emne|til|till)\**\s?:\s+\S.*\d",
    re.IGNORECASE,
)
_FROM_LINE_RE = re.compile(rf"^\s*[*>]?\s*\**\s*(?:{_FROM_KEYS})\s*\**\s*:\s*\**", re.IGNORECASE)
_OTHER_LINE_RE = re.compile(rf"^\s*[*>]?\s*\**\s*(?:{_OTHER_KEYS})\s*\**\s*:", re.IGNORECASE)

_WROTE = (
    r"wrote|writes|schrieb|a écrit|a ecrit|escribió|escribio|schreef|ha scritto|escreveu|escrevia"
    r"|skrev|kirjoitti|napisał|napisała|napisał\(a\)|napisal|napsal|napsala|napsal\(a\)|napísal|napísala|írta"
    r"|написал|написала|написал\(а\)|написав|написала|написа|пише|пишет|yazdı|έγραψε|kirjutas|rašė|rakstīja"
    r"|scrise|a scris|wrote the following|heeft geschreven|geschreven|hat geschrieben|pisze|pisał|ha escrit"
    r"|va escriure|escribiu|escrigué|đã viết|viết|menulis|je napisao|je napisala|napisao|je napisal|kirjoitti"
    r"|skrev følgende|skrev fölande|skrev följande|כתב|כתבה|كتب|เขียน|نوشت|idatzi zuen"
    r"|schrieben|geschrieben|nous a dit|ha escrito|escreveu o seguinte|kirjoitti seuraavaa"
)
# Verbs of scripts without word spaces: no word boundary before them ("下午2:23写道：").
_WROTE_CJK = r"写道|寫道|のメッセージ|は書きました|が書きました|님이 작성|작성"
_COLON_END_RE = re.compile(r"[:：]\s*$")
_ATTRIBUTION_RE = re.compile(
    # After the verb: the name/address/date of "schrieb Ann am Fr., 28. Apr. 2017 um 11:53 Uhr:" (time colons allowed).
    rf"(?:(?:^|\W)(?:{_WROTE})(?:\W(?:[^:：]|(?<=\d):(?=\d)){{0,160}})?|(?:{_WROTE_CJK})[^:：]{{0,40}})\s*[:：]\s*$",
    re.IGNORECASE
)
# "On <date>, <name> <address> wrote" without its colon, and Android/Zoho's "---- <name> wrote ----".
_WROTE_END_RE = re.compile(rf"(?:^|\W)(?:{_WROTE})\s*[:：]?\s*$|(?:{_WROTE_CJK})\s*[:：]?\s*$", re.IGNORECASE)
_DASHES_RE = re.compile(r"^\s*[-=_~*]{2,}\s*(.*?)\s*[-=_~*]{2,}\s*$")
# Gmail's verbless form in many languages: "<date> <name> <address>:" ("2014-03-20 8:48 GMT+01:00 Ann
# <ann@x>:", "ср, 30 апр. 2025 г. в 15:19, Ann <ann@x>:", "2016年11月8日(火) 14:26 Ann <ann@x>:").
_ADDRESS_COLON_END_RE = re.compile(
    r"(?:<[^<>\s]+@[^<>\s]+>|\[mailto:[^\]\s]+\]|\([^()\s]+@[^()\s]+\))"  # bracketed: prose has bare ones
    r"[\"'»)\]]?\s*[:：]\s*$"
)
_ADDRESS_END_RE = re.compile(r"@[^\s<>@]+>?\s*$")
_DATE_FIRST_ADDRESS_LAST_RE = re.compile(
    r"^\W{0,3}(?:19|20)\d\d[-/.]\d{1,2}[-/.]\d{1,2}\b.{0,100}<[^<>@\s]+@[^<>\s]+\.[^<>\s]+>\s*$"
)
_DATE_TIME_RE = re.compile(r"\d{1,2}\s?[:.h]\s?\d{2}|(?<!\d)(?:19|20)\d{2}(?!\d)|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")
# Where an attribution starts: a preposition of its date ("On", "Am", "Le", "Den", "W dniu", "Vào" ...).
_KEYWORD_START_RE = re.compile(
    r"^\W{0,4}(?:on|am|le|el|op|il|em|den|dne|dňa|dnia|w dniu|på|pe|в|у|vào|lúc|ngày|el día|il giorno|"
    r"le \w+|em \w+|στις|בתאריך|في|pada|在|于|於)(?:\s|$|\d)",
    re.IGNORECASE,
)
_WEEKDAY = (
    r"mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
    r"|mo|di|mi|do|fr|sa|so|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag"
    r"|lun|mar|mer|jeu|ven|sam|dim|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche"
    r"|mié|jue|vie|sáb|dom|lunes|martes|miércoles|jueves|viernes|sábado|domingo"
    r"|seg|ter|qua|qui|sex|segunda|terça|quarta|quinta|sexta|gio|lunedì|martedì|mercoledì|giovedì|venerdì"
    r"|ma|wo|vr|za|zo|maandag|dinsdag|woensdag|donderdag|vrijdag|zaterdag|zondag"
    r"|пн|вт|ср|чт|пт|сб|вс|нд|pon|wt|śr|czw|pt|sob|niedz|po|út|st|čt|pá|ne|man|tir|ons|tor|fre|lør|søn|tis|fre|lör|sön"
)
# Weaker starts, taken only when no line of the window starts with a keyword: a date or time, a weekday,
# a quoted name, an address, "Name <address>".
_PLAIN_START_RE = re.compile(
    rf"^\W{{0,4}}(?:\d|(?:{_WEEKDAY})(?:\.?,|\.?,?\s+\d)|\"|'|«|<|[^\W\d_][\w.'-]*(?: [^\W\d_][\w.'-]*){{0,3}} [<(\[][^<>()\[\]\s]+@)",
    re.IGNORECASE,
)
# A link alone on a line ("(http://example.com/c/Yz) >"): a quoted line broken by the client at its link.
_LINK_LINE_RE = re.compile(r"^[(<\[]?\s*(?:https?://|www\.)\S*\s*[)>\]]?\s*>?\s*$", re.IGNORECASE)
# A line that can only be a fragment of an attribution: an address alone, or a short "... wrote:" tail.
_ATTRIBUTION_PIECE_RE = re.compile(
    r"^\s*(?:[\"'(<\[]?[\w.+-]+@[\w-]+(?:\.[\w-]+)+[>)\]\"']*\s*[:：]?|\S.{0,40}[:：])\s*$"
)
_SENTENCE_END_RE = re.compile(r"[.!?。！？]\s*$")
_QUOTED_LINE_RE = re.compile(r"^\s*>")
# ">>> Read the full story <<<" is content, not quoting.
_ARROW_LINE_RE = re.compile(r"^\s*(>+)\s+\S.*\s(<+)\s*$")
_ATTRIBUTION_MAX_CHARS = 300
_MAX_ATTRIBUTION_LINES = 4  # clients wrap long names and addresses over up to four lines


@dataclass(frozen=True)
class QuoteSplit:
    new: str  # the new text
    quoted: str  # the history that was cut ("" when none)
    kind: str | None  # what was found: separator, header, attribution, forward, angle, or None


def _is_header_block(lines: list[str], index: int) -> bool:
    """A From-line followed closely by other header lines, or a block of 3 header lines."""
    line = lines[index]
    if _FROM_LINE_RE.match(line):
        if _INLINE_KEY_RE.search(line):
            return True  # a header block flattened onto one line ("From: bob@x Date: Thu, 24 Mar 2016 ...")
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


def is_quoted_line(line: str) -> bool:
    """A ``>``-quoted line; ``>>> content <<<`` (arrows around content) is not quoting."""
    stripped = line.lstrip()
    if not stripped.startswith(">"):
        return False
    if stripped[1:].strip() in (":", "："):
        return False  # the tail of a wrapped address ("... <ann@example.com\n>:")
    if not stripped.endswith("<") and not stripped.rstrip().endswith("<"):
        return True
    arrows = _ARROW_LINE_RE.match(line)
    return not (arrows and (len(arrows.group(2)) >= 2 or len(arrows.group(2)) == len(arrows.group(1))))


def _next_nonblank(lines: list[str], index: int) -> int | None:
    for follower in range(index, min(len(lines), index + 40)):
        if lines[follower].strip():
            return follower
    return None


def _solid(joined: str) -> bool:
    """An attribution that carries an address or a date/time: prose rarely does both things."""
    return "@" in joined or bool(_DATE_TIME_RE.search(joined))


def _is_attribution_text(joined: str, quoted_next: bool, *, keyword: bool) -> bool:
    """Does ``joined`` (one attribution, its lines joined) read as one?

    A verb attribution ("... wrote:") with an address or date, or any verb attribution directly above
    ``>`` quoting ("Ann wrote:"); a verbless "<date> <name> <address>:" (Gmail in many languages); a
    colon-less "On <date>, <name> <address> wrote" starting with its date preposition.
    """
    if len(joined) > _ATTRIBUTION_MAX_CHARS:
        return False
    if _COLON_END_RE.search(joined):
        if _ATTRIBUTION_RE.search(joined):
            # Prose ending in "... I wrote one of my own:" carries neither address nor date, and is not
            # followed by quoting.
            return _solid(joined) or (keyword and any(c.isdigit() for c in joined)) or quoted_next
        if _ADDRESS_COLON_END_RE.search(joined) and _DATE_TIME_RE.search(joined):
            return True
        return False
    if _DATE_FIRST_ADDRESS_LAST_RE.match(joined):
        return True  # Gmail's old "2013/10/2 Ann <ann@example.com>" (no verb, no colon)
    return keyword and "@" in joined and bool(_WROTE_END_RE.search(joined)) and bool(_DATE_TIME_RE.search(joined))


def _dashed_attribution(line: str) -> bool:
    """``---- On <date> <name> wrote ----`` / ``------Ann wrote-----`` (Android, Zoho)."""
    dashed = _DASHES_RE.match(line)
    return bool(dashed and dashed.group(1) and len(dashed.group(1)) <= _ATTRIBUTION_MAX_CHARS
                and _WROTE_END_RE.search(dashed.group(1)))


def _attribution_ending(lines: list[str], end: int, *, quoted_next: bool = False) -> int | None:
    """Start line of an attribution whose last line is ``end``, or None.

    An attribution may be wrapped over up to three lines; the reply text may touch its first line with
    no blank line between ("Thanks!\nOn Tue, ... wrote:"). The start is the latest line of the window
    that begins like an attribution (a date preposition first, then a date, weekday, quoted name or
    address); lines that end a sentence are never part of one.
    """
    last = lines[end].strip()
    if not last or len(last) > _ATTRIBUTION_MAX_CHARS or is_quoted_line(last):
        return None
    colon = last[-1] in ":："
    if not colon:
        # Cheap tests first: this runs on every line of every message.
        if last[0] in "-=_~*":
            return end if _dashed_attribution(last) else None
        if "@" not in last or not (
            (_KEYWORD_START_RE.match(last) and _WROTE_END_RE.search(last[-40:])) or _DATE_FIRST_ADDRESS_LAST_RE.match(last)
        ):
            return None
    if not quoted_next:
        after = _next_nonblank(lines, end + 1)
        quoted_next = after is not None and is_quoted_line(lines[after])
    candidates: list[tuple[int, str, bool]] = []  # (start, joined, keyword start)
    joined = last
    for start in range(end, max(-1, end - _MAX_ATTRIBUTION_LINES), -1):
        if start < end:
            line = lines[start].strip()
            if not line or is_quoted_line(line) or _SENTENCE_END_RE.search(line) or _COLON_END_RE.search(line):
                break
            joined = f"{line} {joined}"
            if len(joined) > _ATTRIBUTION_MAX_CHARS:
                break
        if not colon and start < end:
            break  # a colon-less attribution is one line
        first = lines[start].strip()
        candidates.append((start, joined, bool(_KEYWORD_START_RE.match(first))))
    for start, text, keyword in candidates:  # latest keyword start first
        if keyword and _is_attribution_text(text, quoted_next, keyword=True):
            return start
    for start, text, keyword in candidates:
        if _PLAIN_START_RE.match(lines[start].strip()) and _is_attribution_text(text, quoted_next, keyword=False):
            return start
    # A one-line attribution that starts like nothing known ("Ann wrote:" above quoting).
    if colon and _is_attribution_text(last, quoted_next, keyword=False) and (
        len(last) <= 60 or _solid(last)
    ):
        return end
    return None


_SEPARATOR_LINE_RE = re.compile(
    r"^\s*[-=_*~#—–─━]{3,}(?:\s*[^-=_*~#—–─━\s].{0,60}?\s*[-=_*~#—–─━]{3,})?\s*$"
)
_HEADER_LEAD_RE = re.compile(r"^\s*\**\s*[^\W\d_][\w .'-]{0,30}\s*\**\s*:\s*\S")


def _extend_up(lines: list[str], index: int, *, keyed: bool) -> int:
    """Widen a cut upwards: keyed lines glued to a header block ("Message du : 12/12/2016 13:20" above
    "De : ..."), then a separator line above (a rule, ``==========``, ``-------- Oprindelig besked ----``)."""
    start = index
    if keyed:
        while (start > 0 and index - start < 2 and _HEADER_LEAD_RE.match(lines[start - 1])
               and (any(c.isdigit() for c in lines[start - 1]) or "@" in lines[start - 1])
               and len(lines[start - 1]) <= 120):
            start -= 1
    above = start - 1
    while above >= 0 and start - above <= 3 and not lines[above].strip():
        above -= 1
    if above >= 0 and start - above <= 3 and _SEPARATOR_LINE_RE.match(lines[above]):
        return above
    return start


def _marker(lines: list[str], index: int) -> tuple[int, int, str] | None:
    """The history marker that ends (or is) line ``index``: (first line, last line, kind), or None."""
    line = lines[index]
    stripped = line.strip()
    if not stripped or is_quoted_line(stripped):
        return None
    # Cheap tests first (this runs on every line): separators and forward markers are short lines,
    # header lines have their colon within the first few words.
    if len(stripped) <= 160:
        if _ORIGINAL_RE.match(stripped):
            return index, index, "separator"
        if _FORWARD_RE.match(stripped):
            return index, index, "forward"
        if _RULE_RE.match(stripped):
            following = [l for l in lines[index + 1 : index + 4] if l.strip()]
            if following and (_FROM_LINE_RE.match(following[0]) or _OTHER_LINE_RE.match(following[0])):
                return index, index, "header"
            return None
    colon = line.find(":")
    if colon < 0:
        colon = line.find("：")
    if 0 <= colon <= 48 and (_FROM_LINE_RE.match(line) or _OTHER_LINE_RE.match(line)) and _is_header_block(
        lines, index
    ):
        return _extend_up(lines, index, keyed=True), index, "header"
    start = _attribution_ending(lines, index)
    if start is not None:
        return _extend_up(lines, start, keyed=False), index, "attribution"
    return None


def _unmarked_after_footer(lines: list[str], index: int) -> int | None:
    """``Sent from my iPhone`` followed by the original message with no marker: where that message starts."""
    after = _next_nonblank(lines, index + 1)
    if after is None or is_quoted_line(lines[after]):
        return None
    for line_index in range(after, min(len(lines), after + _MAX_ATTRIBUTION_LINES)):
        found = _marker(lines, line_index)
        if found is not None and found[0] <= after:
            return None  # a (wrapped) marker right below the footer: an ordinary cut
    # A personal signature under the footer is short lines; an original message has sentences.
    rest = [line.strip() for line in lines[after:] if line.strip() and not _SEPARATOR_LINE_RE.match(line)]
    if len(rest) < 2 or any(is_disclaimer(line) or is_mobile_footer(line) for line in rest[:3]):
        return None  # a one-line tail is a carrier's footer in a second language, not a message
    prose = [line for line in rest if len(line) > 60 or (len(line.split()) >= 5 and _SENTENCE_END_RE.search(line))]
    return after if prose else None


def _quote_start(lines: list[str]) -> tuple[int, int, str] | None:
    found = None
    for index, line in enumerate(lines):
        if line.strip():
            found = _marker(lines, index)
            if found is not None:
                break
    # "Sent from my iPhone" above the original message with no marker at all (only the new text is
    # searched: the footer must come before any marker).
    limit = found[0] if found is not None else len(lines)
    for index in range(limit if may_have_mobile_footer("\n".join(lines[:limit])) else 0):
        if len(lines[index]) <= 120 and is_mobile_footer(lines[index]):
            unmarked = _unmarked_after_footer(lines, index)
            if unmarked is not None:
                return unmarked, unmarked - 1, "unmarked"
    return found


def first_marker_line(text: str) -> int | None:
    """Index of the first line that is, on its own, a history marker or ``>`` quoting (for the safety net)."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        if is_quoted_line(line):
            return index
        if _marker(lines, index) is not None:
            return index  # the line the marker was recognised on, not the lines a wrapped one spans
    return None


def _quoted_flags(lines: list[str]) -> list[bool]:
    """Which lines are quoted: ``>`` lines, and a client's lazy wrap of a long quoted line (an unquoted
    line glued between two quoted lines that continues the first: lower case, or the quoted line broke
    off mid-sentence)."""
    flags = [is_quoted_line(line) for line in lines]
    for index in range(1, len(lines) - 1):
        if flags[index] or not flags[index - 1] or not flags[index + 1]:
            continue
        line = lines[index].strip()
        previous = lines[index - 1].lstrip(" >").rstrip()
        if not line:
            continue
        if _LINK_LINE_RE.match(line) or (previous and (
                line[0].islower() or (len(previous) >= 60 and not re.search(r"[.!?:;]$", previous))
                or previous.count("(") > previous.count(")"))):
            flags[index] = True
    # A ">" that closes a link broken over two lines ("See <http://example.com\n> for more") is not quoting.
    for index in range(1, len(lines)):
        if flags[index] and not flags[index - 1] and lines[index - 1].count("<") > lines[index - 1].count(">"):
            flags[index] = False
    return flags


def _angle_quotes(lines: list[str]) -> tuple[list[str], list[str]] | None:
    """Remove ``>``-quoted lines: (kept lines, removed lines), or None when there are none.

    An attribution line directly above the first quoted block goes with it, whatever its language, when
    it ends with a colon and carries an address and a date or time.
    """
    flags = _quoted_flags(lines)
    if not any(flags):
        return None
    first = flags.index(True)
    above = first - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above >= 0 and (_COLON_END_RE.search(lines[above]) or _ADDRESS_END_RE.search(lines[above])):
        start = _attribution_ending(lines, above) if _COLON_END_RE.search(lines[above]) else None
        if start is None:
            joined = lines[above].strip()
            start = above if "@" in joined and _DATE_TIME_RE.search(joined) and len(joined) <= 300 else None
        if start is not None:
            for index in range(start, first):
                flags[index] = True
    kept = [line for line, flag in zip(lines, flags) if not flag]
    removed = [line for line, flag in zip(lines, flags) if flag]
    return kept, removed


def _interleaved(tail: list[str]) -> bool:
    """After an attribution: are there new (unquoted) lines after the first quoted line?"""
    flags = _quoted_flags(tail)
    first_quoted = next((i for i, flag in enumerate(flags) if flag), None)
    if first_quoted is None:
        return False
    rest = [line for line, flag in zip(tail[first_quoted:], flags[first_quoted:]) if not flag]
    if _quote_start(rest) is not None:
        return False  # a further attribution/header below: a normal quoted thread
    return any(line.strip() for line in rest)


# An attribution glued to the end of a reply line ("reply On Wed, Apr 4, 2012 at 3:59 PM, bob@x wrote:",
# "bla--- On ... wrote:"): where it starts (a capitalised date preposition after text on the same line).
_GLUED_START_RE = re.compile(
    r"(?:(?<=\S)[ \t]+|(?<=[^\s-])(?=-{2,}))(?=(?:-{2,}[ \t]*)?(?:On|Am|Le|El|Op|Il|Em|Den|På|W dniu|Vào|Dne|Dnia)\s)"
)


def _unglue(lines: list[str]) -> list[str]:
    """Put an attribution glued to reply text on a line of its own (only where it then reads as one)."""
    out: list[str] | None = None
    for end, line in enumerate(lines):
        last = line.rstrip()
        if not last or not (last[-1] in ":：" or last[-1].isalpha()) or is_quoted_line(last):
            continue
        if last[-1] not in ":：" and ("@" not in last or not _WROTE_END_RE.search(last[-40:])):
            continue  # a colon-less attribution is one line with an address
        for first in range(end, max(-1, end - _MAX_ATTRIBUTION_LINES), -1):
            candidate = lines[first]
            if first < end and (not candidate.strip() or is_quoted_line(candidate)):
                break
            glued = _GLUED_START_RE.search(candidate)
            if glued is None or not re.search(r"\w", candidate[: glued.start()]):
                continue  # nothing but punctuation before it ("- On ... wrote:"): not glued to text
            trial = lines[:first] + [candidate[: glued.start()], candidate[glued.end():].lstrip()] + lines[first + 1 :]
            start = _attribution_ending(trial, end + 1)
            if start == first + 1:
                out = trial
                break
        if out is not None:
            return out
    return lines


def split_quote(text: str) -> QuoteSplit:
    """Split ``text`` (LF line ends) into new text and quoted history."""
    lines = _unglue(text.split("\n"))
    found = _quote_start(lines)
    if found is not None and found[2] == "attribution" and _interleaved(lines[found[1] + 1 :]):
        # Inline (or bottom-posted) reply: the new text sits between the quoted lines.
        start, end = found[0], found[1]
        tail = lines[end + 1 :]
        flags = _quoted_flags(tail)
        kept = lines[:start] + [line for line, flag in zip(tail, flags) if not flag]
        removed = lines[start : end + 1] + [line for line, flag in zip(tail, flags) if flag]
        return QuoteSplit("\n".join(kept), "\n".join(removed), "inline")
    if found is not None:
        index, _, kind = found
        # Pieces of a wrapped attribution glued above the cut ("<ann@example.com>", "ha scritto:") go too,
        # so that a cut reported in string:Quoted History leaves no part of its marker behind.
        while (kind == "attribution" and index > 0 and not _KEYWORD_START_RE.match(lines[index].strip())
               and _ATTRIBUTION_PIECE_RE.match(lines[index - 1])
               and (_ATTRIBUTION_RE.search(lines[index - 1]) or "@" in lines[index - 1])):
            index -= 1
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
