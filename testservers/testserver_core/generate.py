"""Realistic generated mail, deterministic from a seed, rendered lazily.

``generate_messages(n, seed, owner, peers)`` returns light ``GeneratedMessage`` records (folder,
received time, headers) in well under a second per 10,000; ``render()`` produces the RFC 822
bytes on demand, identically every time (so MimeContent still round-trips byte-identical while a
100,000-message mailbox costs only its metadata in memory).

What is in there: threads of 1-6 messages whose replies quote the history (Outlook-style
From:/Sent: blocks and "On ... wrote:" lines in several languages, ``>`` quoting), signatures with
and without the ``-- `` delimiter, text/plain, multipart/alternative and HTML-only bodies (Outlook's
Word-filtered HTML with its style block for Outlook senders), inline signature logos
(multipart/related), attachments of realistic sizes, languages en/de/fr/es/ja with charsets utf-8, iso-8859-1, windows-1252, iso-2022-jp,
CC'd copies to other generated mailboxes, and a few folders (Inbox/Suppliers, Archive, Sent Items).
"""

from __future__ import annotations

import base64
import html
import math
import quopri
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime
from functools import lru_cache

from . import mimeinfo
from .mailstore import Meta

# Message sizes follow real mailboxes rather than minimal fixtures: most mail is a few KB of text
# plus Outlook's verbose HTML, a quarter of the HTML mail carries a signature logo, and one message
# in five has an attachment whose size is log-normal (median 60 KB, long tail, capped at 4 MB).
# Mean ~50 KB, median ~10 KB per message: below the 305 real messages of 60 MB (~200 KB each) that
# the performance issue measured, so benchmarks on generated mail do not flatter a fast extractor.
ATTACHMENT_RATE = 0.2
ATTACHMENT_MEDIAN_BYTES = 60_000
ATTACHMENT_SIGMA = 1.3
ATTACHMENT_MAX_BYTES = 4_000_000
LOGO_RATE = 0.25

