"""Transform rate vs a stdlib-parse-only baseline, same run, same messages.

    .venv/bin/python bench/bench_transform.py [--n 2000] [--seed 4711]

Inputs: realistic generated mail (``ews_testserver.generate.generate_messages``) and, when
present, the real-world corpus (../shared/corpus/real-world-emails) repeated. The baseline is
what any importer has to do at least: ``email.message_from_bytes(policy=compat32)`` and decoding
every text part with its declared charset. Prints messages/s for both and the ratio.
"""

from __future__ import annotations

import argparse
import time
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

from exchange_sync.transform import email_to_comment

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "real-world-emails"


def baseline(raw: bytes) -> int:
    message = message_from_bytes(raw, policy=compat32)
    size = 0
    for part in message.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True) or b""
            try:
                size += len(payload.decode(part.get_content_charset() or "utf-8", "replace"))
            except LookupError:
                size += len(payload.decode("utf-8", "replace"))
    return size


def rate(function, messages: list[bytes], rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in messages:
            function(raw)
        best = min(best, time.perf_counter() - start)
    return len(messages) / best


def report(name: str, messages: list[bytes]) -> None:
    email_to_comment(messages[0])  # warm up lazy imports and models
    megabytes = sum(map(len, messages)) / 1e6
    base = rate(baseline, messages)
    ours = rate(email_to_comment, messages)
    print(f"{name}: {len(messages)} messages, {megabytes:.1f} MB")
    print(f"  stdlib parse+decode (compat32): {base:10.0f} messages/s")
    print(f"  email_to_comment:               {ours:10.0f} messages/s")
    print(f"  ratio transform/baseline:       {ours / base:10.3f}  ({base / ours:.1f}x slower)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=4711)
    args = parser.parse_args()
    try:
        from ews_testserver.generate import generate_messages

        generated = [m.render() for m in generate_messages(args.n, args.seed)]
        report("generated realistic mail", generated)
    except ImportError as exc:
        print(f"generator unavailable ({exc}); corpus only")
    if CORPUS.is_dir():
        files = [p.read_bytes() for p in sorted(CORPUS.rglob("*.eml"))]
        report("real-world corpus x10", files * 10)


if __name__ == "__main__":
    main()
