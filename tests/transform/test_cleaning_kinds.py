"""Cleaning, one test per kind of failure of issue 15 and per language/client form of it.

Each case is a whole email as a client would send it (plain or HTML), written for this file: the
new text, the history below it, and the exact body and signature expected. ``QH`` is the
``string:Quoted History`` expected (``None`` = no cut may be claimed).
"""

from __future__ import annotations

import pytest

from exchange_sync.transform import email_to_comment

HEADERS = (
    "From: {sender}\r\nTo: Support <support@shop.example>\r\nSubject: Re: Order 20417\r\n"
    "Date: Fri, 14 Feb 2020 10:30:00 +0100\r\nMessage-ID: <kind-{name}@mail.example>\r\n"
    "MIME-Version: 1.0\r\nContent-Type: {ctype}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
)


def transform(name: str, body: str, *, html: bool = False, sender: str = "Dana Field <dana@field.example>"):
    ctype = "text/html" if html else "text/plain"
    raw = HEADERS.format(sender=sender, name=name, ctype=ctype) + body.replace("\n", "\r\n")
    comment = email_to_comment(raw.encode("utf-8"))
    message = comment.messages[0]
    return (message.body.text, message.signature.text if message.signature else "", comment.user_properties)


QUOTE = "> Could you confirm the delivery date?\n> Thanks\n"

# (id, text, expected body, expected Quoted History)
REPLY_TOUCHING_ATTRIBUTION = [
    ("en-gmail", "Friday works, see you then.\nOn Thu, Feb 13, 2020 at 6:40 PM Paul Durand <paul@durand.example> wrote:\n"
     + QUOTE, "Friday works, see you then.", "attribution"),
    ("en-two-lines", "Confirmed for Friday.\nThe driver calls an hour before.\nOn Thu, Feb 13, 2020 at 6:40 PM Paul "
     "Durand <\npaul@durand.example> wrote:\n\n" + QUOTE,
     "Confirmed for Friday.\nThe driver calls an hour before.", "attribution"),
    ("sv", "Tack, det fungerar nu.\nDen 13 februari 2020 18:40:11, Erik Lund (erik@lund.example) skrev:\n\n" + QUOTE,
     "Tack, det fungerar nu.", "attribution"),
    ("de-greeting", "Hallo,\nAm 13.02.2020 um 18:40 schrieb Jonas Weber <jonas@weber.example>:\n" + QUOTE
     + "\nPasst, ich komme am Freitag.", "Hallo,\n\nPasst, ich komme am Freitag.", "inline"),
]


@pytest.mark.parametrize(("name", "text", "body", "kind"), REPLY_TOUCHING_ATTRIBUTION,
                         ids=[c[0] for c in REPLY_TOUCHING_ATTRIBUTION])
def test_reply_directly_above_an_attribution_is_kept(name, text, body, kind):
    got, _, props = transform(name, text)
    assert got == body
    assert props.get("string:Quoted History") == kind


def test_reply_directly_above_an_html_attribution_is_kept():
    html = ("<html><body>Works for me<div>On Thu, Feb 13, 2020 at 6:40 PM Paul Durand &lt;paul@durand.example&gt; "
            "wrote:<br></div><div>Thursday or Friday?</div></body></html>")
    assert transform("html-touching", html, html=True)[0] == "Works for me"


