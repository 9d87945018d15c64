"""HTML nested past libxml2's depth limit (256 levels, 2,048 with huge_tree) keeps its text (issue #17)."""

from __future__ import annotations

import pytest

from exchange_sync.transform import email_to_comment, html_text
from exchange_sync.transform.html_text import MAX_TREE_DEPTH, html_to_text, parse_html


def _nested(tag: str, depth: int, closed: bool) -> str:
    inner = f"<{tag}>" * depth + "<p>INSIDE words</p>" + (f"</{tag}>" * depth if closed else "")
    return f"<html><body><p>BEFORE words</p>{inner}<p>AFTER words</p></body></html>"


def _html_mail(html: str) -> bytes:
    head = (
        "From: Ann Smith <ann@acme.example>\r\nTo: bob@beta.example\r\nSubject: Deep\r\n"
        "Date: Mon, 2 Nov 2026 09:14:03 +0100\r\nMessage-ID: <deep@acme.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    )
    return head.encode() + html.encode()


def _depth(root) -> int:
    return max(sum(1 for _ in element.iterancestors()) + 1 for element in root.iter())


@pytest.mark.parametrize("depth", [300, 1_000, 100_000])
@pytest.mark.parametrize("tag", ["div", "blockquote", "span"])
@pytest.mark.parametrize("closed", [True, False], ids=["closed", "unclosed"])
def test_text_before_inside_and_after_deep_nesting_survives(tag, depth, closed):
    result = html_to_text(_nested(tag, depth, closed))
    text = result.text
    assert "BEFORE words" in text and "INSIDE words" in text and "AFTER words" in text
    # The words stay apart, in order, and nothing was lost: no flag.
    assert text.index("BEFORE") < text.index("INSIDE") < text.index("AFTER")
    assert not result.truncated


@pytest.mark.parametrize("depth", [300, 1_000, 3_000])
def test_deep_trees_are_flattened_to_the_cap(depth):
    root = parse_html(_nested("div", depth, closed=True))
    assert _depth(root) <= MAX_TREE_DEPTH
    assert "INSIDE words" in root.text_content() and "AFTER words" in root.text_content()


@pytest.mark.parametrize("depth", [300, 1_000, 100_000])
def test_deep_nesting_in_a_message_keeps_the_text(depth):
    comment = email_to_comment(_html_mail(_nested("div", depth, closed=False)))
    body = comment.message.body.text
    assert "BEFORE words" in body and "INSIDE words" in body and "AFTER words" in body
    assert "string:Truncated" not in comment.user_properties


def test_deep_blockquotes_are_still_quoted():
    html = "<html><body><p>My answer</p>" + "<blockquote>" * 1000 + "<p>old text</p>" + "</blockquote>" * 1000
    html += "<p>More of my answer</p></body></html>"
    text = html_to_text(html).text
    assert "> old text" in text
    assert "\nMy answer" in "\n" + text and "\nMore of my answer" in "\n" + text


def test_a_normal_blockquote_is_still_quoted():
    html = (
        "<html><body><div>Sounds good, see you then.</div><div>On Mon, 2 Nov 2026, Bob wrote:</div>"
        "<blockquote>Shall we meet at ten?</blockquote></body></html>"
    )
    text = html_to_text(html).text
    assert "> Shall we meet at ten?" in text
    comment = email_to_comment(_html_mail(html))
    assert comment.message.body.text == "Sounds good, see you then."
    assert comment.user_properties.get("string:Quoted History")


@pytest.mark.parametrize("depth", [1_000, 5_000])  # flattened in the tree; capped in the markup first
def test_content_deep_down_reads_as_usual(depth):
    html = (
        "<html><head><style>p {color: red}</style></head><body><p>BEFORE</p>" + "<div>" * depth
        + '<a href="https://x.example/a?b=1&amp;c=2" title="1 > 0">link text</a> &amp; more'
        + "<script>var s = '<div>';</script><table><tr><td>cell one<td>cell two</table>"
        + "</div>" * depth + "<p>AFTER</p></body></html>"
    )
    text = html_to_text(html).text
    assert "link text" in text and "& more" in text and "cell one cell two" in text and "AFTER" in text
    assert "color" not in text and "var s" not in text and "<div>" not in text
    if depth < 2048:  # the tree still has the link when it is flattened
        assert "link text <https://x.example/a?b=1&c=2>" in text


def test_text_the_parser_still_drops_is_marked_truncated(monkeypatch):
    # Were the markup cap ever to miss, libxml2 stops at 2,048 levels: what follows is lost, and said.
    monkeypatch.setattr(html_text, "_cap_nesting", lambda html, limit: html)
    html = _nested("div", 3_000, closed=True)
    assert html_to_text(html).truncated
    comment = email_to_comment(_html_mail(html))
    assert comment.user_properties["string:Truncated"] == "true"
    assert "BEFORE words" in comment.message.body.text
