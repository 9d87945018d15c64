"""The comments page in headless Chromium (Debian's): lists, filters, opens a comment, escapes mail.

Drives ``chromium --headless --dump-dom`` (the DOM after rendering, no extra Python deps).
Skips when chromium is missing unless EXCHANGE_SYNC_REQUIRE_CHROMIUM=1 (CI: `.ci/chromium.sh`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.support.api import ApiUnderTest, running_api
from tests.support.comments import make_comment

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("EXCHANGE_SYNC_REQUIRE_CHROMIUM") == "1":
            pytest.fail("EXCHANGE_SYNC_REQUIRE_CHROMIUM=1 but chromium is not installed (run .ci/chromium.sh)")
        pytest.skip("chromium is not installed (apt-get install chromium, or .ci/chromium.sh)")
    return CHROMIUM


def dump_dom(chromium: str, url: str, profile: Path) -> str:
    result = subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Dom(HTMLParser):
    """Just enough DOM: elements by id / class with their text, and links."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.stack: list[dict] = []
        self.elements: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in ("input", "meta", "br", "img", "link"):
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element["text"] += data

    def by_id(self, ident: str) -> dict:
        matches = [e for e in self.elements if e["attrs"].get("id") == ident]
        assert matches, f"no #{ident}"
        return matches[0]

    def by_class(self, cls: str) -> list[dict]:
        return [e for e in self.elements if cls in (e["attrs"].get("class") or "").split()]


def _load(api: ApiUnderTest) -> ApiUnderTest:
    api.store.sync_comments(
        [
            make_comment(1, mailbox="ap@acme.com", folder="Inbox", sender="Ann <ann@supplier.com>"),
            make_comment(2, mailbox="ap@acme.com", folder="Inbox/Suppliers", sender="Bob <bob@other.org>",
                         subject="<script>alert(1)</script> & <b>bold</b>", body="Line 1\n<img src=x onerror=alert(2)>",
                         attachments=[{"name": "inv<1>.pdf", "size": 48213, "content_type": "application/pdf", "inline": False}]),
            make_comment(3, mailbox="support@acme.com", folder="Archive", sender="Cy <cy@supplier.com>", body="refund please"),
        ],
        source="acme/emails",
    )
    return api


@pytest.fixture
def loaded(api: ApiUnderTest) -> ApiUnderTest:
    return _load(api)


@pytest.fixture
def open_page(db_url: str) -> Iterator[ApiUnderTest]:
    """The page without a token (--no-auth, loopback): the browser cannot sign in with --dump-dom, and
    the token is no longer accepted in the URL."""
    with running_api(db_url, token=None) as api:
        yield _load(api)


def test_page_lists_filters_and_opens_a_comment(open_page: ApiUnderTest, chromium: str, tmp_path: Path) -> None:
    loaded = open_page
    login = f"{loaded.url}/"
    dom = Dom(dump_dom(chromium, login, tmp_path / "p1"))
    rows = dom.by_class("comment")
    assert len(rows) == 3
    assert "3 comments" in dom.by_id("total")["text"]

    filtered = f"{loaded.url}/?{urlencode({'source': 'acme/emails', 'sender_domain': 'supplier.com'})}"
    dom = Dom(dump_dom(chromium, filtered, tmp_path / "p2"))
    assert sorted(r["attrs"]["data-id"] for r in dom.by_class("comment")) == sorted([make_comment(1).id, make_comment(3).id])

    by_text = f"{loaded.url}/?{urlencode({'source': 'acme/emails', 'text': 'REFUND', 'mailbox': 'support@acme.com'})}"
    dom = Dom(dump_dom(chromium, by_text, tmp_path / "p3"))
    assert [r["attrs"]["data-id"] for r in dom.by_class("comment")] == [make_comment(3).id]

    by_folder = f"{loaded.url}/?{urlencode({'source': 'acme/emails', 'folder': 'Inbox', 'since': '2026-11-02T09:02', 'until': '2026-11-03'})}"
    dom = Dom(dump_dom(chromium, by_folder, tmp_path / "p4"))
    assert [r["attrs"]["data-id"] for r in dom.by_class("comment")] == [make_comment(2).id]
    link = dom.by_class("open")[0]["attrs"]["href"]

    view = f"{loaded.url}{link}"
    dom = Dom(dump_dom(chromium, view, tmp_path / "p5"))
    # Mail markup is shown as text, never executed or rendered as elements.
    assert dom.by_id("subject")["text"] == "<script>alert(1)</script> & <b>bold</b>"
    assert not [e for e in dom.elements if e["tag"] in ("script", "img", "b")]
    assert "<img src=x onerror=alert(2)>" in dom.by_class("body")[0]["text"]
    assert "Accounts Payable" in dom.by_class("signature")[0]["text"]
    properties = dom.by_id("properties")["text"]
    assert "string:Folder" in properties and "Inbox/Suppliers" in properties
    assert "inv<1>.pdf" in dom.by_id("attachments")["text"]


def test_page_requires_the_token(loaded: ApiUnderTest, chromium: str, tmp_path: Path) -> None:
    dom = Dom(dump_dom(chromium, f"{loaded.url}/", tmp_path / "a"))
    assert dom.by_id("login")["tag"] == "form" and not dom.by_class("comment")
    dom = Dom(dump_dom(chromium, f"{loaded.url}/?{urlencode({'token': loaded.token})}", tmp_path / "b"))
    assert "not accepted in the address" in dom.by_id("error")["text"] and not dom.by_class("comment")
