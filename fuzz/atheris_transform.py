"""Coverage-guided fuzzing of the transform with atheris (libFuzzer), outside the test suite.

    .venv/bin/pip install -e '.[fuzz]'          # atheris 2.3.0 (cp311 wheel)
    .venv/bin/python fuzz/atheris_transform.py -max_total_time=300 fuzz/corpus   # a fixed time budget

Each input is raw MIME bytes given to ``email_to_comment``. A finding is any exception (the transform
must never raise), an outcome that is neither a Comment nor a Rejection, a comment that does not
re-validate in API form, a property value with a line break or control character, or a result that
differs on a second call (it must be deterministic). Seeds: the golden samples and the real-world
corpus when present (copied into the corpus directory on first run). libFuzzer's ``-rss_limit_mb``
(default 2048) and ``-timeout`` (default 1200 s per input; pass e.g. ``-timeout=20``) catch
blow-ups that the size caps (docs/transform.md) should prevent.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["exchange_sync"]):
    from exchange_sync.comment import Comment
    from exchange_sync.transform import ExchangeMeta, Rejection, email_to_comment

META = ExchangeMeta(mailbox="fuzz@example.com", folder_path="Inbox")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
ROOT = Path(__file__).resolve().parents[1]
SEEDS = [ROOT / "tests" / "transform" / "samples", ROOT.parent / "shared" / "corpus" / "real-world-emails"]


def check(data: bytes) -> None:
    outcome = email_to_comment(data, META)
    if isinstance(outcome, Rejection):
        assert outcome.reason
        return
    assert isinstance(outcome, Comment), type(outcome)
    assert Comment.model_validate(outcome.to_api()) == outcome
    for key, value in outcome.user_properties.items():
        assert not (isinstance(value, str) and CONTROL.search(value)), (key, value)
    assert email_to_comment(data, META) == outcome


def seed(corpus: Path) -> None:
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    for folder in SEEDS:
        if folder.is_dir():
            for i, path in enumerate(sorted(folder.rglob("*.eml"))):
                shutil.copyfile(path, corpus / f"{folder.name}-{i:04d}.eml")


if __name__ == "__main__":
    dirs = [a for a in sys.argv[1:] if not a.startswith("-")]
    if dirs:
        seed(Path(dirs[0]))
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()
