"""Backport of CPython 3.13's boundary matcher to the email parser of Python 3.11 and 3.12.

Before 3.13, ``email.feedparser`` compiles a fresh regular expression for every multipart part
it parses (``'(?P<sep>' + re.escape('--' + boundary) + r')(?P<end>--)?...$'``). Boundaries are
unique per message, so ``re``'s cache never hits: ~0.3 ms of regex compilation per multipart,
13% of our whole transform on generated mail. CPython 3.13 replaced it with ``startswith`` plus
one precompiled pattern for the tail (``boundaryendRE``); this module gives the 3.11/3.12 parser
the same matcher, by handing ``email.feedparser`` a ``re`` whose ``compile`` recognises that one
pattern and delegates every other call to the real ``re``.

Same results by construction (the separator is a literal, ``$`` and the groups are unchanged;
the parser only calls ``.match`` and reads the ``end`` and ``linesep`` groups) and by test
(``tests/transform/test_feedparser_boundary.py`` parses the corpus and generated mail both ways).
Nothing is installed on 3.13+, or if the parser does not look as expected.
"""

from __future__ import annotations

import re
import sys
import types
from email import feedparser

_PREFIX = "(?P<sep>"
_TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_BOUNDARY_END_RE = re.compile(_TAIL[1:])  # what 3.13 calls boundaryendRE
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)


class _BoundaryMatcher:
    __slots__ = ("separator",)

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return _BOUNDARY_END_RE.match(line, len(self.separator))


def _compile(pattern: object, flags: int = 0) -> object:
    if flags == 0 and isinstance(pattern, str) and pattern.startswith(_PREFIX) and pattern.endswith(_TAIL):
        escaped = pattern[len(_PREFIX):-len(_TAIL)]
        separator = _UNESCAPE_RE.sub(r"\1", escaped)
        if re.escape(separator) == escaped:  # a literal: exactly what feedparser built
            return _BoundaryMatcher(separator)
    return re.compile(pattern, flags)  # type: ignore[call-overload]


def _shim() -> types.ModuleType:
    module = types.ModuleType("re", "re for email.feedparser, with a cheap boundary compile")
    module.__dict__.update({name: getattr(re, name) for name in dir(re) if not name.startswith("__")})
    module.compile = _compile  # type: ignore[attr-defined]
    return module


def install(parser_module: types.ModuleType = feedparser) -> bool:
    """Give ``email.feedparser`` the 3.13 boundary matcher; True if it was (or already is) installed."""
    if sys.version_info >= (3, 13) or hasattr(parser_module, "boundaryendRE"):
        return False
    if installed(parser_module):
        return True
    if getattr(parser_module, "re", None) is not re:
        return False  # someone else changed it: leave it alone
    parser_module.re = _shim()  # type: ignore[attr-defined]
    return True


def uninstall(parser_module: types.ModuleType = feedparser) -> None:
    if installed(parser_module):
        parser_module.re = re  # type: ignore[attr-defined]


def installed(parser_module: types.ModuleType = feedparser) -> bool:
    return getattr(getattr(parser_module, "re", None), "compile", None) is _compile
