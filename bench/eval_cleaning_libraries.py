"""Evaluate quote/signature libraries, HTML converters and language detectors on the golden samples.

    .venv/bin/python bench/eval_cleaning_libraries.py

Needs the candidates installed (not project dependencies):
    pip install quotequail==0.5.4 mail-parser-reply==1.36 email-reply-parser==0.5.12 \
        html2text==2025.4.15 selectolax==1.0.2 beautifulsoup4==4.15.0 langdetect==1.0.9
For each quote library, on the text each would get (the plain part, or the HTML converted):
reply kept (the expected body is contained), quote removed (no quoted marker text left),
signature split (the expected signature is not in the body); and the time per message.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from exchange_sync.transform import email_to_comment
from exchange_sync.transform.html_text import html_to_text
from exchange_sync.transform.mime import parse_mail
from exchange_sync.transform.text import normalise_body

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "transform" / "samples"


def load():
    for path in sorted(SAMPLES.glob("*.eml")):
        expected = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
        raw = path.read_bytes()
        piece = parse_mail(raw).pieces[0]
        full_text = piece.plain if piece.plain is not None else normalise_body(html_to_text(piece.html).text)
        yield path.stem, raw, normalise_body(full_text or ""), expected


def ours(raw, text):
    message = email_to_comment(raw).messages[0]
    return message.body.text


def with_quotequail(raw, text):
    import quotequail

    parts = quotequail.quote(text)
    return "\n".join(t for is_new, t in parts if is_new)


def with_mail_parser_reply(raw, text):
    from mailparser_reply import EmailReplyParser

    languages = ["en", "de", "fr", "es", "nl", "it", "pt", "sv", "pl"]
    return EmailReplyParser(languages=languages).parse_reply(text=text) or ""


def with_email_reply_parser(raw, text):
    from email_reply_parser import EmailReplyParser

    return EmailReplyParser.parse_reply(text)


def score(name, function, cases):
    kept = removed = split = 0
    try:
        function(cases[0][1], cases[0][2])  # warm up: lazy imports, models
    except Exception:  # noqa: BLE001
        pass
    start = time.perf_counter()
    for stem, raw, text, expected in cases:
        try:
            body = normalise_body(function(raw, text) or "")
        except Exception as exc:  # noqa: BLE001 - a library failing counts as a miss
            print(f"  {name} failed on {stem}: {type(exc).__name__}")
            continue
        if expected["body"] and all(line in body for line in expected["body"].splitlines() if line.strip()):
            kept += 1
        if not any(marker in body for marker in expected["absent_from_body"]):
            removed += 1
        if not expected["signature"] or expected["signature"].splitlines()[0] not in body:
            split += 1
    elapsed = (time.perf_counter() - start) / len(cases) * 1e3
    print(f"{name:22s} reply kept {kept:2d}/{len(cases)}  quote removed {removed:2d}/{len(cases)}  "
          f"signature split {split:2d}/{len(cases)}  {elapsed:6.2f} ms/message")


def html_converters():
    import html2text
    from bs4 import BeautifulSoup
    from inscriptis import get_text
    from selectolax.lexbor import LexborHTMLParser

    htmls = []
    for path in sorted(SAMPLES.glob("*.eml")):
        piece = parse_mail(path.read_bytes()).pieces[0]
        if piece.html:
            htmls.append(piece.html)
    htmls = htmls * 50
    converter = html2text.HTML2Text()
    converter.body_width = 0
    candidates = {
        "inscriptis": get_text,
        "html2text": converter.handle,
        "selectolax text()": lambda h: LexborHTMLParser(h).body.text(separator="\n") if LexborHTMLParser(h).body else "",
        "bs4 get_text (lxml)": lambda h: BeautifulSoup(h, "lxml").get_text("\n"),
        "ours (lxml cuts + inscriptis)": lambda h: html_to_text(h).text,
    }
    for name, function in candidates.items():
        start = time.perf_counter()
        for html in htmls:
            function(html)
        print(f"{name:32s} {(time.perf_counter() - start) / len(htmls) * 1e3:6.2f} ms/document")


def languages(cases):
    import langdetect
    from exchange_sync.transform.language import detect_language

    langdetect.DetectorFactory.seed = 0
    detect_language("warm up the model with some words of text")
    bodies = [(expected.get("language"), expected["body"]) for _, _, _, expected in cases if expected.get("language")]
    for name, function in (("py3langid", detect_language), ("langdetect", lambda t: langdetect.detect(t))):
        start = time.perf_counter()
        correct = sum(1 for language, body in bodies if function(body) == language)
        elapsed = (time.perf_counter() - start) / len(bodies) * 1e3
        print(f"{name:12s} {correct}/{len(bodies)} correct  {elapsed:6.2f} ms/text")


def main():
    cases = list(load())
    print(f"{len(cases)} golden samples")
    for name, function in (
        ("exchange-sync rules", ours),
        ("quotequail", with_quotequail),
        ("mail-parser-reply", with_mail_parser_reply),
        ("email-reply-parser", with_email_reply_parser),
    ):
        score(name, function, cases)
    print()
    html_converters()
    print()
    languages(cases)


if __name__ == "__main__":
    main()
