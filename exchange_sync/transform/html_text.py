"""HTML mail to readable text, cutting quoted history and signatures *structurally* first.

Mail clients mark what they quote and where signatures are: Gmail (``div.gmail_quote``,
``div.gmail_signature``), Outlook desktop (a ``border-top`` div starting ``From:``, the
``_MailAutoSig`` bookmark, ``div.OutlookMessageHeader``), Outlook on the web and new Outlook
(``#appendonsend``, ``#divRplyFwdMsg``, ``#Signature``), Apple Mail and Thunderbird
(``blockquote[type=cite]``, ``.moz-cite-prefix``, ``.moz-signature``), Yahoo (``.yahoo_quoted``).
Cutting the tree is exact where text heuristics have to guess, so it runs before conversion;
the text rules in ``quotes``/``signature`` still run on the result for what is not marked.

Conversion is inscriptis (layout-aware: paragraphs, lists, tables; ignores script/style) over the
lxml tree we already have; links are rendered ``text <url>`` like Outlook's own plain text.
See docs/transform.md for the comparison with html2text, selectolax and BeautifulSoup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.html
from lxml import etree

_DROP_TAGS = ("script", "style", "head", "title", "meta", "noscript", "template", "object", "xml")

# Quote containers, as XPath (lxml has no CSS without cssselect). Order does not matter: the
# first in document order wins.
_QUOTE_XPATH = " | ".join(
    [
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]",
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote_container ')]",
        "//blockquote[contains(concat(' ', normalize-space(@class), ' '), ' gmail_quote ')]",
        "//*[@id='appendonsend']",
        "//*[@id='divRplyFwdMsg']",
        "//*[@id='mail-editor-reference-message-container']",
        "//*[@id='OLK_SRC_BODY_SECTION']",
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' OutlookMessageHeader ')]",
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' moz-cite-prefix ')]",
        "//blockquote[translate(@type, 'CITE', 'cite')='cite']",
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' yahoo_quoted ')]",
        "//*[starts-with(@id, 'yahoo_quoted')]",
        "//hr[@id='zwchr']",
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' protonmail_quote ')]",
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' zmail_extra ')]",
        "//hr[@id='stopSpelling']",
    ]
)
_SIGNATURE_XPATH = " | ".join(
    [
        "//*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_signature ')]",
        "//*[@data-smartmail='gmail_signature']",
        "//*[contains(concat(' ', normalize-space(@class), ' '), ' moz-signature ')]",
        "//*[@id='Signature']",
        "//*[@id='signature']",
        "//*[@id='ms-outlook-mobile-signature']",
        "//*[@id='AppleMailSignature']",
        "//*[contains(concat(' ', normalize-space(@class), ' '), ' protonmail_signature_block ')]",
        "//*[@id='ymail_android_signature']",
        "//*[@id='composer_signature']",
    ]
)
_HEADER_START_RE = re.compile(
    r"^\W{0,3}(from|von|de|van|da|fra|från|od|lähettäjä|feladó|от|from\s*:)\s*:", re.IGNORECASE
)


QUOTE_MARK = "\ue000"  # private-use characters: never meaningful in mail, stripped from input
SIGNATURE_MARK = "\ue001"
BLOCKQUOTE_MARK = "\ue002"  # before a bare <blockquote>: its lines are quoted ("> ") in the text
BLOCKQUOTE_END_MARK = "\ue003"


@dataclass
class HtmlText:
    text: str  # the new text (quotes and marked signature cut)
    signature: str | None  # text of a marked signature container, if any
    quote_cut: bool  # a quote container was found
    quoted: str  # the text from the quote container on (for pure forwards)
    truncated: bool = False  # the parser still stopped early (nesting past every cap): text was lost


# Nesting (docs/transform.md, "Size caps"). libxml2 stops parsing at 256 levels (2,048 with
# ``huge_tree``) and drops everything from there on, and inscriptis recurses once per level: elements
# deeper than MAX_TREE_DEPTH are unwrapped (their text kept, blocks become line breaks) before conversion.
# Markup deeper than libxml2 takes is flattened as text first (``_cap_nesting``).
MAX_TREE_DEPTH = 200
_VOID_TAGS = frozenset({
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input", "keygen",
    "link", "meta", "param", "source", "track", "wbr",
})
_RAW_TEXT_TAGS = frozenset(("script", "style"))
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "caption", "center", "dd", "details", "dialog", "dir",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hgroup", "hr", "li", "main", "menu", "nav", "ol", "p", "pre", "section", "summary",
    "table", "tbody", "tfoot", "thead", "tr", "ul",
})
_CELL_TAGS = frozenset(("td", "th"))
# An opening tag of these closes an open sibling of its family (the implied end tags of HTML).
_FAMILIES = {
    "p": "p", "li": "li", "dt": "d", "dd": "d", "tr": "tr", "td": "c", "th": "c",
    "option": "option", "thead": "t", "tbody": "t", "tfoot": "t",
}
# A tag never spans a "<" (not even in a quoted value): no match looks past the next one, so the scan
# is linear.
_TAG_RE = re.compile(
    r"<!--.*?(?:-->|\Z)|<(/?)([A-Za-z][^\s/<>]*)(?:[^<>\"']|\"[^\"<]*\"|'[^'<]*')*>", re.DOTALL
)
_RAW_END_RE = {tag: re.compile(rf"</{tag}\s*>", re.IGNORECASE) for tag in _RAW_TEXT_TAGS}
# The elements one level above the cap (<html> is level 1): only their <br>s are deeper.
_FLOOR_XPATH = etree.XPath("/*" * (MAX_TREE_DEPTH - 1))


@dataclass
class ParsedHtml:
    root: lxml.html.HtmlElement | None
    truncated: bool  # libxml2 still stopped early (a resource limit): text after that point is lost


def parse_html(html: str) -> lxml.html.HtmlElement | None:
    root = _parse(html).root
    if root is not None:
        _flatten_deep(root)
    return root


def _parse(html: str) -> ParsedHtml:
    if not html or not html.strip():
        return ParsedHtml(None, False)
    root, limited = _parse_once(html)
    if limited:
        # Deeper than libxml2 takes even with huge_tree: cap the nesting in the markup and parse again.
        root, limited = _parse_once(_cap_nesting(html, MAX_TREE_DEPTH))
    return ParsedHtml(root, limited and root is not None)


def _parse_once(html: str) -> tuple[lxml.html.HtmlElement | None, bool]:
    try:
        # huge_tree lifts the depth limit from 256 to 2,048 levels; the other limits it lifts (text node
        # size) are bounded by build.MAX_HTML_CHARS.
        parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True, huge_tree=True)
        data = html.encode("utf-8", "replace")
        root = lxml.html.document_fromstring(data, parser=parser)
    except (etree.ParserError, ValueError, TypeError):
        return None, False
    limited = any(entry.type_name == "ERR_RESOURCE_LIMIT" for entry in parser.error_log)
    return root, limited


def _cap_nesting(html: str, limit: int) -> str:
    """``html`` without the tags that would nest deeper than ``limit`` (their text stays).

    One linear scan of the markup with HTML's implied end tags approximated; only used when libxml2
    refused the document. Removed block tags become one ``<br>`` per run and cells a space, so the text
    around them stays apart.
    """
    out: list[str] = []
    stack: list[tuple[str, bool]] = []  # open elements: (tag, kept)
    position = 0  # html[:position] is in ``out``
    scan = 0
    broke = False  # a <br> stands for removed tags and nothing but space came after it
    while (match := _TAG_RE.search(html, scan)) is not None:
        scan = match.end()
        closing, name = match.group(1), match.group(2)
        if name is None:
            continue  # a comment, left as written (the parser removes it)
        tag = name.lower()
        if closing:
            keep = len(stack) < limit  # a stray end tag
            for index in range(len(stack) - 1, max(len(stack) - 33, -1), -1):
                if stack[index][0] == tag:
                    keep = stack[index][1]
                    del stack[index:]
                    break
        elif tag in _VOID_TAGS:
            keep = True  # no content, no depth
        else:
            top = stack[-1][0] if stack else None
            family = _FAMILIES.get(tag)
            same_family = family is not None and _FAMILIES.get(top) == family
            if top is not None and (same_family or (top == "p" and tag in _BLOCK_TAGS)):
                stack.pop()  # an implied end tag
            keep = len(stack) < limit
            if tag in _RAW_TEXT_TAGS:
                # Script and style hold no tags: their content goes (or stays) with the start tag.
                end = _RAW_END_RE[tag].search(html, scan)
                scan = end.end() if end else len(html)
                if not keep:
                    out.append(html[position : match.start()])
                    position = scan
                continue
            stack.append((tag, keep))
        if keep:
            continue
        between = html[position : match.start()]
        out.append(between)
        position = match.end()
        if between.strip():
            broke = False
        if tag in _BLOCK_TAGS and not broke:
            out.append("<br>")
            broke = True
        elif tag in _CELL_TAGS:
            out.append(" ")
    out.append(html[position:])
    return "".join(out)


def _flatten_deep(root: lxml.html.HtmlElement) -> None:
    """Unwrap every element deeper than MAX_TREE_DEPTH: the text stays in order in its ancestor one level
    up, block boundaries become one ``<br>`` (cells a space)."""
    for floor in _FLOOR_XPATH(root):
        if not len(floor):
            continue
        runs: list[list[str]] = [[]]
        for event, element in etree.iterwalk(floor, events=("start", "end")):
            if element is floor:
                continue
            tag = element.tag if isinstance(element.tag, str) else ""
            if tag in _BLOCK_TAGS or tag == "br":
                if event == "start" or tag != "br":
                    runs.append([])
            elif tag in _CELL_TAGS:
                runs[-1].append(" ")
            text = element.text if event == "start" else element.tail
            if text:
                runs[-1].append(text)
        for child in list(floor):
            floor.remove(child)
        floor.text = (floor.text or "") + "".join(runs[0])
        for run in runs[1:]:
            text = "".join(run)
            if text.strip():
                etree.SubElement(floor, "br").tail = text


def _clean(root: lxml.html.HtmlElement) -> None:
    for element in list(root.iter(*_DROP_TAGS)):
        _drop(element)
    # Namespaced Office tags (o:p, v:shape...) parse as plain tags; they hold no text worth keeping
    # except o:p, which only carries spacing.
    # Word's HTML (Outlook desktop) styles p.MsoNormal with margin:0: rendered as lines, not paragraphs.
    for paragraph in root.iter("p"):
        if "msonormal" in (paragraph.get("class") or "").lower():
            if not paragraph.text_content().replace("\xa0", " ").strip() and not len(paragraph.xpath(".//img")):
                # Word's empty paragraph (<o:p>&nbsp;</o:p>) is its blank line.
                tail = paragraph.tail
                paragraph.clear()
                paragraph.tail = tail
                paragraph.tag = "br"
            else:
                paragraph.tag = "div"
    for anchor in root.iter("a"):
        href = (anchor.get("href") or "").strip()
        if not href.lower().startswith(("http://", "https://")):
            continue
        label = anchor.text_content().strip()
        if not label or label == href or href.rstrip("/") == label.rstrip("/") or len(href) > 2000:
            continue
        if label.lower().startswith(("http://", "https://", "www.")):
            continue
        anchor.tail = f" <{href}>" + (anchor.tail or "")


def _drop(element: lxml.html.HtmlElement) -> None:
    """Remove an element and its content but keep its tail text (which belongs to the parent)."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    previous = element.getprevious()
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def _order(root: lxml.html.HtmlElement) -> dict:
    return {element: index for index, element in enumerate(root.iter())}


