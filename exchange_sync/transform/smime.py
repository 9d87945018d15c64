"""Just enough BER to take the signed content out of an opaque S/MIME ``signed-data`` blob.

Outlook often signs "opaquely": the whole inner MIME entity sits inside an
``application/pkcs7-mime; smime-type=signed-data`` part. Verifying the signature is not our job
(we only read the text), so a small DER/BER walk to ``encapContentInfo.eContent`` suffices and
avoids a cryptography dependency. Encrypted (``enveloped-data``) blobs are recognised, never opened.
"""

from __future__ import annotations

_OID_SIGNED_DATA = bytes.fromhex("2a864886f70d010702")  # 1.2.840.113549.1.7.2
_OID_ENVELOPED_DATA = bytes.fromhex("2a864886f70d010703")  # 1.2.840.113549.1.7.3
_OID_AUTH_ENVELOPED = bytes.fromhex("2a864886f70d0109100117")  # 1.2.840.113549.1.9.16.1.23
_MAX_DEPTH = 16


class BerError(ValueError):
    pass


def _header(data: bytes, pos: int) -> tuple[int, bool, int | None, int]:
    """(tag byte, constructed, length or None for indefinite, content offset)."""
    if pos + 2 > len(data):
        raise BerError("truncated")
    tag = data[pos]
    constructed = bool(tag & 0x20)
    if tag & 0x1F == 0x1F:
        raise BerError("high tag numbers are not used by CMS")
    first = data[pos + 1]
    pos += 2
    if first < 0x80:
        return tag, constructed, first, pos
    count = first & 0x7F
    if count == 0:
        return tag, constructed, None, pos
    if count > 8 or pos + count > len(data):
        raise BerError("bad length")
    length = int.from_bytes(data[pos : pos + count], "big")
    return tag, constructed, length, pos + count


def _children(data: bytes, start: int, end: int | None, depth: int) -> list[tuple[int, bool, int, int]]:
    """Child TLVs as (tag, constructed, content start, content end) within a constructed value."""
    if depth > _MAX_DEPTH:
        raise BerError("too deep")
    out = []
    pos = start
    limit = len(data) if end is None else end
    while pos < limit:
        if end is None and data[pos : pos + 2] == b"\x00\x00":
            return out
        tag, constructed, length, content = _header(data, pos)
        if length is None:
            if not constructed:
                raise BerError("indefinite primitive")
            stop = _find_eoc(data, content, depth + 1)
            out.append((tag, constructed, content, stop - 2))
            pos = stop
        else:
            content_end = content + length
            if content_end > limit:
                raise BerError("overrun")
            out.append((tag, constructed, content, content_end))
            pos = content_end
    if end is None:
        raise BerError("missing end-of-contents")
    return out


def _find_eoc(data: bytes, start: int, depth: int) -> int:
    """Offset just after the end-of-contents that closes an indefinite value starting at ``start``."""
    if depth > _MAX_DEPTH:
        raise BerError("too deep")
    pos = start
    while pos < len(data):
        if data[pos : pos + 2] == b"\x00\x00":
            return pos + 2
        tag, constructed, length, content = _header(data, pos)
        pos = _find_eoc(data, content, depth + 1) if length is None else content + length
    raise BerError("missing end-of-contents")


def _octets(data: bytes, tag: int, constructed: bool, start: int, end: int, depth: int) -> bytes:
    """An OCTET STRING's bytes, also when BER splits it into constructed segments."""
    if not constructed:
        return data[start:end]
    parts = []
    for ctag, cconstructed, cstart, cend in _children(data, start, end, depth + 1):
        parts.append(_octets(data, ctag, cconstructed, cstart, cend, depth + 1))
    return b"".join(parts)


def content_kind(blob: bytes) -> str | None:
    """'signed', 'encrypted' or None for a CMS ContentInfo."""
    try:
        tag, constructed, length, content = _header(blob, 0)
        if tag != 0x30:
            return None
        oid_tag, _, oid_len, oid_start = _header(blob, content)
        if oid_tag != 0x06 or oid_len is None:
            return None
        oid = blob[oid_start : oid_start + oid_len]
    except BerError:
        return None
    if oid == _OID_SIGNED_DATA:
        return "signed"
    if oid in (_OID_ENVELOPED_DATA, _OID_AUTH_ENVELOPED):
        return "encrypted"
    return None


def signed_content(blob: bytes) -> bytes | None:
    """The encapsulated content of a CMS SignedData, or None if it is absent (detached) or unreadable."""
    try:
        tag, constructed, length, content = _header(blob, 0)
        end = None if length is None else content + length
        info = _children(blob, content, end, 0)
        if len(info) < 2 or blob[info[0][2] : info[0][3]] != _OID_SIGNED_DATA:
            return None
        # [0] EXPLICIT SignedData
        explicit = _children(blob, info[1][2], info[1][3], 1)
        signed = _children(blob, explicit[0][2], explicit[0][3], 2)
        # version, digestAlgorithms, encapContentInfo, ...
        encap = _children(blob, signed[2][2], signed[2][3], 3)
        if len(encap) < 2:
            return None
        econtent_wrapper = _children(blob, encap[1][2], encap[1][3], 4)
        etag, econstructed, estart, eend = econtent_wrapper[0]
        return _octets(blob, etag, econstructed, estart, eend, 5)
    except (BerError, IndexError):
        return None