_LANG = {
    "en": {
        "topics": ["Invoice {n} overdue", "Purchase order {n}", "Delivery delay for order {n}", "Meeting notes {n}",
                   "Contract renewal {n}", "Question about statement {n}", "Refund request {n}", "Quarterly report {n}"],
        "sentences": ["Please find the details below.", "Could you confirm the payment date?",
                      "We have not yet received the goods.", "Thanks for the quick reply.",
                      "The invoice amount does not match the purchase order.", "Let me know if you need anything else.",
                      "I have attached the updated document.", "Can we schedule a call this week?",
                      "Our accounts team will follow up shortly.", "The shipment left our warehouse yesterday."],
        "greeting": "Hi {name},", "closing": "Best regards,", "wrote": "On {date}, {who} wrote:",
        "outlook": ("From", "Sent", "To", "Subject"), "re": "RE: ",
        "charsets": ["utf-8", "us-ascii"],
    },
    "de": {
        "topics": ["Rechnung {n} überfällig", "Bestellung {n}", "Lieferverzögerung Auftrag {n}", "Gutschrift {n}"],
        "sentences": ["Anbei die Unterlagen zur Prüfung.", "Könnten Sie den Zahlungstermin bestätigen?",
                      "Die Ware ist leider noch nicht eingetroffen.", "Vielen Dank für Ihre schnelle Rückmeldung.",
                      "Der Rechnungsbetrag weicht von der Bestellung ab.", "Für Rückfragen stehe ich gern zur Verfügung.",
                      "Bitte überweisen Sie den offenen Betrag bis Freitag."],
        "greeting": "Hallo {name},", "closing": "Mit freundlichen Grüßen", "wrote": "Am {date} schrieb {who}:",
        "outlook": ("Von", "Gesendet", "An", "Betreff"), "re": "AW: ",
        "charsets": ["iso-8859-1", "utf-8", "windows-1252"],
    },
    "fr": {
        "topics": ["Facture {n} en retard", "Commande {n}", "Retard de livraison {n}", "Avoir {n}"],
        "sentences": ["Veuillez trouver ci-joint les documents.", "Pourriez-vous confirmer la date de paiement ?",
                      "Nous n'avons pas encore reçu la marchandise.", "Merci pour votre réponse rapide.",
                      "Le montant de la facture ne correspond pas à la commande.", "Je reste à votre disposition.",
                      "Le colis a été expédié hier après-midi."],
        "greeting": "Bonjour {name},", "closing": "Cordialement,", "wrote": "Le {date}, {who} a écrit :",
        "outlook": ("De", "Envoyé", "À", "Objet"), "re": "RE : ",
        "charsets": ["iso-8859-1", "utf-8", "windows-1252"],
    },
    "es": {
        "topics": ["Factura {n} vencida", "Pedido {n}", "Retraso en la entrega {n}", "Nota de crédito {n}"],
        "sentences": ["Adjunto encontrará la documentación.", "¿Podría confirmar la fecha de pago?",
                      "Todavía no hemos recibido la mercancía.", "Gracias por su rápida respuesta.",
                      "El importe de la factura no coincide con el pedido.", "Quedo a su disposición para cualquier duda.",
                      "El envío salió de nuestro almacén ayer."],
        "greeting": "Hola {name},", "closing": "Saludos cordiales,", "wrote": "El {date}, {who} escribió:",
        "outlook": ("De", "Enviado el", "Para", "Asunto"), "re": "RE: ",
        "charsets": ["utf-8", "iso-8859-1"],
    },
    "ja": {
        "topics": ["請求書 {n} の件", "注文 {n} について", "納期遅延 {n}"],
        "sentences": ["資料を添付いたします。", "お支払日をご確認いただけますでしょうか。",
                      "商品はまだ届いておりません。", "迅速なご対応ありがとうございます。",
                      "よろしくお願いいたします。"],
        "greeting": "{name}様", "closing": "よろしくお願いいたします。", "wrote": "{date} {who}:",
        "outlook": ("From", "Sent", "To", "Subject"), "re": "RE: ",
        "charsets": ["iso-2022-jp", "utf-8"],
    },
}
_LANG_WEIGHTS = [("en", 55), ("de", 15), ("fr", 12), ("es", 12), ("ja", 6)]
_PEOPLE = [("Ann Smith", "ann.smith@acme-supplies.com"), ("Jürgen Müller", "j.mueller@mueller-logistik.de"),
           ("Élodie Martin", "elodie.martin@fournitures.fr"), ("José García", "jgarcia@suministros.es"),
           ("Tanaka Hiroshi", "tanaka@kaisha.co.jp"), ("Bob Jones", "bob@customer-corp.com"),
           ("Priya Patel", "priya.patel@globex.example"), ("Li Wei", "li.wei@partner.example"),
           ("Sarah O'Connor", "s.oconnor@oconnor-freight.ie"), ("Accounts Payable", "ap@acme-supplies.com")]
_TITLES = ["Accounts Receivable", "Customer Service", "Logistics Coordinator", "Finance Manager", "Sales"]
_FOLDERS = [("Inbox", 70), ("Inbox/Suppliers", 10), ("Archive", 8), ("Sent Items", 7), ("Inbox/Customers", 5)]


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    total = sum(w for _v, w in pairs)
    x = rng.random() * total
    for value, weight in pairs:
        x -= weight
        if x < 0:
            return value
    return pairs[-1][0]


@dataclass(slots=True)
class GeneratedMessage:
    seed: int
    index: int
    folder: str
    received: datetime
    message_id: str
    subject: str
    lang: str
    sender: tuple[str, str]
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    thread: int
    position: int  # 0 = thread start
    history: tuple[str, ...]  # message ids of earlier thread messages (References)
    copies: tuple[str, ...]  # other generated mailboxes that also hold this message (CC'd)

    def meta(self) -> Meta:
        """Header-derived properties without rendering (size is computed on demand)."""
        return Meta(
            subject=self.subject, message_id=self.message_id, sent=self.received - timedelta(seconds=37),
            sender=[mimeinfo.Address(*self.sender)], from_=[mimeinfo.Address(*self.sender)],
            to=[mimeinfo.Address(*a) for a in self.to], cc=[mimeinfo.Address(*a) for a in self.cc], bcc=[],
            in_reply_to=self.history[-1] if self.history else None,
            references=" ".join(self.history) if self.history else None,
            has_attachments=self._rng().random() < ATTACHMENT_RATE, size=None,
        )

    def _rng(self) -> random.Random:
        return random.Random(self.seed * 1_000_003 + self.index)

    def render(self) -> bytes:
        return _render(self)