def _outlook_header_divs(root: lxml.html.HtmlElement) -> list:
    # Outlook desktop: <div style="border:none;border-top:solid #E1E1E1 1.0pt;..."><p><b>From:</b> ...
    found = []
    for div in root.iter("div"):
        style = (div.get("style") or "").lower().replace(" ", "")
        if "border-top:solid" in style or "border-top:1pxsolid" in style or "border-top:" in style:
            text = div.text_content().strip()[:40]
            if _HEADER_START_RE.match(text):
                found.append(div)
    return found


def _first_quote(root: lxml.html.HtmlElement) -> lxml.html.HtmlElement | None:
    candidates = list(root.xpath(_QUOTE_XPATH)) + _outlook_header_divs(root)
    if not candidates:
        return None
    order = _order(root)
    first = min(candidates, key=lambda element: order.get(element, 1 << 30))
    # OWA puts <hr> (and #appendonsend) right before #divRplyFwdMsg: cut the separator too.
    previous = first.getprevious()
    if previous is not None and previous.tag == "hr":
        return previous
    return first


def _signature(root: lxml.html.HtmlElement, before: lxml.html.HtmlElement | None) -> str | None:
    """Text of the marked signature containers (which are removed); the Outlook bookmark is marked.

    Only elements before the quote (``before``) count: signatures inside the quoted part belong
    to the quoted author.
    """
    order = _order(root)
    limit = order.get(before, 1 << 30) if before is not None else 1 << 30
    texts = []
    for element in root.xpath(_SIGNATURE_XPATH):
        if order.get(element, 1 << 30) >= limit or not _attached(element):
            continue  # in the quote, or inside a signature element removed already
        texts.append(to_text(element))
        _drop(element)
    for prefix in root.xpath("//*[contains(concat(' ', normalize-space(@class), ' '), ' gmail_signature_prefix ')]"):
        _drop(prefix)
    # Outlook desktop marks its auto-signature with a bookmark; the signature runs from its block
    # to the end of the new text: a marker is placed there and the text is split after conversion.
    anchors = [a for a in root.xpath("//a[@name='_MailAutoSig']") if order.get(a, 1 << 30) < limit]
    if anchors:
        block = anchors[0]
        while block.tag not in ("p", "div", "table", "li") and block.getparent() is not None:
            if block.getparent().tag == "body":
                break
            block = block.getparent()
        _mark_before(block, SIGNATURE_MARK)
    texts = [text.strip() for text in texts if text.strip()]
    return "\n".join(texts) if texts else None


