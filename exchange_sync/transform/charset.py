"""Bytes to text for mail: declared, unknown and mislabelled charsets, never an exception.

Real mailboxes hold labels Python does not know (``ks_c_5601-1987``, ``x-unknown``, ``cp-850``),
labels that lie (``iso-8859-1`` on UTF-8 bytes, ``us-ascii`` on cp1252 bytes) and no label at all.
The rule, cheapest first:

1. pure ASCII bytes in an ASCII-compatible charset are ASCII (the common case, no decoding work);
2. a single-byte Western label (ascii, latin-1, cp1252, iso-8859-15) on bytes that are valid UTF-8
   is taken as UTF-8: valid multi-byte UTF-8 sequences almost never occur by chance in Latin text,
   while UTF-8 mislabelled as Latin-1 is one of the commonest faults in the wild;
3. the declared charset (through an alias table of the labels mail clients really send), strictly;
4. UTF-8, strictly;
5. for an unknown or absent label, charset-normalizer's best guess when there are enough 8-bit
   bytes to guess from (rare: only non-UTF-8 bytes with no usable label get here), else cp1252 where bytes cp1252 leaves undefined fall back to Latin-1,
   so every byte becomes a character and nothing is dropped.
"""

from __future__ import annotations

import codecs
from functools import lru_cache

# Labels seen in real mail that Python's codec registry does not resolve, or resolves to a
# narrower charset than the sender's software really used (Windows/Outlook send the superset).
_ALIASES: dict[str, str | None] = {
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "euc-kr": "cp949",
    "x-windows-949": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cn-gb": "gb18030",
    "euc-cn": "gb18030",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-8-i": "iso8859_8",
    "iso-8859-6-i": "iso8859_6",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
    "x-utf-8": "utf-8",
    "utf-8-sig": "utf-8",
    # 8-bit bytes under an ASCII label come from Western Windows software (or are UTF-8, which
    # the Western rule tries first).
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "646": "cp1252",
    # Labels that say nothing: decode by inspection.
    "x-unknown": None,
    "unknown": None,
    "unknown-8bit": None,
    "x-user-defined": None,
    "default": None,
    "charset": None,
    "none": None,
    "": None,
}

# Codecs whose ASCII-only byte strings are not plain ASCII text (escape-sequence encodings).
_SEVEN_BIT_STATEFUL = ("utf_7", "iso2022", "hz")
# Single-byte Western codecs that are commonly put on UTF-8 bytes by mistake.
_WESTERN = ("cp1252", "latin_1", "iso8859_15", "iso8859_1", "ascii")
_MIN_GUESS_BYTES = 32


def _latin1_fallback(error: UnicodeError) -> tuple[str, int]:
    # cp1252 leaves 0x81, 0x8D, 0x8F, 0x90, 0x9D undefined; map them like Latin-1 instead of failing.
    assert isinstance(error, UnicodeDecodeError)
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error("exchange_sync_latin1", _latin1_fallback)


@lru_cache(maxsize=512)
def resolve_charset(label: str | None) -> str | None:
    """The Python codec name for a MIME charset label, or None when the label tells nothing usable."""
    if label is None:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if "*" in name:  # RFC 2231 language suffix: utf-8*en
        name = name.split("*", 1)[0]
    if name in _ALIASES:
        return _ALIASES[name]
    candidates = [name, name.replace("_", "-"), name.replace("-", ""), name.replace("-", "_")]
    if name.startswith(("cp-", "cp_")):
        candidates.append("cp" + name[3:])
    if name.startswith("x-"):
        candidates.append(name[2:])
    for candidate in candidates:
        if candidate in _ALIASES:
            return _ALIASES[candidate]
        try:
            codec = codecs.lookup(candidate)
        except (LookupError, ValueError):
            continue
        if not getattr(codec, "_is_text_encoding", True):  # rot13, base64_codec, ...
            return None
        if codec.name in ("latin-1", "iso8859-1"):
            return "cp1252"
        return codec.name
    return None


def _is_western(codec: str) -> bool:
    return codec.replace("-", "_") in _WESTERN


def _is_stateful_7bit(codec: str) -> bool:
    normalised = codec.replace("-", "_")
    return normalised.startswith(_SEVEN_BIT_STATEFUL)


def _guess(data: bytes) -> str | None:
    # Only reached for non-UTF-8 bytes without a usable label; charset-normalizer is slow, so late.
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:65536]).best()
    except Exception:  # noqa: BLE001 - a detector failure must never lose the message
        return None
    if best is None or best.encoding is None:
        return None
    return resolve_charset(best.encoding)


def decode_bytes(data: bytes, label: str | None = None) -> str:
    """Decode ``data`` declared as ``label``; always returns text, never raises."""
    if not data:
        return ""
    codec = resolve_charset(label)
    if data.isascii() and (codec is None or not _is_stateful_7bit(codec)):
        return data.decode("ascii")
    if codec is None or _is_western(codec):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if codec is not None:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            pass
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    elif sum(1 for byte in data[:4096] if byte > 0x7F) >= _MIN_GUESS_BYTES:
        # Detectors guess wildly on a handful of bytes; below that, cp1252 is the better bet.
        guessed = _guess(data)
        if guessed is not None:
            try:
                return data.decode(guessed)
            except (UnicodeDecodeError, LookupError):
                pass
    if codec is not None and not _is_western(codec):
        try:
            return data.decode(codec, errors="replace")
        except LookupError:
            pass
    return data.decode("cp1252", errors="exchange_sync_latin1")