def _body_text(rng: random.Random, lang: str, to_name: str, from_name: str, long: bool) -> tuple[str, str]:
    """(new text, signature)"""
    L = _LANG[lang]
    count = rng.randint(8, 30) if long else rng.randint(2, 5)
    lines = [L["greeting"].format(name=to_name.split()[0]), ""]
    para: list[str] = []
    for _ in range(count):
        para.append(rng.choice(L["sentences"]))
        if rng.random() < 0.3:
            lines.append(" ".join(para))
            lines.append("")
            para = []
    if para:
        lines.append(" ".join(para))
    style = rng.random()
    if style < 0.4:
        sig = f"-- \n{from_name}\n{rng.choice(_TITLES)}\nTel. +44 20 7946 {rng.randint(1000, 9999)}"
    elif style < 0.8:
        sig = f"{L['closing']}\n{from_name}\n{rng.choice(_TITLES)}"
    else:
        sig = f"{L['closing']}\n{from_name.split()[0]}"
    return "\n".join(lines), sig


def _quote(rng: random.Random, msg: GeneratedMessage, prev_text: str, prev_sender: tuple[str, str],
           prev_date: datetime, prev_subject: str) -> str:
    L = _LANG[msg.lang]
    if rng.random() < 0.5:
        f, s, t, subj = L["outlook"]
        head = (f"{f}: {prev_sender[0]} <{prev_sender[1]}>\n{s}: {format_datetime(prev_date)}\n"
                f"{t}: {msg.sender[0]} <{msg.sender[1]}>\n{subj}: {prev_subject}\n")
        return "\n\n-----Original Message-----\n" + head + "\n" + prev_text
    who = f"{prev_sender[0]} <{prev_sender[1]}>"
    quoted = "\n".join("> " + line if line else ">" for line in prev_text.split("\n"))
    return "\n\n" + L["wrote"].format(date=prev_date.strftime("%d.%m.%Y %H:%M"), who=who) + "\n" + quoted


def _full_text(msg: GeneratedMessage, depth: int = 0) -> str:
    """The whole plain text of a message: new text, signature, quoted history (recursively)."""
    rng = msg._rng()
    to_name = msg.to[0][0] if msg.to else "team"
    text, sig = _body_text(rng, msg.lang, to_name, msg.sender[0], long=rng.random() < 0.1)
    full = text + "\n\n" + sig
    if msg.position > 0 and depth < 6:
        prev = _previous(msg)
        full += _quote(rng, msg, _full_text(prev, depth + 1), prev.sender, prev.received, prev.subject)
    return full


def _previous(msg: GeneratedMessage) -> GeneratedMessage:
    """The thread's previous message, reconstructed deterministically from the thread seed."""
    rng = random.Random(msg.seed * 7919 + msg.thread)
    return GeneratedMessage(
        seed=msg.seed, index=-(msg.thread * 16 + msg.position), folder=msg.folder,
        received=msg.received - timedelta(hours=rng.randint(1, 48)), message_id=msg.history[-1],
        subject=msg.subject if msg.position > 1 else msg.subject.split(": ", 1)[-1],
        lang=msg.lang, sender=msg.to[0] if msg.to else msg.sender, to=[msg.sender], cc=[],
        thread=msg.thread, position=msg.position - 1, history=msg.history[:-1], copies=(),
    )


def _encode_text(text: str, charset: str, rng: random.Random) -> tuple[bytes, str]:
    data = text.encode(charset, "replace") if charset != "us-ascii" else text.encode("ascii", "replace")
    if charset in ("us-ascii", "iso-2022-jp"):
        return data.replace(b"\n", b"\r\n"), "7bit"
    if rng.random() < 0.7:
        return quopri.encodestring(data.replace(b"\n", b"\r\n")).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), "quoted-printable"
    return base64.encodebytes(data).replace(b"\n", b"\r\n"), "base64"


def _html(text: str) -> str:
    paras = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
    return f"<html><head><meta charset=\"utf-8\"></head><body style=\"font-family:Calibri\">{paras}</body></html>"


