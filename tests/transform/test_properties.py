"""Property-based: arbitrary bytes and arbitrary MIME trees never raise and always give an outcome."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_sync.comment import Comment
from exchange_sync.transform import ExchangeMeta, Rejection, email_to_comment

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(raw: bytes) -> None:
    outcome = email_to_comment(raw, ExchangeMeta(mailbox="m@x.example", folder_path="Inbox"))
    assert isinstance(outcome, (Comment, Rejection))
    if isinstance(outcome, Comment):
        # The API form always re-validates: limits hold whatever the input.
        assert Comment.model_validate(outcome.to_api()) == outcome
    else:
        assert outcome.reason


@_SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(raw):
    _check(raw)


@_SETTINGS
@given(st.binary(max_size=600))
def test_arbitrary_bytes_after_headers_never_raise(tail):
    _check(b"From: a@b.example\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n" + tail)


CHARSETS = st.sampled_from(
    ["utf-8", "iso-8859-1", "windows-1252", "us-ascii", "x-unknown", "ks_c_5601-1987", "shift_jis", "iso-2022-jp",
     "utf-7", "gb2312", "koi8-r", "bogus-charset", "", "utf-16"]
)
ENCODINGS = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "binary", "bogus", ""])
TEXT = st.text(max_size=200)
HEADER_VALUE = st.one_of(
    TEXT,
    st.builds(lambda cs, t: f"=?{cs}?B?{t}?=", CHARSETS, st.text(alphabet="ABCDEFGHabcdefgh0123456789+/=", max_size=20)),
    st.builds(lambda cs, t: f"=?{cs}?Q?{t}?=", CHARSETS, st.text(alphabet="abc=_3DFE0", max_size=20)),
)
LEAF_TYPES = st.sampled_from(
    ["text/plain", "text/html", "text/calendar", "application/pdf", "image/png", "application/ms-tnef",
     "application/pkcs7-mime", "application/pkcs7-signature", "message/delivery-status", "text/rfc822-headers",
     "application/octet-stream", "bogus", "text/enriched"]
)
MULTI_TYPES = st.sampled_from(["mixed", "alternative", "related", "signed", "encrypted", "report", "digest"])


def _encode(body: bytes, encoding: str) -> bytes:
    import base64
    import quopri

    if encoding == "base64":
        return base64.encodebytes(body)
    if encoding == "quoted-printable":
        return quopri.encodestring(body)
    return body


@st.composite
def leaf(draw) -> bytes:
    ctype = draw(LEAF_TYPES)
    charset = draw(CHARSETS)
    encoding = draw(ENCODINGS)
    text = draw(TEXT)
    try:
        body = text.encode(charset or "utf-8", "replace")
    except LookupError:
        body = text.encode("utf-8", "surrogatepass")
    body = body if not draw(st.booleans()) else draw(st.binary(max_size=120))
    disposition = draw(st.sampled_from(["", "inline", "attachment", "attachment; filename*=utf-8''a%C3%A4.txt",
                                        'attachment; filename="=?utf-8?B?w6Q=?="', "junk;;;"]))
    headers = f"Content-Type: {ctype}; charset=\"{charset}\"; name=\"{draw(TEXT)[:20]}\"\r\n"
    headers += f"Content-Transfer-Encoding: {encoding}\r\n"
    if disposition:
        headers += f"Content-Disposition: {disposition}\r\n"
    return headers.encode("utf-8", "surrogatepass") + b"\r\n" + _encode(body, encoding)


def tree(depth: int):
    if depth <= 0:
        return leaf()
    return st.one_of(leaf(), multipart(depth))


@st.composite
def multipart(draw, depth: int) -> bytes:
    subtype = draw(MULTI_TYPES)
    boundary = draw(st.sampled_from(["b1", "=_x", "bb", "b1 ", "\"q\""])) + str(depth)
    children = draw(st.lists(tree(depth - 1), min_size=0, max_size=3))
    clean = boundary.strip('"').strip()
    out = f"Content-Type: multipart/{subtype}; boundary=\"{clean}\"; report-type=delivery-status\r\n\r\n".encode()
    for child in children:
        out += f"--{clean}\r\n".encode() + child + b"\r\n"
    if draw(st.booleans()):
        out += f"--{clean}--\r\n".encode()
    return out


@st.composite
def message(draw) -> bytes:
    headers = {
        "From": draw(HEADER_VALUE),
        "To": draw(HEADER_VALUE),
        "Subject": draw(HEADER_VALUE),
        "Date": draw(st.one_of(TEXT, st.just("Mon, 2 Nov 2026 09:14:03 +0100"), st.just("Thu, 31 Feb 99999 99:99:99"))),
        "Message-ID": draw(st.one_of(TEXT, st.just("<a@b>"), st.just(""))),
        "References": draw(TEXT),
        "Auto-Submitted": draw(st.sampled_from(["", "auto-replied", "no"])),
    }
    raw = b"".join(
        f"{name}: {value}\r\n".encode("utf-8", "surrogatepass") for name, value in headers.items() if draw(st.booleans())
    )
    raw += b"MIME-Version: 1.0\r\n" + draw(tree(3))
    return raw


@_SETTINGS
@given(message())
def test_arbitrary_mime_trees_never_raise(raw):
    _check(raw)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=400))
def test_deep_nesting_never_raises(depth):
    raw = b"From: a@b.example\r\n"
    for level in range(depth):
        raw += f"Content-Type: multipart/mixed; boundary=\"l{level}\"\r\n\r\n--l{level}\r\n".encode()
    raw += b"Content-Type: text/plain\r\n\r\ndeep text\r\n"
    _check(raw)