# Attribution forms: (id, attribution line(s)); the reply above and the history below are the same.
ATTRIBUTIONS = [
    ("gmail-date-first", "2020-02-13 18:40 GMT+01:00 Paul Durand <paul@durand.example>:"),
    ("gmail-date-first-dots", "13.02.2020, 18.40, \"Paul - Durand\" <paul@durand.example>:"),
    ("mailru-from", "Четверг, 13 февраля 2020, 18:40 +03:00 от paul@durand.example <paul@durand.example>:"),
    ("ru-gmail", "чт, 13 февр. 2020 г. в 18:40, Иван Петров <ivan@petrov.example>:"),
    ("uk-pyshe", "чт, 13 лют. 2020 о 18:40 Олена Коваль <olena@koval.example> пише:"),
    ("uk-napysav", "13 лютого 2020 р. о 18:40 Олена Коваль <olena@koval.example> написав:"),
    ("vi", "Vào 18:40, Th 5, 13 thg 2, 2020 Nguyễn Văn An <an@nguyen.example> đã viết:"),
    ("zh-gmail", "Li Wei <li@wei.example> 于2020年2月13日周四 下午6:40写道："),
    ("zh-apple", "在 2020年2月13日，下午6:40，Li Wei <li@wei.example> 写道："),
    ("zh-tw", "Chen Mei <mei@chen.example> 於 2020年2月13日 週四 下午6:40 寫道："),
    ("ko-gmail", "2020년 2월 13일 (목) 오후 6:40, Kim Minji <minji@kim.example>님이 작성:"),
    ("ko-apple", "2020. 2. 13. 오후 6:40, Kim Minji <minji@kim.example> 작성:"),
    ("ja-apple", "2020/02/13 18:40、Sato Yuki <yuki@sato.example>のメッセージ:"),
    ("ja-gmail", "2020年2月13日(木) 18:40 Sato Yuki <yuki@sato.example>:"),
    ("ca-ha-escrit", "El 13/02/2020 a les 18:40, Jordi Puig <jordi@puig.example> ha escrit:"),
    ("ca-va-escriure", "El dj., 13 de febr. 2020 a les 18:40, Jordi Puig (<jordi@puig.example>) va escriure:"),
    ("pl-thunderbird", "W dniu 13.02.2020 o 18:40, Anna Nowak pisze:"),
    ("nl-apple", "Op 13 feb. 2020, om 18:40 heeft Sanne de Vries <sanne@vries.example> het volgende geschreven:"),
    ("tr", "Ayşe Yılmaz <ayse@yilmaz.example>, 13 Şub 2020 Per, 18:40 tarihinde şunu yazdı:"),
    ("he", "בתאריך יום ה׳, 13 בפבר׳ 2020 ב-18:40 מאת Dana Levi <dana@levi.example>:"),
    ("colon-less", "On Thu, 13 Feb 2020 18:40:11 +0100 Paul Durand <paul@durand.example> wrote"),
    ("zoho-dashed", "---- On Thu, 13 Feb 2020 18:40:11 +0100 Paul Durand <paul@durand.example> wrote ----"),
    ("android-dashed", "---- Paul Durand wrote ----"),
    ("dashed-no-space", "------On 13/02/2020 18:40, Paul Durand wrote------"),
    ("de-name-first", "Jonas Weber <jonas@weber.example> schrieb am Do., 13. Feb. 2020 um 18:40 Uhr:"),
    ("de-formal", "Am 13.02.2020 um 18:40 schrieben Sie:"),
    ("gmail-old-no-colon", "2020/2/13 Paul Durand <paul@durand.example>"),
    ("ru-polzovatel", "четверг, 13 февраля 2020 г. пользователь Иван Петров написал:"),
]


@pytest.mark.parametrize(("name", "attribution"), ATTRIBUTIONS, ids=[c[0] for c in ATTRIBUTIONS])
def test_attribution_forms_are_cut(name, attribution):
    text = f"Yes, the 21st is fine.\n\n{attribution}\n\nCould you confirm the delivery date?\nThanks\n"
    body, _, props = transform(name, text)
    assert body == "Yes, the 21st is fine."
    assert props.get("string:Quoted History") == "attribution"


SEPARATORS = [
    ("da-oprindelig-besked", "-------- Oprindelig besked --------\nFra: Paul Durand <paul@durand.example>\n"
     "Dato: 13.02.2020 18.40 (GMT+01:00)\nTil: support@shop.example\nEmne: Ordre 20417"),
    ("sv-unknown-dashed-title", "----- Ursprungligt e-postmeddelande -----\nFrån: Paul Durand <paul@durand.example>\n"
     "Skickat: den 13 februari 2020 18:40\nTill: support@shop.example\nÄmne: Order 20417"),
    ("fr-message-du", "========================================\n\nMessage du : 13/02/2020 18:40\n"
     "De : \"Service client \" <client@shop.example>\nA : dana@field.example\nCopie à :\nSujet : Votre commande"),
    ("cs-dashed", "---------- Původní e-mail ----------\nOd: Paul Durand <paul@durand.example>\n"
     "Datum: 13. 2. 2020 18:40:11\nPředmět: Objednávka 20417"),
]


