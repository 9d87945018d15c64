"""The 3.13 boundary matcher gives the 3.11/3.12 email parser exactly the same trees."""

from __future__ import annotations

import email
import re
import sys
from email import feedparser
from email.policy import compat32
from pathlib import Path

import pytest

from testserver_core.generate import generate_messages
from exchange_sync.transform import feedparser_boundary

SAMPLES = Path(__file__).parent / "samples"

TRICKY = [
    b"Content-Type: multipart/mixed; boundary=\"a.b*c+d?(e)[f]{g}|h^$\\\\i\"\r\n\r\npre\r\n--a.b*c+d?(e)[f]{g}|h^$\\i\r\n"
    b"Content-Type: text/plain\r\n\r\none\r\n--a.b*c+d?(e)[f]{g}|h^$\\i  \t\r\n\r\ntwo\r\n--a.b*c+d?(e)[f]{g}|h^$\\i--\r\nepi\r\n",
    b"Content-Type: multipart/alternative; boundary=x\n\n--x\n\nA\n--xy\nnot a boundary\n--x--",
    b"Content-Type: multipart/mixed; boundary=\"sp ace\"\r\n\r\n--sp ace\r\n\r\nbody\r\n--sp ace--",
    b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\nempty boundary\r\n----\r\n",
    b"Content-Type: multipart/mixed; boundary=\"nl\\\nx\"\r\n\r\n--nl\nx\r\nbody\r\n",
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\n"
    b"inner\r\n--c--\r\n--b--\r\n",
    b"Content-Type: multipart/mixed; boundary=unterminated\r\n\r\n--unterminated\r\n\r\nno close",
    "Content-Type: multipart/mixed; boundary=\"ünï\"\r\n\r\n--ünï\r\n\r\nx\r\n--ünï--\r\n".encode(),
]


def _tree(message: email.message.Message) -> list:
    out = []
    for part in message.walk():
        payload = part.get_payload()
        out.append((
            part.items(), payload if isinstance(payload, str) else len(payload), part.preamble, part.epilogue,
            [type(d).__name__ for d in part.defects],
        ))
    return out


def _messages(corpus_dir: Path | None) -> list[bytes]:
    found = [p.read_bytes() for p in sorted(SAMPLES.rglob("*")) if p.is_file() and p.suffix in (".eml", "")]
    if corpus_dir is not None:
        found += [p.read_bytes() for p in sorted(corpus_dir.rglob("*")) if p.is_file()]
    found += [m.render() for m in generate_messages(300, seed=11, owner="t@example.com")]
    return found + TRICKY


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.13's parser has the matcher itself")
def test_same_trees_with_and_without_the_matcher(request):
    try:
        corpus = request.getfixturevalue("corpus_dir")
    except pytest.skip.Exception:
        corpus = None
    messages = _messages(corpus)
    assert feedparser_boundary.installed()  # importing the transform installs it
    with_matcher = [_tree(email.message_from_bytes(m, policy=compat32)) for m in messages]
    feedparser_boundary.uninstall()
    try:
        assert not feedparser_boundary.installed()
        without = [_tree(email.message_from_bytes(m, policy=compat32)) for m in messages]
    finally:
        assert feedparser_boundary.install()
    assert len(messages) > 300
    for raw, a, b in zip(messages, with_matcher, without):
        assert a == b, raw[:200]


def test_other_patterns_go_to_the_real_re():
    shim = feedparser.re if feedparser_boundary.installed() else None
    if shim is None:
        pytest.skip("not installed on this Python")
    assert shim.compile(r"(\r\n|\r|\n)").match("\r\n").group(0) == "\r\n"
    assert shim.compile("(?P<sep>--x)(?P<end>--)?", 0).match("--x--")  # not the full form: real re
    assert type(shim.compile("(?P<sep>" + re.escape("--a.b") + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$")).__name__ == (
        "_BoundaryMatcher")


def test_leaves_a_foreign_re_alone():
    import types

    fake = types.ModuleType("fake_feedparser")
    fake.re = types.SimpleNamespace(compile=lambda *a: None)
    if sys.version_info < (3, 13):
        assert feedparser_boundary.install(fake) is False
    assert not feedparser_boundary.installed(fake)