def _attached(element: lxml.html.HtmlElement) -> bool:
    node = element
    while node is not None:
        if node.tag == "html":
            return True
        node = node.getparent()
    return False


def _mark_before(element: lxml.html.HtmlElement, mark: str) -> None:
    marker = lxml.html.Element("div")
    marker.text = mark
    element.addprevious(marker)


def to_text(element: lxml.html.HtmlElement) -> str:
    from inscriptis import Inscriptis

    try:
        text = Inscriptis(element, _config()).get_text()
    except Exception:  # noqa: BLE001 - fall back to raw text rather than lose the body
        text = element.text_content()
    # inscriptis indents nested blocks; mail clients render them flush left.
    return "\n".join(line.strip() for line in text.splitlines())


_CONFIG = None


def _config():
    global _CONFIG
    if _CONFIG is None:
        from inscriptis.css_profiles import CSS_PROFILES
        from inscriptis.model.config import ParserConfig

        _CONFIG = ParserConfig(css=CSS_PROFILES["strict"].copy(), display_links=False)
    return _CONFIG


def _is_bare_blockquote(element: lxml.html.HtmlElement) -> bool:
    """A ``<blockquote>`` that no client marked as its quote container (those are cut structurally), not
    inside another one, and not Gmail's indent formatting (``border:none``): it quotes, like ``>``."""
    if (element.get("type") or "").lower() == "cite" or "gmail_quote" in (element.get("class") or ""):
        return False
    if "border:none" in (element.get("style") or "").lower().replace(" ", ""):
        return False
    parent = element.getparent()
    while parent is not None:
        if parent.tag == "blockquote":
            return False
        parent = parent.getparent()
    return True