@pytest.mark.parametrize(("name", "separator"), SEPARATORS, ids=[c[0] for c in SEPARATORS])
def test_separator_above_a_header_block_goes_with_it(name, separator):
    text = f"Yes, the 21st is fine.\n\n{separator}\n\nCould you confirm the delivery date?\n"
    body, _, props = transform(name, text)
    assert body == "Yes, the 21st is fine."
    assert props.get("string:Quoted History") in {"header", "separator"}


@pytest.mark.parametrize(("name", "attribution"), [
    ("sw-unknown-language", "Mnamo Alh, 13 Feb 2020 18:40, Juma Ali <juma@ali.example> aliandika:"),
    ("el", "Στις Πέμ 13 Φεβ 2020 στις 6:40 μ.μ., ο/η Nikos Pappas <nikos@pappas.example> έγραψε:"),
], ids=["sw-unknown-language", "el"])
def test_attribution_above_removed_angle_quote_goes_too(name, attribution):
    body, _, props = transform(name, f"Yes, the 21st is fine.\n\n{attribution}\n\n{QUOTE}")
    assert body == "Yes, the 21st is fine."
    assert props.get("string:Quoted History") in {"attribution", "angle"}


WRAPPED = [
    ("it", "Il giorno gio 13 feb 2020 alle ore 18:40 Giulia Bianchi <\ngiulia@bianchi.example> ha scritto:"),
    ("it-thunderbird", "Il giovedì 13 febbraio 2020, Giulia Bianchi <giulia@bianchi.example>\nha scritto:"),
    ("en-three-lines", "On Thu, Feb 13, 2020, Tom Baker\n<tom@baker.example>\nwrote:"),
    ("nl", "Op do 13 feb. 2020 om 18:40 schreef Sanne de Vries <\nsanne@vries.example>:"),
    ("no-gmail-bracket", "tor. 13. feb. 2020 kl. 18:40 skrev Kari Nordmann <kari@nordmann.example\n>:"),
    ("en-four-lines", "On Thu, Feb 13, 2020 at 6:40 PM Customer Service Team of\nThe Example Shipping Company <\n"
     "customer.service.team@shipping.example>\nwrote:"),
]


@pytest.mark.parametrize(("name", "attribution"), WRAPPED, ids=[c[0] for c in WRAPPED])
def test_wrapped_attribution_leaves_no_pieces(name, attribution):
    # Inline quoting below (new text after the quote) takes the "inline" path: the whole attribution goes.
    text = f"Yes, the 21st is fine.\n\n{attribution}\n{QUOTE}\n-- \nDana Field\nField & Co"
    body, signature, props = transform(name, text)
    assert body == "Yes, the 21st is fine."
    assert signature == "Dana Field\nField & Co"
    assert props.get("string:Quoted History") in {"attribution", "inline"}


def test_lazy_wrapped_quote_lines_are_history():
    text = ("Thanks, that answers it.\n\nOn Thu, Feb 13, 2020 at 6:40 PM Paul Durand <paul@durand.example> wrote:\n"
            "> The shipment left the warehouse on Monday and should reach the depot by\n"
            "Thursday at the latest, weather permitting.\n>\n> Regards, Paul\n\n-- \nDana")
    body, signature, _ = transform("lazy", text)
    assert body == "Thanks, that answers it."
    assert signature == "Dana"


FALSE_POSITIVES = [
    ("prose-wrote-colon", "None of the libraries handled our CSV dialect, so I wrote one of my own:\n\n"
     "    rows = [line.split(';') for line in data]\n\nIt is slow but correct."),
    ("prose-wrote-colon-short", "Nothing fit, so I wrote my own:\n\n    rows = [line.split(';') for line in data]"),
    ("prose-name-wrote", "Good news on the contract.\n\nMaria wrote:\nthe legal team signed it this morning, "
     "so we can start on Monday."),
    ("arrows-content", "Here is the status page:\n\n>>> >>> https://status.shop.example/incident/42 <<<\n\n"
     "It is updated every five minutes."),
    ("arrows-single", "Please read the notice:\n> Maintenance window tonight <\nThanks"),
]


