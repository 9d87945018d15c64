"""Golden samples: realistic client output (Outlook desktop/web/mobile, Gmail, Apple Mail, iPhone,
Android, Thunderbird) in en/de/fr/es/nl/it/pt with the exact body and signature expected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exchange_sync.transform import email_to_comment

SAMPLES = Path(__file__).parent / "samples"

CASES = sorted(SAMPLES.glob("*.eml"))


def test_there_are_enough_samples():
    assert len(CASES) >= 15


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_body_and_signature(path):
    expected = json.loads(path.with_suffix(".expected.json").read_text(encoding="utf-8"))
    comment = email_to_comment(path.read_bytes())
    message = comment.message
    assert message.body.text == expected["body"]
    assert (message.signature.text if message.signature else "") == expected["signature"]
    for text in expected["absent_from_body"]:
        assert text not in message.body.text
    if "language" in expected:
        assert message.language == expected["language"]