# What Outlook (Word's "filtered medium" HTML) puts around every message body.
_OUTLOOK_STYLE = """<style><!--
/* Font Definitions */
@font-face
\t{font-family:"Cambria Math";
\tpanose-1:2 4 5 3 5 4 6 3 2 4;}
@font-face
\t{font-family:Calibri;
\tpanose-1:2 15 5 2 2 2 4 3 2 4;}
@font-face
\t{font-family:Aptos;}
/* Style Definitions */
p.MsoNormal, li.MsoNormal, div.MsoNormal
\t{margin:0cm;
\tfont-size:11.0pt;
\tfont-family:"Calibri",sans-serif;
\tmso-ligatures:standardcontextual;
\tmso-fareast-language:EN-US;}
a:link, span.MsoHyperlink
\t{mso-style-priority:99;
\tcolor:#0563C1;
\ttext-decoration:underline;}
a:visited, span.MsoHyperlinkFollowed
\t{mso-style-priority:99;
\tcolor:#954F72;
\ttext-decoration:underline;}
p.msonormal0, li.msonormal0, div.msonormal0
\t{mso-style-name:msonormal;
\tmso-margin-top-alt:auto;
\tmargin-right:0cm;
\tmso-margin-bottom-alt:auto;
\tmargin-left:0cm;
\tfont-size:11.0pt;
\tfont-family:"Calibri",sans-serif;}
span.EmailStyle18
\t{mso-style-type:personal-reply;
\tfont-family:"Calibri",sans-serif;
\tcolor:windowtext;}
.MsoChpDefault
\t{mso-style-type:export-only;
\tfont-size:10.0pt;
\tmso-ligatures:none;}
@page WordSection1
\t{size:612.0pt 792.0pt;
\tmargin:72.0pt 72.0pt 72.0pt 72.0pt;}
div.WordSection1
\t{page:WordSection1;}
--></style><!--[if gte mso 9]><xml>
<o:shapedefaults v:ext="edit" spidmax="1026" />
</xml><![endif]--><!--[if gte mso 9]><xml>
<o:shapelayout v:ext="edit">
<o:idmap v:ext="edit" data="1" />
</o:shapelayout></xml><![endif]-->"""


def _outlook_html(text: str, lang: str, logo_cid: str | None) -> str:
    """Word-filtered HTML as Outlook sends it: one MsoNormal paragraph per line, spans everywhere."""
    out = []
    for line in text.split("\n"):
        if not line.strip():
            out.append("<p class=MsoNormal><o:p>&nbsp;</o:p></p>")
            continue
        esc = html.escape(line)
        out.append(f"<p class=MsoNormal><span lang={lang.upper()} style='font-size:11.0pt;mso-fareast-language:"
                   f"EN-US'>{esc}<o:p></o:p></span></p>")
    if logo_cid:
        out.append(f"<p class=MsoNormal><span style='mso-ligatures:none'><img width=180 height=48 "
                   f"style='width:1.875in;height:.5in' id=\"Picture_x0020_1\" src=\"cid:{logo_cid}\" "
                   f"alt=\"Company logo\"></span><o:p></o:p></p>")
    return ("<html xmlns:v=\"urn:schemas-microsoft-com:vml\" xmlns:o=\"urn:schemas-microsoft-com:office:office\" "
            "xmlns:w=\"urn:schemas-microsoft-com:office:word\" xmlns:m=\"http://schemas.microsoft.com/office/2004/12/"
            "omml\" xmlns=\"http://www.w3.org/TR/REC-html40\"><head><meta http-equiv=Content-Type content=\"text/html; "
            "charset=utf-8\"><meta name=Generator content=\"Microsoft Word 15 (filtered medium)\">"
            + _OUTLOOK_STYLE + f"</head><body lang={lang.upper()} link=\"#0563C1\" vlink=\"#954F72\" "
            "style='word-wrap:break-word'><div class=WordSection1>" + "\n".join(out) + "</div></body></html>")


def _attachment_size(rng: random.Random) -> int:
    size = rng.lognormvariate(math.log(ATTACHMENT_MEDIAN_BYTES), ATTACHMENT_SIGMA)
    return max(1_000, min(ATTACHMENT_MAX_BYTES, int(size)))


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