@pytest.mark.parametrize(("name", "text"), FALSE_POSITIVES, ids=[c[0] for c in FALSE_POSITIVES])
def test_content_is_not_taken_for_history(name, text):
    body, _, props = transform(name, text)
    assert body == text
    assert "string:Quoted History" not in props


BARE_BLOCKQUOTES = [
    ("en-name-wrote", "<p>Agreed, ship it on Monday.</p><p>Tom Baker wrote:</p>"
     "<blockquote><p>Shall we ship the fix?</p><p>Tom</p></blockquote>"),
    ("en-touching", "<div>Agreed, ship it on Monday.<br>Tom Baker wrote:</div>"
     "<blockquote><div>Shall we ship the fix?</div></blockquote>"),
    ("es-name-wrote", "<div>De acuerdo.</div><div>Lucía Gómez escribió:</div>"
     "<blockquote>¿Enviamos el parche hoy?<br>Lucía</blockquote>"),
    ("fr-dated", "<div>Agreed, ship it on Monday.</div><div><br></div><div>Le jeu. 13 févr. 2020 à 18:40, "
     "Luc Martin &lt;luc@martin.example&gt; a écrit :</div><blockquote style=\"margin:0 0 0 40px\">"
     "<div>On livre lundi ?</div></blockquote>"),
]


@pytest.mark.parametrize(("name", "html"), BARE_BLOCKQUOTES, ids=[c[0] for c in BARE_BLOCKQUOTES])
def test_bare_blockquote_after_an_attribution_is_history(name, html):
    body, _, props = transform(name, f"<html><body>{html}</body></html>", html=True)
    assert body in {"Agreed, ship it on Monday.", "De acuerdo."}
    assert props.get("string:Quoted History") in {"html", "attribution", "inline"}


BLOCKQUOTES_AS_QUOTING = [
    # A bare blockquote at the end (Windows Mail, Yahoo, webmail without markup): history, like a "> " block.
    ("trailing", "<div>Fine by me.</div><div><br></div><blockquote style=\"border-left:2px solid #ccc\">"
     "<div>Can we push the launch to May?</div></blockquote>", "Fine by me.", "angle"),
    # A quote followed by the reply below it (inline answer): the quoted lines go, the answer stays.
    ("inline", "<p>The clause reads:</p><blockquote>The supplier shall deliver within 14 days.</blockquote>"
     "<p>Is that still binding?</p>", "The clause reads:\n\nIs that still binding?", "angle"),
    # Gmail's indent button makes a blockquote with border:none: formatting, not quoting.
    ("gmail-indent", "<div dir=\"ltr\">Agenda:<blockquote style=\"margin:0 0 0 40px;border:none;padding:0px\">"
     "<div>1. Budget</div><div>2. Hiring</div></blockquote><div>See you at 10.</div></div>",
     "Agenda:\n1. Budget\n2. Hiring\nSee you at 10.", None),
    # A header block that the HTML flattened onto one line, under a rule.
    ("flat-header", "<div>Fine by me.</div><div><hr><div><font><b>From: paul@durand.example</b> "
     "<b>Date: Thu, 13 Feb 2020 18:40:11 +0100</b></font></div><div>Can we push the launch?</div></div>",
     "Fine by me.", "header"),
]


@pytest.mark.parametrize(("name", "html", "body", "kind"), BLOCKQUOTES_AS_QUOTING,
                         ids=[c[0] for c in BLOCKQUOTES_AS_QUOTING])
def test_bare_blockquote_is_quoting(name, html, body, kind):
    got, _, props = transform(name, f"<html><body>{html}</body></html>", html=True)
    assert got == body
    assert props.get("string:Quoted History") == kind


