"""Text hygiene shared by the transform: single-line property values and normalised bodies."""

from __future__ import annotations

import re
import unicodedata

# Unicode's Bidi_Control property, complete (PropList.txt): ALM, LRM, RLM, the embeddings and overrides
# (LRE RLE PDF LRO RLO) and the isolates (LRI RLI FSI PDI).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Characters that are invisible or reorder text: they carry no meaning for an analyst, break
# equality of otherwise equal text, and bidi overrides can disguise content ("Trojan source").
_INVISIBLE = dict.fromkeys(
    map(
        ord,
        "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"  # zero-width, BOM, soft hyphen
        + BIDI_CONTROLS,
    ),
    None,
)
_SPACES = dict.fromkeys(map(ord, "\u00a0\u2007\u202f\u3000\t\u2002\u2003\u2009\u200a"), " ")
# str.translate with a dict is slow on long text; one regex pass each is ~10x faster.
_INVISIBLE_RE = re.compile("[" + "".join(chr(c) for c in _INVISIBLE) + "]")
_SPACES_RE = re.compile("[" + "".join(chr(c) for c in _SPACES) + "]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAKS_RE = re.compile(r"[\r\n\u2028\u2029\x85\x0b\x0c]+")
_MULTI_SPACE_RE = re.compile(r"[ \t]{2,}")
_TRAILING_SPACE_RE = re.compile(r"[ \t]+$", re.MULTILINE)
_MANY_BLANK_LINES_RE = re.compile(r"\n{3,}")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# Gmail's spacer "ᐧ" (U+1427, a Canadian syllabics final) ends signatures and tracking pixels; outside
# syllabics text it is never a letter.
_GMAIL_SPACER_RE = re.compile("(?<![\u1400-\u167f])\u1427(?![\u1400-\u167f])")

DEFAULT_PROPERTY_CHARS = 1024


def single_line(value: str, limit: int = DEFAULT_PROPERTY_CHARS) -> str:
    """A header-derived value made safe for a property: one line, no controls, capped.

    Header injection defence: CR/LF and every other control character are removed (line breaks
    become one space), so a crafted header can never add a line or a field downstream.
    """
    if value.isascii() and value.isprintable() and "  " not in value:
        # The common case (~70 values per message): nothing for the passes below to change.
        value = value.strip()
        return value if len(value) <= limit else value[: max(limit - 1, 0)].rstrip() + "…"
    value = _LINE_BREAKS_RE.sub(" ", value)
    value = _SPACES_RE.sub(" ", _INVISIBLE_RE.sub("", value))
    value = _CONTROL_RE.sub("", value)
    # Lone surrogates (undecodable header bytes smuggled through surrogateescape) are not text.
    value = _SURROGATE_RE.sub("\ufffd", value)
    value = _MULTI_SPACE_RE.sub(" ", value).strip()
    if len(value) > limit:
        value = value[: max(limit - 1, 0)].rstrip() + "…"
    return value


def normalise_body(text: str) -> str:
    """Readable body text: LF line ends, no invisible or control characters, no trailing spaces,
    at most one blank line between paragraphs, no leading/trailing blank lines."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii():  # invisible characters, non-ASCII spaces and surrogates cannot occur
        text = _CONTROL_RE.sub("", text.replace("\t", " "))
    else:
        text = _SPACES_RE.sub(" ", _INVISIBLE_RE.sub("", text))
        text = _CONTROL_RE.sub("", text)
        text = _SURROGATE_RE.sub("\ufffd", text)
        if "\u1427" in text:
            text = _GMAIL_SPACER_RE.sub("", text)
    text = _TRAILING_SPACE_RE.sub("", text)
    text = _MANY_BLANK_LINES_RE.sub("\n\n", text)
    return text.strip("\n").strip()


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)