_LINE_BYTES = 57  # bytes per 76-character base64 line (what encodebytes and mail clients write)
_LINE_CHARS = 78  # with CRLF


@lru_cache(maxsize=1)
def _pool() -> tuple[bytes, bytes]:
    """Random bytes to cut binary parts from, and their base64 lines, made once per process."""
    raw = random.Random(0x5EED).randbytes(ATTACHMENT_MAX_BYTES + 1024 * _LINE_BYTES)
    return raw, _b64(raw)


def _binary_b64(rng: random.Random, size: int) -> bytes:
    """Base64 lines of ``size`` random-looking bytes: a line-aligned cut of the pool.

    Same bytes as ``_b64(raw[start:start + size])``, but a slice of the pre-encoded pool instead of
    drawing and encoding every byte per render (that was a third of the server's CPU on large mail).
    """
    raw, encoded = _pool()
    full, tail = divmod(size, _LINE_BYTES)
    start = rng.randrange(len(raw) // _LINE_BYTES - full - 1)
    body = encoded[start * _LINE_CHARS:(start + full) * _LINE_CHARS]
    if tail:
        offset = (start + full) * _LINE_BYTES
        body += _b64(raw[offset:offset + tail])
    return body


def _addr(pair: tuple[str, str], charset: str) -> str:
    name, email = pair
    try:
        name.encode("ascii")
        enc = f'"{name}"' if any(c in name for c in ",.'") else name
    except UnicodeEncodeError:
        enc = Header(name, "utf-8" if charset in ("us-ascii", "iso-2022-jp") else charset).encode()
    return f"{enc} <{email}>"


def _render(msg: GeneratedMessage) -> bytes:
    rng = msg._rng()
    has_attachment = rng.random() < ATTACHMENT_RATE  # same first draw as meta()
    L = _LANG[msg.lang]
    charset = rng.choice(L["charsets"])
    text = _full_text(msg)
    if charset == "us-ascii":
        try:
            text.encode("ascii")
        except UnicodeEncodeError:
            charset = "utf-8"
    kind = _weighted(rng, [("plain", 40), ("alternative", 48), ("html", 12)])
    boundary = f"----=_Part_{msg.seed}_{msg.index}_{rng.randint(10**6, 10**7)}"
    try:
        msg.subject.encode("ascii")
        subject = msg.subject
    except UnicodeEncodeError:
        subject = Header(msg.subject, "utf-8" if charset in ("us-ascii",) else charset).encode()
    hdr = [
        f"Received: from mx{rng.randint(1, 9)}.mail.example.net (mx.example.net [192.0.2.{rng.randint(1, 254)}])"
        f"\r\n\tby exchange.example.com with ESMTPS; {format_datetime(msg.received)}",
        f"From: {_addr(msg.sender, charset)}",
        "To: " + ", ".join(_addr(a, charset) for a in msg.to),
    ]
    if msg.cc:
        hdr.append("Cc: " + ", ".join(_addr(a, charset) for a in msg.cc))
    hdr += [f"Subject: {subject}", f"Date: {format_datetime(msg.sent_time())}", f"Message-ID: {msg.message_id}"]
    if msg.history:
        hdr.append(f"In-Reply-To: {msg.history[-1]}")
        hdr.append("References: " + "\r\n ".join(msg.history))
    hdr += ["MIME-Version: 1.0", f"Content-Language: {msg.lang}"]
    outlook = rng.random() < 0.5
    if outlook:
        hdr.append("X-Mailer: Microsoft Outlook 16.0")

    def leaf(ctype: str, content: str) -> bytes:
        data, cte = _encode_text(content, charset, rng)
        return (f"Content-Type: {ctype}; charset=\"{charset}\"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n").encode() + data

    logo_cid = None
    if kind != "plain" and rng.random() < LOGO_RATE:
        logo_cid = f"image001.png@01DA{rng.getrandbits(32):08X}.{rng.getrandbits(32):08X}"
    html_body = _outlook_html(text, msg.lang, logo_cid) if outlook or logo_cid else _html(text)
    if kind == "plain":
        body = leaf("text/plain", text)
    elif kind == "html":
        body = leaf("text/html", html_body)
    else:
        b2 = boundary + "_alt"
        body = (f"Content-Type: multipart/alternative; boundary=\"{b2}\"\r\n\r\n").encode()
        body += f"--{b2}\r\n".encode() + leaf("text/plain", text) + f"\r\n--{b2}\r\n".encode()
        body += leaf("text/html", html_body) + f"\r\n--{b2}--\r\n".encode()
    if logo_cid:
        b3 = boundary + "_rel"
        logo = (f"Content-Type: image/png; name=\"image001.png\"\r\nContent-Description: image001.png\r\n"
                f"Content-Disposition: inline; filename=\"image001.png\"\r\nContent-ID: <{logo_cid}>\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n").encode() + _binary_b64(rng, rng.randint(3_000, 14_000))
        body = (f"Content-Type: multipart/related; boundary=\"{b3}\"; type=\"text/html\"\r\n\r\n").encode() + (
            f"--{b3}\r\n".encode() + body + f"\r\n--{b3}\r\n".encode() + logo + f"\r\n--{b3}--\r\n".encode())
    if has_attachment:
        name, ctype = rng.choice([("invoice.pdf", "application/pdf"), ("statement.csv", "text/csv"),
                                  ("photo.png", "image/png"), ("Lieferschein_Nr.pdf", "application/pdf"),
                                  ("Q3 figures.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
                                  ("contract.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document")])
        att = (f"Content-Type: {ctype}; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n"
               f"Content-Transfer-Encoding: base64\r\n\r\n").encode() + _binary_b64(rng, _attachment_size(rng))
        head = "\r\n".join(hdr + [f"Content-Type: multipart/mixed; boundary=\"{boundary}\""]).encode() + b"\r\n\r\n"
        out = head + b"This is a multi-part message in MIME format.\r\n"
        for p in (body, att):
            out += f"--{boundary}\r\n".encode() + p + b"\r\n"
        return out + f"--{boundary}--\r\n".encode()
    return "\r\n".join(hdr).encode() + b"\r\n" + body


def _sent_time(self: GeneratedMessage) -> datetime:
    return self.received - timedelta(seconds=37)


GeneratedMessage.sent_time = _sent_time  # type: ignore[attr-defined]


def generate_messages(n: int, seed: int = 4711, owner: str = "user@example.com",
                      peers: tuple[str, ...] = (), start: datetime | None = None) -> list[GeneratedMessage]:
    """N messages for the mailbox ``owner``; ~10% are CC'd to one of ``peers`` (other mailboxes)."""
    rng = random.Random(f"{seed}:{owner}")
    seed_int = rng.getrandbits(48)
    start = start or datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc)
    owner_pair = (owner.split("@")[0].replace(".", " ").title(), owner)
    out: list[GeneratedMessage] = []
    t = start
    thread = 0
    thread_left = 0
    position = 0
    history: list[str] = []
    topic = ""
    lang = "en"
    domain = owner.split("@")[-1]
    for i in range(n):
        if thread_left == 0:
            thread += 1
            thread_left = rng.choice((1, 1, 1, 2, 2, 3, 4, 6))
            position = 0
            history = []
            lang = _weighted(rng, _LANG_WEIGHTS)
            topic = rng.choice(_LANG[lang]["topics"]).format(n=rng.randint(1000, 99999))
        t = t + timedelta(seconds=rng.randint(30, 600))
        person = _PEOPLE[rng.randrange(len(_PEOPLE))]
        folder = _weighted(rng, _FOLDERS)
        sent_by_owner = folder == "Sent Items"
        sender, to = (owner_pair, [person]) if sent_by_owner else (person, [owner_pair])
        cc: list[tuple[str, str]] = []
        copies: tuple[str, ...] = ()
        if peers and rng.random() < 0.1:
            peer = peers[rng.randrange(len(peers))]
            cc.append((peer.split("@")[0].title(), peer))
            copies = (peer,)
        subject = (_LANG[lang]["re"] + topic) if position else topic
        msgid = f"<{seed_int:x}.{i}.{rng.getrandbits(32):08x}@{domain if sent_by_owner else person[1].split('@')[1]}>"
        out.append(GeneratedMessage(seed_int, i, folder, t, msgid, subject, lang, sender, to, cc, thread,
                                    position, tuple(history[-5:]), copies))
        history.append(msgid)
        position += 1
        thread_left -= 1
    return out