SIGNATURES = [
    ("blackberry-bell", "Running late, start without me.\n\nSent wirelessly from my BlackBerry device on the Bell network.",
     "Running late, start without me.", "Sent wirelessly from my BlackBerry device on the Bell network."),
    ("blackberry-carrier", "On my way.\n\nSent from my BlackBerry® smartphone on the Rogers Wireless network",
     "On my way.", "Sent from my BlackBerry® smartphone on the Rogers Wireless network"),
    ("da-hilsen", "Pakken er modtaget, tak.\n\nHilsen\nSøren", "Pakken er modtaget, tak.\n\nHilsen", "Søren"),
    ("da-kh", "Vi ses på fredag.\n\nKh\nPeter", "Vi ses på fredag.\n\nKh", "Peter"),
    ("sv-halsningar", "Fakturan är betald.\n\nHälsningar\nAnna Berg\nEkonomi", "Fakturan är betald.\n\nHälsningar",
     "Anna Berg\nEkonomi"),
    ("fi-terveisin", "Lasku on maksettu.\n\nTerveisin\nMatti", "Lasku on maksettu.\n\nTerveisin", "Matti"),
    ("zh-iphone", "好的，明天见。\n\n发自我的iPhone", "好的，明天见。", "发自我的iPhone"),
    ("ko-iphone", "네, 내일 봬요.\n\n나의 iPhone에서 보냄", "네, 내일 봬요.", "나의 iPhone에서 보냄"),
    ("ca-iphone", "D'acord, fins demà.\n\nEnviat des del meu iPhone", "D'acord, fins demà.", "Enviat des del meu iPhone"),
    ("dash-sign-off", "Thanks for the help.\n\n-Ravi Kumar", "Thanks for the help.", "-Ravi Kumar"),
]


@pytest.mark.parametrize(("name", "text", "body", "signature"), SIGNATURES, ids=[c[0] for c in SIGNATURES])
def test_signature_forms(name, text, body, signature):
    got_body, got_signature, _ = transform(name, text, sender="Someone <someone@x.example>")
    assert (got_body, got_signature) == (body, signature)


def test_mobile_footer_over_an_unmarked_original_keeps_the_original_out_of_the_signature():
    text = ("Yes, I can take the Tuesday shift.\n\nSent from my iPhone\n\nPaul Durand <paul@durand.example>\n"
            "Hi all, we still need somebody for the Tuesday late shift next week. Anyone free?\n"
            "Thanks, Paul")
    body, signature, props = transform("unmarked", text)
    assert body == "Yes, I can take the Tuesday shift."
    assert signature == "Sent from my iPhone"
    assert props.get("string:Quoted History") == "unmarked"


def test_sentence_with_a_phone_number_stays_in_the_body():
    text = ("Hi Tom,\n\nPlease ring the courier on 0161 496 0000 before noon today.\n"
            "Or email claims@courier.example if nobody answers.")
    body, signature, _ = transform("phone-sentence", text, sender="Ann Lee <ann@lee.example>")
    assert body == text
    assert signature == ""


LOSSLESS = [
    ("em-dash", "Thanks for the quick fix.\n—\nMaria Lopez\nHead of Operations",
     "Thanks for the quick fix.", "—\nMaria Lopez\nHead of Operations"),
    # Both "--" lines are delimiter markup: neither stays at the end of the body.
    ("doubled-delimiter", "Thanks for the quick fix.\n\n--\n-- \nMaria Lopez\nHead of Operations",
     "Thanks for the quick fix.", "Maria Lopez\nHead of Operations"),
    ("underscores", "Thanks for the quick fix.\n\n__\nMaria Lopez\nHead of Operations",
     "Thanks for the quick fix.", "__\nMaria Lopez\nHead of Operations"),
]


@pytest.mark.parametrize(("name", "text", "body", "signature"), LOSSLESS, ids=[c[0] for c in LOSSLESS])
def test_body_and_signature_are_the_new_text(name, text, body, signature):
    got_body, got_signature, _ = transform(name, text)
    assert (got_body, got_signature) == (body, signature)


def test_gmail_spacer_is_removed_but_syllabics_are_kept():
    body, _, _ = transform("spacer", "Thanks, received.\n\u1427\n")
    assert body == "Thanks, received."
    inuktitut = "ᐃᓄᒃᑎᑐᑦ ᐅᖃᐅᓯᖅ ᐊᐃᐧ"  # U+1427 inside syllabics text is a letter mark
    assert transform("syllabics", inuktitut)[0] == inuktitut


