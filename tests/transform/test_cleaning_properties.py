"""Properties of cleaning (issue 15): author text never becomes an empty body; body + signature are
the new text; quoting markers only ever remove what they claim."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_sync.transform import email_to_comment
from exchange_sync.transform.quotes import first_marker_line, is_quoted_line
from exchange_sync.transform.signature import split_signature
from exchange_sync.transform.text import normalise_body

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Lines of the kinds that mail is made of, so that examples hit the rules (not only random text).
PROSE = st.sampled_from([
    "Thanks, that works for me.", "Can you send the invoice again?", "I wrote one of my own:", "Hi Tom,",
    "See you on Friday.", "Call me on +44 20 7946 0321 before noon.", "Ok", "Regards,", "Best regards",
    "Hilsen", "Kh", "Anna Berg", "Head of Operations", "www.example.com", "Mit freundlichen Grüßen",
    "The supplier shall deliver within 14 days.", ">>> >>> http://status.example/ <<<", "ᐧ", "—", "__",
])
MARKERS = st.sampled_from([
    "On Thu, Feb 13, 2020 at 6:40 PM Paul Durand <paul@durand.example> wrote:",
    "Am 13.02.2020 um 18:40 schrieb Jonas Weber <jonas@weber.example>:",
    "2020-02-13 18:40 GMT+01:00 Paul Durand <paul@durand.example>:",
    "-----Original Message-----", "-------- Oprindelig besked --------", "From: Paul Durand <paul@durand.example>",
    "Sent: Thursday, February 13, 2020 6:40 PM", "Subject: Order", "---- Paul Durand wrote ----",
    "> Could you confirm the delivery date?", ">", "> > older", "Sent from my iPhone", "--", "-- ",
    "Paul wrote:", "________________________________", "Begin forwarded message:",
])
LINE = st.one_of(PROSE, MARKERS, st.just(""), st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))


def _mail(text: str) -> bytes:
    head = ("From: Dana Field <dana@field.example>\r\nTo: support@shop.example\r\nSubject: Re: Order\r\n"
            "Message-ID: <p@x.example>\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n")
    return (head + text.replace("\r", "").replace("\n", "\r\n")).encode("utf-8", "surrogatepass")


@_SETTINGS
@given(st.lists(LINE, min_size=1, max_size=14))
def test_author_text_never_becomes_an_empty_body(lines):
    text = normalise_body("\n".join(line.replace("\r", " ").replace("\x85", " ") for line in lines))
    if not text:
        return
    first = text.split("\n", 1)[0]
    comment = email_to_comment(_mail(text))
    body = comment.messages[0].body.text
    if not is_quoted_line(first) and first_marker_line(text) != 0:
        assert body.strip(), (text, comment.user_properties)
    if comment.user_properties.get("string:Cleaning") == "fallback":
        assert body.strip()


def _w(text: str) -> str:
    return re.sub(r"\s+", "", text)


@_SETTINGS
@given(st.lists(st.one_of(PROSE, MARKERS.filter(lambda m: not m.startswith(">")), st.just("")), min_size=1,
                max_size=14))
def test_body_and_signature_are_a_lossless_split(lines):
    text = "\n".join(lines)
    split = split_signature(text, "Anna Berg")
    signature = split.signature
    # Only the RFC 3676 delimiter "-- " (markup) may be dropped, and only where the signature starts.
    dropped = re.sub(r"\s", "", text)
    kept = _w(split.body) + _w(signature)
    assert kept == dropped or _w(split.body) + "--" + _w(signature) == dropped, (text, split)


FOOTERS = [
    "Sent from my iPhone", "Get Outlook for iOS<https://aka.ms/o0ukef>", "Von meinem iPhone gesendet",
    "Envoyé de mon iPhone", "Enviado desde mi iPhone", "Verzonden vanaf mijn iPhone", "Inviato da iPhone",
    "Skickat från min iPhone", "Sendt fra min iPhone", "Lähetetty iPhonesta", "Wysłane z iPhone'a",
    "Odesláno z iPhonu", "Trimis de pe iPhone-ul meu", "Enviat des del meu iPhone", "Отправлено с iPhone",
    "Надіслано з iPhone", "Εστάλη από το iPhone μου", "Được gửi từ iPhone của tôi", "Dikirim dari iPhone saya",
    "iPhone'umdan gönderildi", "iPhone-ról küldve", "发自我的iPhone", "從我的iPhone傳送", "iPhoneから送信",
    "나의 iPhone에서 보냄", "Sent wirelessly from my BlackBerry device on the Bell network.",
]


def test_the_footer_pre_test_never_hides_a_footer():
    from exchange_sync.transform.signature import is_mobile_footer, may_have_mobile_footer

    for footer in FOOTERS:
        assert is_mobile_footer(footer), footer
        assert may_have_mobile_footer(f"Some text\n{footer}\n"), footer
