"""Transform rate vs a stdlib-parse-only baseline and vs an earlier commit's transform, same run, same messages.

    .venv/bin/python bench/bench_transform.py [--n 2000] [--seed 4711] [--against REF] [--rounds 5]

Inputs: realistic generated mail (``testserver_core.generate.generate_messages``) and, when
present, the real-world corpus (../shared/corpus/real-world-emails) repeated. Baselines:

- what any importer has to do at least: ``email.message_from_bytes(policy=compat32)`` and decoding
  every text part with its declared charset;
- ``--against REF`` (default ``HEAD``): the transform as it is at git commit REF, checked out in a
  temporary ``git worktree`` and run in a child process on the same messages. Rounds alternate
  between the two so machine noise hits both alike; the best round of each is compared. Use it to
  check a change to the cleaning rules against the commit before it (docs/transform.md: no more
  than 10% slower). Times are CPU time of each process (``time.process_time``), so other load on a
shared machine disturbs the comparison less than wall time would.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "real-world-emails"


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


def seconds(function, messages: list[bytes]) -> float:
    """CPU seconds of this process: on a shared machine, other load inflates wall time, not this."""
    start = time.process_time()
    for raw in messages:
        function(raw)
    return time.process_time() - start


def load_sets(n: int, seed: int) -> list[tuple[str, list[bytes]]]:
    sets = []
    try:
        from testserver_core.generate import generate_messages

        sets.append(("generated realistic mail", [m.render() for m in generate_messages(n, seed)]))
    except ImportError as exc:
        print(f"generator unavailable ({exc}); corpus only")
    if CORPUS.is_dir():
        files = [p.read_bytes() for p in sorted(CORPUS.rglob("*.eml"))]
        sets.append(("real-world corpus x10", files * 10))
    return sets


class Child:
    """The transform of another commit, in a child process that times one round per request."""

    def __init__(self, ref: str, sets_path: str) -> None:
        self.tmp = tempfile.mkdtemp(prefix="bench-transform-")
        self.tree = os.path.join(self.tmp, "tree")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", self.tree, ref],
                       check=True, capture_output=True)
        self.commit = subprocess.run(["git", "-C", self.tree, "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True).stdout.strip()
        env = dict(os.environ, PYTHONPATH=self.tree)
        self.proc = subprocess.Popen([sys.executable, __file__, "--child", sets_path], cwd=self.tree, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = json.loads(self.proc.stdout.readline())
        assert ready["transform"].startswith(self.tree), ready  # really the other commit's code

    def round(self, index: int) -> float:
        self.proc.stdin.write(f"{index}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", self.tree], capture_output=True)


def child(sets_path: str) -> None:
    import exchange_sync.transform as transform
    from exchange_sync.transform import email_to_comment

    sets = pickle.loads(Path(sets_path).read_bytes())
    for _, messages in sets:
        email_to_comment(messages[0])  # warm up lazy imports and models
    print(json.dumps({"transform": transform.__file__}), flush=True)
    for line in sys.stdin:
        print(seconds(email_to_comment, sets[int(line)][1]), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=4711)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", default="HEAD", help="git ref of the transform to compare with ('' = none)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sys.path.insert(0, str(ROOT))
    from exchange_sync.transform import email_to_comment

    sets = load_sets(args.n, args.seed)
    other = None
    if args.against:
        with tempfile.NamedTemporaryFile(suffix=".pickle", delete=False) as handle:
            pickle.dump(sets, handle)
        other = Child(args.against, handle.name)
    try:
        for index, (name, messages) in enumerate(sets):
            email_to_comment(messages[0])
            best = {"base": float("inf"), "ours": float("inf"), "other": float("inf")}
            for _ in range(args.rounds):
                best["base"] = min(best["base"], seconds(baseline, messages))
                best["ours"] = min(best["ours"], seconds(email_to_comment, messages))
                if other is not None:
                    best["other"] = min(best["other"], other.round(index))
            rate = {key: len(messages) / value for key, value in best.items() if value != float("inf")}
            megabytes = sum(map(len, messages)) / 1e6
            print(f"{name}: {len(messages)} messages, {megabytes:.1f} MB (best of {args.rounds} alternating rounds)")
            print(f"  stdlib parse+decode (compat32): {rate['base']:10.0f} messages/s")
            print(f"  email_to_comment (working tree):{rate['ours']:10.0f} messages/s"
                  f"  ({rate['base'] / rate['ours']:.1f}x slower than the stdlib)")
            if other is not None:
                change = rate["ours"] / rate["other"] - 1
                print(f"  email_to_comment ({other.commit:>12s}):{rate['other']:10.0f} messages/s"
                      f"  -> working tree {change:+.1%}{'  REGRESSION > 10%' if change < -0.10 else ''}")
    finally:
        if other is not None:
            other.close()
            os.unlink(handle.name)


if __name__ == "__main__":
    main()
