"""The comment model: ids, timestamps, property keys and the truncation marker."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from exchange_sync.comment import MAX_TEXT_CHARS, Comment, message_id_to_comment_id, truncate_text


def _comment(**kw):
    data = {"id": "ab", "timestamp": "2024-01-01T00:00:00Z", "messages": [{"body": {"text": "hi"}}]}
    data.update(kw)
    return Comment.model_validate(data)


def test_message_id_hex_keeps_brackets_and_strips_whitespace() -> None:
    assert message_id_to_comment_id("  <a@b>\t") == b"<a@b>".hex()
    assert message_id_to_comment_id("<é@b>") == "<é@b>".encode().hex()


def test_api_form_uses_from_and_utc() -> None:
    c = _comment(timestamp="2024-01-01T02:00:00+02:00", messages=[{"from": "A <a@b.c>", "body": {"text": "x"}}])
    api = c.to_api()
    assert api["timestamp"] == "2024-01-01T00:00:00Z"
    assert api["messages"][0]["from"] == "A <a@b.c>"


@pytest.mark.parametrize(
    "kw",
    [
        {"id": "AB"},
        {"id": "not-hex"},
        {"timestamp": "2024-01-01T00:00:00"},
        {"timestamp": "0001-01-01T00:00:00+05:00"},
        {"user_properties": {"Folder": "Inbox"}},
        {"user_properties": {"string:Folder": 3}},
        {"user_properties": {"number:Attachments": "3"}},
        {"user_properties": {"number:Flag": True}},
        {"messages": []},
        {"messages": [{"body": {"text": "x" * (MAX_TEXT_CHARS + 1)}}]},
        {"messages": [{"from": "x" * 513, "body": {"text": "x"}}]},
        {"messages": [{"language": "toolonglang", "body": {"text": "x"}}]},
    ],
)
def test_invalid_comments_are_refused(kw) -> None:
    with pytest.raises(ValidationError):
        _comment(**kw)


def test_truncation_marker_fits_the_limit_and_says_how_much() -> None:
    text = "y" * (MAX_TEXT_CHARS * 2)
    cut = truncate_text(text)
    assert len(cut) <= MAX_TEXT_CHARS
    dropped = len(text) - cut.index("\n[... truncated")
    assert cut.endswith(f"{dropped} characters removed]")
    assert truncate_text("short") == "short"
