"""Hostile input: fuzzing the transform under a fixed budget, size caps (huge attachments, 10 MB HTML,
deep nesting, many parts, megabyte lines and headers), header injection into user properties, and a
malicious EWS endpoint answering with XML entity expansion / external entities.

No timing assertions: pytest-timeout bounds the cost of each input (before the caps, a 100 KB line took
35 s and 10 MB of HTML 18 s; a 50 MB attachment 12 s and 740 MB).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import re
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_sync.comment import MAX_ATTACHMENTS, MAX_TEXT_CHARS, Comment
from exchange_sync.transform import ExchangeMeta, Rejection, email_to_comment
from exchange_sync.transform import build as build_mod
from exchange_sync.transform import mime as mime_mod

META = ExchangeMeta(mailbox="ap@example.com", folder_path="Inbox")
HEAD = b"From: Ann <ann@acme.example>\r\nTo: ap@example.com\r\nSubject: hostile\r\nMessage-ID: <h@acme.example>\r\n"
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def convert(raw: bytes) -> Comment:
    outcome = email_to_comment(raw, META)
    assert isinstance(outcome, Comment), outcome
    return outcome


def check_invariants(raw: bytes) -> Comment | Rejection:
    outcome = email_to_comment(raw, META)
    assert isinstance(outcome, (Comment, Rejection))
    if isinstance(outcome, Rejection):
        assert outcome.reason
        return outcome
    assert Comment.model_validate(outcome.to_api()) == outcome  # the API limits hold
    for key, value in outcome.user_properties.items():
        assert key.startswith(("string:", "number:"))
        if isinstance(value, str):
            assert not CONTROL.search(value), (key, value)  # one line, no controls or bidi overrides
    message = outcome.messages[0]
    for address in [message.from_ or "", *message.to, *message.cc, *message.bcc]:
        assert not CONTROL.search(address), address
    assert email_to_comment(raw, META) == outcome  # deterministic
    return outcome


# ---- fuzzing (hypothesis, fixed example budget; fuzz/atheris_transform.py for open-ended runs) ---------------
INJECTION = st.sampled_from([
    "x\r\nBcc: evil@attacker.example", "=?utf-8?q?a=0D=0AX-Injected:_1?=", "=?utf-8?b?YQ0KWC1JbmplY3RlZDogMQ==?=",
    "\u202eevil\u202c", "a\x00b\x1bc", "x\u2028y\u2029z", "\r\n\r\n<html>body?</html>", "\udcff\udcfe",
    "=?bogus?q?=00=0A?=", "A" * 3000, "<" * 50 + ">" * 50, "\"quoted, name\" <a@b.c>, \r\n\tfolded@x.y",
])
HEADER_VALUE = st.one_of(INJECTION, st.text(max_size=80))
HEADER_NAMES = st.sampled_from(["Subject", "From", "To", "Cc", "Message-ID", "In-Reply-To", "References",
                                "X-Mailer", "Importance", "Auto-Submitted", "Content-Type", "Date", "Sender"])
LEAF = st.sampled_from([b"text/plain", b"text/html", b"application/octet-stream", b"message/rfc822",
                        b"text/calendar", b"application/ms-tnef", b"application/pkcs7-mime"])
CTE = st.sampled_from([b"7bit", b"base64", b"quoted-printable", b"x-uuencode", b"bogus"])


@st.composite
def hostile_mime(draw) -> bytes:
    headers = b"".join(
        f"{name}: {value}\r\n".encode("utf-8", "surrogateescape")
        for name, value in draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUE), max_size=6))
    )

    def part(depth: int) -> bytes:
        if depth < 40 and draw(st.integers(0, 3)) == 0:
            boundary = f"b{depth}".encode()
            children = draw(st.integers(0, 3))
            body = b"".join(b"--" + boundary + b"\r\n" + part(depth + 1) + b"\r\n" for _ in range(children))
            close = b"--" + boundary + b"--\r\n" if draw(st.booleans()) else b""  # sometimes unterminated
            sub = draw(st.sampled_from([b"mixed", b"alternative", b"related", b"signed", b"report"]))
            return b"Content-Type: multipart/" + sub + b"; boundary=" + boundary + b"\r\n\r\n" + body + close
        payload = draw(st.one_of(st.binary(max_size=300), st.just(b"<div class=gmail_quote>" * 30),
                                 st.just(b"> quoted\r\n" * 40), st.just(b"\xe2\x80\xae" * 20)))
        cte = draw(CTE)
        if cte == b"base64":
            payload = base64.encodebytes(payload)
        return (b"Content-Type: " + draw(LEAF) + b"; charset=" + draw(st.sampled_from([b"utf-8", b"bogus", b""]))
                + b"\r\nContent-Transfer-Encoding: " + cte + b"\r\n\r\n" + payload)

    return HEAD + headers + b"MIME-Version: 1.0\r\n" + part(0)


@FUZZ
@given(hostile_mime())
def test_fuzz_hostile_mime_keeps_every_invariant(raw):
    check_invariants(raw)


@FUZZ
@given(st.binary(min_size=1, max_size=4000))
def test_fuzz_bytes_after_real_headers(tail):
    check_invariants(HEAD + tail)


@FUZZ
@given(hostile_mime(), st.integers(1, 4))
def test_base64_elision_is_exact(monkeypatch_module, raw, lines):
    """Setting long base64 runs aside before parsing (a speed-up for big attachments) changes nothing."""
    attachment = base64.encodebytes(hashlib.sha512(raw).digest() * 4 * lines)
    raw = raw.replace(b"\r\n\r\n", b"\r\n\r\n" + attachment, 1) if b"--b0" not in raw else raw.replace(
        b"--b0\r\n", b"--b0\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + attachment + b"\r\n--b0\r\n", 1)
    plain = email_to_comment(raw, META)
    with monkeypatch_module.context() as mp:
        mp.setattr(mime_mod, "ELIDE_MIN_RUN_BYTES", 1)
        mp.setattr(mime_mod, "ELIDE_MIN_MESSAGE_BYTES", 0)
        elided = email_to_comment(raw, META)
    assert elided == plain


@pytest.fixture(scope="module")
def monkeypatch_module():
    return pytest.MonkeyPatch


# ---- size caps -----------------------------------------------------------------------------------------
pytestmark = pytest.mark.timeout(120)


def test_huge_attachment_is_listed_with_exact_size_and_hash():
    data = hashlib.sha256(b"seed").digest() * (30 * 1024 * 1024 // 32)  # 30 MiB, deterministic
    encoded = base64.encodebytes(data)
    raw = (HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\n"
           b"Content-Type: text/plain\r\n\r\nSee the attached scan.\r\n--BB\r\nContent-Type: application/pdf\r\n"
           b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=scan.pdf\r\n\r\n"
           + encoded + b"--BB\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment\r\n\r\n"
           b"after the big one\r\n--BB--\r\n")
    comment = convert(raw)
    assert comment.messages[0].body.text == "See the attached scan."
    names = [(a.name, a.size, a.content_hash) for a in comment.attachments]
    assert names[0] == ("scan.pdf", len(data), hashlib.sha256(data).hexdigest())
    assert names[1][0] == "notes.txt"  # parts after the big one are still seen
    assert comment.user_properties["number:Attachments"] == 2


def test_ten_megabytes_of_html_are_capped(monkeypatch):
    seen: list[int] = []
    original = build_mod.html_to_text
    monkeypatch.setattr(build_mod, "html_to_text", lambda html: seen.append(len(html)) or original(html))
    html = ("<p>" + "Invoice text with several words in it " * 3 + "</p>\n") * (10_000_000 // 125)
    comment = convert(HEAD + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html.encode())
    assert seen and max(seen) <= build_mod.MAX_HTML_CHARS
    assert len(comment.messages[0].body.text) <= MAX_TEXT_CHARS
    assert comment.user_properties["string:Truncated"] == "true"


@pytest.mark.parametrize("body", [b"a" * 4_000_000, b"> quoted line\r\n" * 300_000, b"x@" * 2_000_000,
                                  (b"1" * 200 + b" ") * 20_000, b"On Mon wrote:\r\n" * 200_000])
def test_megabyte_lines_and_quote_floods_finish(body):
    comment = convert(HEAD + b"Content-Type: text/plain\r\n\r\n" + body)
    assert len(comment.messages[0].body.text) <= MAX_TEXT_CHARS


def test_ten_megabyte_header_is_capped():
    raw = HEAD.replace(b"Subject: hostile", b"Subject: " + b"=?utf-8?q?ab?= " * 700_000) + b"\r\nbody\r\n"
    comment = convert(raw)
    assert len(comment.messages[0].subject.text) <= MAX_TEXT_CHARS


@pytest.mark.parametrize("depth", [40, 3000])
def test_deeply_nested_multiparts_keep_the_headers(depth):
    parts = b"".join(b"--B%d\r\nContent-Type: multipart/mixed; boundary=B%d\r\n\r\n" % (i, i + 1) for i in range(depth))
    raw = (HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B0\r\n\r\n" + parts
           + b"--B%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--B%d--\r\n" % (depth, depth))
    comment = convert(raw)
    assert comment.messages[0].subject.text == "hostile"
    assert comment.user_properties["number:Unreadable Parts"] >= 1


def test_twenty_thousand_parts_are_capped():
    parts = b"".join(b"--BB\r\nContent-Type: application/octet-stream; name=f%d.bin\r\n\r\nxx\r\n" % i
                     for i in range(20_000))
    comment = convert(HEAD + b"Content-Type: multipart/mixed; boundary=BB\r\n\r\n" + parts + b"--BB--\r\n")
    assert len(comment.attachments) == MAX_ATTACHMENTS
    assert comment.user_properties["number:Unreadable Parts"] >= 20_000 - mime_mod.MAX_PARTS


def test_parse_cap_marks_the_comment_truncated(monkeypatch):
    monkeypatch.setattr(mime_mod, "MAX_PARSE_BYTES", 4096)
    comment = convert(HEAD + b"Content-Type: text/plain\r\n\r\n" + b"line of text\r\n" * 2000)
    assert comment.user_properties["string:Truncated"] == "true"


# ---- header injection ------------------------------------------------------------------------------------
def test_header_injection_cannot_add_properties_or_lines():
    raw = (b"From: \"Ann\r\n Bcc: evil@attacker.example\" <ann@acme.example>\r\n"
           b"To: ap@example.com\r\n"
           b"Subject: =?utf-8?q?Invoice=0D=0AX-Injected:_yes?= \xe2\x80\xaeevil\r\n"
           b"Message-ID: <inj@acme.example>\r\n"
           b"X-Mailer: =?utf-8?b?Tm9ybWFsDQpzdHJpbmc6Rm9sZGVyOiBIYWNrZWQ=?=\r\n"
           b"Importance: high\r\n\tstring:Folder: Hacked\r\n"
           b"In-Reply-To: <a@b>\x00\x1b[31m\r\n"
           b"Content-Type: text/plain\r\n\r\nbody\r\n")
    comment = check_invariants(raw)
    assert isinstance(comment, Comment)
    props = comment.user_properties
    assert props["string:Folder"] == "Inbox" and props["string:Mailbox"] == "ap@example.com"
    assert not any("inject" in key.lower() for key in props)
    assert comment.messages[0].subject.text.startswith("Invoice X-Injected: yes")  # one line, visible, inert
    assert "\u202e" not in comment.messages[0].subject.text
    assert "\n" not in props["string:Mailer"] and "\x1b" not in props["string:In Reply To"]
    assert comment.messages[0].bcc == []


# ---- a malicious EWS server: entity expansion and external entities ----------------------------------------
LAUGHS = "".join(f'<!ENTITY l{i} "{("&l%d;" % (i - 1)) * 10}">' for i in range(1, 10))


def evil_response(port: int, secret_file: Path) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE s:Envelope [
  <!ENTITY l0 "lol">{LAUGHS}
  <!ENTITY xxe SYSTEM "file://{secret_file}">
  <!ENTITY oob SYSTEM "http://127.0.0.1:{port}/oob">
  <!ENTITY % remote SYSTEM "http://127.0.0.1:{port}/dtd"> %remote;
]>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
 <s:Header><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types"
   MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11"/></s:Header>
 <s:Body><m:GetFolderResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
   xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>
  <m:GetFolderResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Folders>
   <t:Folder><t:FolderId Id="AAA" ChangeKey="BBB"/><t:DisplayName>&xxe;&oob;&l9;</t:DisplayName></t:Folder>
  </m:Folders></m:GetFolderResponseMessage>
 </m:ResponseMessages></m:GetFolderResponse></s:Body></s:Envelope>""".encode()