def test_safety_net_keeps_a_signature_only_message():
    body, signature, props = transform("only-signature", "--\nMaria Lopez\nHead of Operations\n+34 912 345 678")
    assert body == "Maria Lopez\nHead of Operations\n+34 912 345 678"
    assert signature == ""
    assert props["string:Cleaning"] == "fallback"
    assert "string:Quoted History" not in props


def test_safety_net_keeps_text_above_the_first_quote_when_the_cuts_take_everything():
    text = "Sent from my iPhone\n\nOn Thu, Feb 13, 2020 at 6:40 PM Paul Durand <paul@durand.example> wrote:\n" + QUOTE
    body, signature, props = transform("footer-only", text)
    assert body == "Sent from my iPhone"
    assert props["string:Cleaning"] == "fallback"
    assert props["string:Quoted History"] == "attribution"  # the history was still cut


def test_no_fallback_for_a_message_that_starts_with_history():
    text = "On Thu, Feb 13, 2020 at 6:40 PM Paul Durand <paul@durand.example> wrote:\n" + QUOTE
    body, _, props = transform("nothing-new", text)
    assert body == ""
    assert "string:Cleaning" not in props


def test_ordinary_mail_is_not_marked():
    _, _, props = transform("plain", "Yes, the 21st is fine.\n\nOn Thu, Feb 13, 2020, Paul <paul@durand.example> "
                            "wrote:\n" + QUOTE)
    assert "string:Cleaning" not in props


GLUED = [
    ("same-line", "Sure, Thursday works On Wed, Feb 12, 2020 at 4:05 PM, Paul Durand <paul@durand.example> wrote:\n"
     "> Can we meet this week?", "Sure, Thursday works"),
    ("same-line-dashes", "Noted, thanks\nWill do--- On Wed, Feb 12, 2020 at 4:05 PM, paul@durand.example wrote:\n"
     "> Can we meet this week?", "Noted, thanks\nWill do"),
    ("same-line-wrapped", "See <https://files.example/report-2020-q1-final-draft\n> for the figures\nthanks On Wed, "
     "Feb 12, 2020 at 4:05 PM, Paul Durand <\npaul@durand.example>wrote:\n\n> Can we meet this week?",
     "See <https://files.example/report-2020-q1-final-draft\n> for the figures\nthanks"),
]


@pytest.mark.parametrize(("name", "text", "body"), GLUED, ids=[c[0] for c in GLUED])
def test_attribution_on_the_same_line_as_the_reply(name, text, body):
    got, _, props = transform(name, text)
    assert got == body
    assert props.get("string:Quoted History") == "attribution"
    assert "string:Cleaning" not in props


def test_links_broken_inside_a_quote_are_history():
    text = ("Done, closing the ticket.\n\nOn Mon, Feb 10, 2020 at 3:46 PM, Helpdesk <help@desk.example> wrote:\n\n"
            "> [Ticket #88] printer offline\n>\n> View ticket (https://desk.example/t/88?action=view&\n"
            "nonce=3dd518)\n>\n (https://desk.example/u/unsubscribe) >\n> Reply above this line\n")
    body, _, props = transform("broken-links", text)
    assert body == "Done, closing the ticket."


def test_dated_address_line_without_colon_above_a_quote_goes_too():
    text = "Replying now.\n2020/2/12 Paul Durand <paul@durand.example>\n\n> Can we meet this week?\n> Paul"
    body, _, props = transform("date-address-no-colon", text)
    assert body == "Replying now."
    assert props.get("string:Quoted History") in {"angle", "attribution"}


