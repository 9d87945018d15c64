"""Evaluate quote/signature cleaning: ours and the peer libraries on the labelled replies, in one run.

    .venv/bin/python bench/eval_cleaning_libraries.py [--peers-python /tmp/peers/bin/python] [--samples]

**Labelled replies** (../shared/corpus/labelled-replies, 121 cases from four reply parsers' test suites,
scored by its ``score.py``: strict, lenient, signature, lost replies = empty body for a non-empty
label, crashes): exchange-sync's ``email_to_comment`` and, on the text each library would get (the
plain part, else our HTML conversion of the whole HTML), talon, mail-parser-reply, email-reply-parser
and quotequail. The peers are not project dependencies: install them in a throwaway venv and pass its
interpreter, e.g.

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install talon==1.4.4 mail-parser-reply==1.36 \
        email-reply-parser==0.5.12 quotequail==0.5.4

A library that is importable neither here nor there is listed as missing, so a regression of ours, or a
peer overtaking us, shows in the same table.

``--samples`` also runs the older comparison on the golden samples (tests/transform/samples): reply
kept / quote removed / signature split, HTML converters, language detectors (needs html2text,
selectolax, beautifulsoup4, langdetect as well).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

try:
    from exchange_sync.transform import email_to_comment
    from exchange_sync.transform.html_text import html_to_text
    from exchange_sync.transform.mime import parse_mail
    from exchange_sync.transform.text import normalise_body
except ImportError:  # the peer worker runs under the peers' interpreter, without the project
    if "--peer-worker" not in sys.argv:
        raise

SAMPLES = Path(__file__).resolve().parents[1] / "tests" / "transform" / "samples"
LABELLED = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "labelled-replies"
PEERS = ("talon", "mail-parser-reply", "email-reply-parser", "quotequail")


def _score_module(cases_root: Path):
    spec = importlib.util.spec_from_file_location("labelled_score", cases_root / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _peer_input(raw: bytes) -> str:
    """The text a reply parser would be given: the plain part, else the HTML converted (quotes kept)."""
    parsed = parse_mail(raw)
    texts = []
    for piece in parsed.pieces:
        if piece.plain is not None and piece.plain.strip():
            texts.append(piece.plain)
        elif piece.html:
            converted = html_to_text(piece.html)
            texts.append(converted.text + ("\n" + converted.quoted if converted.quoted else ""))
    return normalise_body("\n\n".join(texts))


def run_peer(name: str, text: str) -> tuple[str, str]:
    """(body, signature) from one peer library; raises ImportError when it is not installed."""
    if name == "talon":
        import talon
        from talon import quotations
        from talon.signature.bruteforce import extract_signature

        if not getattr(run_peer, "_talon", False):
            talon.init()
            run_peer._talon = True
        reply = quotations.extract_from_plain(text)
        body, signature = extract_signature(reply)
        return body or "", signature or ""
    if name == "mail-parser-reply":
        from mailparser_reply import EmailReplyParser

        languages = ["en", "de", "fr", "es", "nl", "it", "pt", "sv", "pl", "da", "no", "fi", "ja", "zh", "ko", "ru"]
        try:
            parser = EmailReplyParser(languages=languages)
        except Exception:  # noqa: BLE001 - older versions know fewer languages
            parser = EmailReplyParser(languages=["en", "de", "fr", "es", "nl", "it", "pt", "sv", "pl"])
        return parser.parse_reply(text=text) or "", ""
    if name == "email-reply-parser":
        from email_reply_parser import EmailReplyParser

        return EmailReplyParser.parse_reply(text) or "", ""
    if name == "quotequail":
        import quotequail

        # unwrap() gives the text above the quote/forward without its attribution line (quote() keeps it).
        unwrapped = quotequail.unwrap(text)
        if unwrapped is not None:
            return unwrapped.get("text_top") or "", ""
        return "\n".join(part for is_new, part in quotequail.quote(text) if is_new), ""
    raise ValueError(name)


def peer_worker() -> None:
    """Child mode (run under the peers' interpreter): JSON {"peer", "texts"} in, one result per text out."""
    request = json.load(sys.stdin)
    results = []
    start = time.perf_counter()
    for text in request["texts"]:
        try:
            body, signature = run_peer(request["peer"], text)
            results.append({"body": body, "signature": signature})
        except ImportError as exc:
            json.dump({"missing": str(exc)}, sys.stdout)
            return
        except Exception as exc:  # noqa: BLE001 - a library failing on a message counts as a crash
            results.append({"error": f"{type(exc).__name__}: {exc}"[:200]})
    elapsed = time.perf_counter() - start
    json.dump({"results": results, "seconds": elapsed}, sys.stdout)


def _peer_results(name: str, texts: list[str], peers_python: str | None) -> tuple[list[dict] | None, float, str]:
    try:
        __import__({"talon": "talon", "mail-parser-reply": "mailparser_reply",
                    "email-reply-parser": "email_reply_parser", "quotequail": "quotequail"}[name])
        local = True
    except ImportError:
        local = False
    if local:
        results, start = [], time.perf_counter()
        for text in texts:
            try:
                body, signature = run_peer(name, text)
                results.append({"body": body, "signature": signature})
            except Exception as exc:  # noqa: BLE001
                results.append({"error": f"{type(exc).__name__}: {exc}"[:200]})
        return results, time.perf_counter() - start, "in this environment"
    if not peers_python:
        return None, 0.0, "not installed (pass --peers-python)"
    proc = subprocess.run([peers_python, __file__, "--peer-worker"], input=json.dumps({"peer": name, "texts": texts}),
                          capture_output=True, text=True, timeout=1800)
    try:
        answer = json.loads(proc.stdout)
    except ValueError:
        return None, 0.0, f"failed: {proc.stderr.strip()[-200:]}"
    if "missing" in answer:
        return None, 0.0, f"not installed in {peers_python}"
    return answer["results"], answer["seconds"], f"via {peers_python}"


def labelled(peers_python: str | None, cases_root: Path = LABELLED) -> None:
    if not (cases_root / "score.py").is_file():
        print(f"labelled replies not found at {cases_root}")
        return
    scorer = _score_module(cases_root)
    cases = scorer.load_cases(str(cases_root / "cases"))
    ids = list(cases)
    raws = [Path(cases[mid]["eml"]).read_bytes() for mid in ids]
    rows = []

    email_to_comment(raws[0])  # warm up: lazy imports, language model
    start = time.perf_counter()
    ours = []
    for raw in raws:
        outcome = email_to_comment(raw)
        if hasattr(outcome, "messages"):
            message = outcome.messages[0]
            ours.append({"body": message.body.text, "signature": message.signature.text if message.signature else ""})
        else:
            ours.append({"error": outcome.reason})
    rows.append(("exchange-sync", ours, time.perf_counter() - start, "email_to_comment (parse, clean, language)"))

    texts = [_peer_input(raw) for raw in raws]
    for name in PEERS:
        results, seconds, where = _peer_results(name, texts, peers_python)
        rows.append((name, results, seconds, where))

    print(f"{len(ids)} labelled replies ({cases_root})")
    print(f"{'library':20s} {'strict':>12s} {'lenient':>12s} {'signature':>10s} {'lost':>5s} {'crashes':>8s} {'ms/msg':>7s}")
    for name, results, seconds, where in rows:
        if results is None:
            print(f"{name:20s} {where}")
            continue
        strict = lenient = sig = sig_n = lost = crashes = 0
        for mid, result in zip(ids, results):
            case, scored = cases[mid], scorer.score_case(cases[mid], result)
            strict += scored["strict"]
            lenient += scored["lenient"]
            crashes += scored["crash"]
            if scored["signature"] is not None:
                sig_n += 1
                sig += scored["signature"]
            if not scored["crash"] and case["reply"].strip() and not (result.get("body") or "").strip():
                lost += 1
        n = len(ids)
        print(f"{name:20s} {strict:4d} ({100 * strict / n:3.0f}%) {lenient:4d} ({100 * lenient / n:3.0f}%) "
              f"{sig:4d}/{sig_n:<5d} {lost:5d} {crashes:8d} {seconds / n * 1e3:7.2f}  {where}")


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-python", help="interpreter of a venv that has the peer libraries installed")
    parser.add_argument("--cases", type=Path, default=LABELLED, help="labelled-replies folder (with score.py)")
    parser.add_argument("--samples", action="store_true", help="also the golden-sample, HTML and language comparisons")
    parser.add_argument("--peer-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_worker:
        peer_worker()
        return
    labelled(args.peers_python, args.cases)
    if args.samples:
        golden_samples()


def golden_samples():
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