@contextmanager
def evil_server(tmp_path: Path) -> Iterator[tuple[str, str, list[str], Path]]:
    """A tiny HTTPS endpoint (stdlib http.server, trustme certificate) answering every POST with a DTD attack."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / "evil-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    secret_file = tmp_path / "server-side-secret.txt"
    secret_file.write_text("TOP-SECRET-FILE-CONTENT-4711")
    requests_seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):  # an external entity or DTD being fetched
            requests_seen.append("GET " + self.path)
            body = b'<!ENTITY leak "fetched">'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            requests_seen.append("POST " + self.path)
            body = evil_response(self.server.server_address[1], secret_file)
            self.send_response(200)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/EWS/Exchange.asmx", str(ca_file), requests_seen, secret_file
    finally:
        server.shutdown()
        server.server_close()


def chain_text(exc: BaseException) -> str:
    parts, cur, seen = [], exc, set()
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        parts += [str(cur), repr(cur)]
        cur = cur.__cause__ or cur.__context__
    return "\n".join(parts)


def test_source_refuses_a_response_with_a_dtd(tmp_path):
    from pydantic import SecretStr

    from exchange_sync.config import EwsConnection, TlsConfig
    from exchange_sync.sources.ews import EwsSource
    from exchange_sync.sources import SourceError

    with evil_server(tmp_path) as (url, ca_file, seen, secret_file):
        conn = EwsConnection(server_url=url, auth="basic", username="svc@example.com",
                             password={"env": "UNUSED_IN_THIS_TEST"}, access_type="delegate",
                             exchange_version="Exchange2016", tls=TlsConfig(ca_bundle=ca_file), retry_attempts=1,
                             max_backoff_s=2)
        with EwsSource(conn, SecretStr("pw"), max_connections=1) as src, pytest.raises(SourceError) as info:
            src.open_mailbox("ap@example.com").mail_folders(None, [])
    text = chain_text(info.value)
    assert "DTD" in str(info.value) and "refused" in str(info.value)
    assert "TOP-SECRET-FILE-CONTENT" not in text and "lollollol" not in text
    assert [s for s in seen if s.startswith("POST")] and not [s for s in seen if s.startswith("GET")]


def test_exchangelib_parser_expands_no_entity_and_loads_nothing(tmp_path):
    """The paths our guard does not cover (exchangelib's own streaming parse): entities stay unexpanded,
    external entities and DTDs are never loaded (resolve_entities=False, no_network, no load_dtd)."""
    from lxml import etree

    from exchangelib.util import to_xml

    with evil_server(tmp_path) as (url, _, seen, secret_file):
        port = int(url.split(":")[2].split("/")[0])
        body = evil_response(port, secret_file)
        tree = to_xml(body)
        serialized = etree.tostring(tree)
        assert len(serialized) < 10_000  # 10**9 "lol"s were not expanded
        assert b"TOP-SECRET-FILE-CONTENT" not in serialized and b"fetched" not in serialized
        name = tree.getroot().find(".//{http://schemas.microsoft.com/exchange/services/2006/types}DisplayName")
        assert name is None or not (name.text or "").strip("lo")
        external_dtd = (f'<?xml version="1.0"?><!DOCTYPE s SYSTEM "http://127.0.0.1:{port}/dtd">'
                        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>')
        to_xml(external_dtd.encode())
    assert seen == []


def test_guard_accepts_ordinary_responses_and_spots_disguised_dtds():
    from exchange_sync.sources.ews.xmlguard import UnsafeXmlResponse, check_response

    check_response(b'<?xml version="1.0" encoding="utf-8"?><s:Envelope><s:Body>&lt;!DOCTYPE x&gt;</s:Body></s:Envelope>')
    check_response(b"<s:Envelope/>")
    for hostile in (b'<!DOCTYPE x [<!ENTITY a "b">]><x/>',
                    b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- hi -->\n<?pi x?><!doctype x SYSTEM "http://h/d"><x/>',
                    '<?xml version="1.0" encoding="utf-16"?><!DOCTYPE x [<!ENTITY a "b">]><x/>'.encode("utf-16")):
        with pytest.raises(UnsafeXmlResponse):
            check_response(hostile)