HEADER_BLOCKS = [
    ("ja", "差出人: 山田 太郎 <taro@example.jp>\n送信日時: 2020年2月13日 18:40\n宛先: 佐藤 花子 <hanako@example.jp>\n件名: 納期"),
    ("ko", "보낸 사람: 김민수 <minsu@example.kr>\n보낸 날짜: 2020년 2월 13일 목요일 오후 6:40\n받는 사람: 이지은\n제목: 납기"),
    ("tr", "Kimden: Ahmet Yılmaz <ahmet@example.com.tr>\nGönderildi: 13 Şubat 2020 Perşembe 18:40\nKime: Ayşe\nKonu: Teslim"),
    ("vi", "Từ: Nguyễn Văn An <an@example.vn>\nĐã gửi: Thứ Năm, ngày 13 tháng 2 năm 2020 18:40\nĐến: Bình\nChủ đề: Giao hàng"),
    ("he", "מאת: דנה לוי <dana@levi.example>\nנשלח: יום חמישי 13 פברואר 2020 18:40\nאל: יוסי\nנושא: משלוח"),
    ("el", "Από: Νίκος Παππάς <nikos@pappas.example>\nΣτάλθηκε: Πέμπτη, 13 Φεβρουαρίου 2020 6:40 μμ\nΠρος: Άννα\n"
     "Θέμα: Παράδοση"),
]


@pytest.mark.parametrize(("name", "block"), HEADER_BLOCKS, ids=[c[0] for c in HEADER_BLOCKS])
def test_outlook_header_blocks_in_more_languages(name, block):
    body, _, props = transform(f"hdr-{name}", f"Yes, the 21st is fine.\n\n{block}\n\nCould you confirm the date?\n")
    assert body == "Yes, the 21st is fine."
    assert props.get("string:Quoted History") == "header"


def test_typed_rule_over_a_name_opens_the_signature():
    text = "好的，周六见。\n\n——————————————\n\n小满\n活动协调人"
    body, signature, _ = transform("rule-signature", text, sender="Xiao Man <xm@example.cn>")
    assert (body, signature) == ("好的，周六见。", "——————————————\n\n小满\n活动协调人")


def test_slash_sign_off_is_the_signature():
    body, signature, _ = transform("slash", "Hej Anna,\n\nTack för uppdateringen.\n\n/Johan")
    assert (body, signature) == ("Hej Anna,\n\nTack för uppdateringen.", "/Johan")


def test_a_rule_over_a_table_of_details_stays_in_the_body():
    text = ("A fax has arrived.\n------------------------------\nTime: 3/9/2020 3:50:52 PM\nPages: 2\n"
            "Result: Successful\nElapsed time: 00:58")
    body, signature, _ = transform("fax", text, sender="fax@example.com")
    assert (body, signature) == (text, "")


def test_protonmail_and_zoho_containers():
    proton = ('<div>Sounds good.</div><div class="protonmail_signature_block"><div>Sent with Proton Mail secure '
              'email.</div></div><div class="protonmail_quote">On Thursday, February 13th, 2020 at 6:40 PM, Paul '
              '&lt;paul@durand.example&gt; wrote:<br><blockquote class="protonmail_quote" type="cite">Can we meet?'
              '</blockquote></div>')
    assert transform("proton", f"<html><body>{proton}</body></html>", html=True)[:2] == (
        "Sounds good.", "Sent with Proton Mail secure email.")
    zoho = ('<div>Sounds good.<br></div><div class="zmail_extra"><br><div>---- On Thu, 13 Feb 2020 18:40:11 +0100 '
            '<b>Paul</b> &lt;paul@durand.example&gt; wrote ----<br></div><blockquote>Can we meet?</blockquote></div>')
    assert transform("zoho", f"<html><body>{zoho}</body></html>", html=True)[0] == "Sounds good."


@pytest.mark.parametrize("text", [
    "The meeting is on 2020-03-04 at 10:00 with bob@example.com:\n\n- agenda item one\n- agenda item two",
    "As my manager said at the 10:30 meeting:\n\n1. ship it\n2. test it",
    "On Monday, we shipped 2 releases:\n- 1.2\n- 1.3",
    "Am Montag haben wir 2 Versionen ausgeliefert:\n- 1.2\n- 1.3",
], ids=["date-and-bare-address", "said-with-time", "on-monday", "am-montag"])
def test_prose_with_dates_and_colons_is_not_an_attribution(text):
    body, _, props = transform("prose-colon", text)
    assert body == text
    assert "string:Quoted History" not in props