def _mark_blockquote(element: lxml.html.HtmlElement) -> None:
    _mark_before(element, BLOCKQUOTE_MARK)
    end = lxml.html.Element("div")
    end.text = BLOCKQUOTE_END_MARK
    end.tail, element.tail = element.tail, None  # text after the blockquote is not inside it
    element.addnext(end)


def _quote_blockquote_lines(text: str) -> str:
    """Lines between a bare blockquote's markers get the ``> `` of plain-text quoting, so the text rules
    treat an HTML quote like a plain one (attribution above it, trailing quote, inline replies)."""
    out = []
    depth = 0
    for line in text.split("\n"):
        opened, closed = line.count(BLOCKQUOTE_MARK), line.count(BLOCKQUOTE_END_MARK)
        bare = line.replace(BLOCKQUOTE_MARK, "").replace(BLOCKQUOTE_END_MARK, "")
        if (opened or closed) and not bare.strip():
            depth = max(0, depth + opened - closed)
            continue  # a marker's own line
        inside = depth > 0 or opened
        depth = max(0, depth + opened - closed)
        out.append(f"> {bare}".rstrip() if inside and bare.strip() else bare)
    return "\n".join(out)


def html_to_text(html: str) -> HtmlText:
    """Convert an HTML body; quote containers and marked signatures are found in the tree first.

    Cuts are made by placing private-use marker characters in the tree and splitting the one
    converted text at them, so the quoted part stays available (pure forwards need it).
    """
    for mark in (QUOTE_MARK, SIGNATURE_MARK, BLOCKQUOTE_MARK, BLOCKQUOTE_END_MARK):
        html = html.replace(mark, "")
    parsed = _parse(html)
    root = parsed.root
    if root is None:
        return HtmlText(text="", signature=None, quote_cut=False, quoted="")
    _clean(root)  # before flattening: links deep down keep their address
    _flatten_deep(root)
    first = _first_quote(root)
    if first is not None:
        _mark_before(first, QUOTE_MARK)
    # Signature containers inside the quoted part belong to the quoted author: only look before it.
    signature = _signature(root, before=first)
    bare = [element for element in root.iter("blockquote") if _is_bare_blockquote(element)]
    for element in bare:
        _mark_blockquote(element)
    body = root.find("body")
    text = to_text(body if body is not None else root)
    if bare:
        text = _quote_blockquote_lines(text)
    new, _, quoted = text.partition(QUOTE_MARK)
    new, _, marked_signature = new.partition(SIGNATURE_MARK)
    signatures = [part.strip() for part in (marked_signature, signature or "") if part and part.strip()]
    return HtmlText(
        text=new,
        signature="\n".join(signatures) if signatures else None,
        quote_cut=first is not None,
        quoted=quoted.replace(SIGNATURE_MARK, ""),
        truncated=parsed.truncated,
    )
