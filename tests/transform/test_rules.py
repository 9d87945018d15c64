"""The comment rules: id, fallback id, thread id, timestamps, addresses, properties, limits, injection."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone

import pandas as pd

from exchange_sync.comment import MAX_ATTACHMENTS, MAX_TEXT_CHARS, Comment
from exchange_sync.transform import ExchangeMeta, Rejection, email_to_comment, transform_frame, transform_table
from exchange_sync.transform.charset import decode_bytes
from exchange_sync.transform.headers import decode_words


def _crlf(text: str) -> str:
    return re.sub(r"(?<!\r)\n", "\r\n", text)


def mail(headers: str, body: str = "Hello there, this is the body.\n") -> bytes:
    return (_crlf(headers.strip("\n")) + "\r\n\r\n" + _crlf(body)).encode("utf-8")


BASIC = """From: Ann Smith <ann@acme.example>
To: Bob <bob@Beta.example>, carol@gamma.example
Cc: "Doe, Dan" <dan@beta.example>
Subject: Invoice 4411
Date: Mon, 2 Nov 2026 09:14:03 +0100
Message-ID: <CAF123@mail.acme.example>
"""


def test_id_is_hex_of_the_raw_message_id_with_brackets():
    comment = email_to_comment(mail(BASIC))
    assert comment.id == "<CAF123@mail.acme.example>".encode().hex()
    assert comment.user_properties["string:Message ID"] == "<CAF123@mail.acme.example>"
    assert comment.user_properties["string:Message ID Source"] == "header"


def test_id_strips_surrounding_whitespace_and_unfolds():
    folded = BASIC.replace("Message-ID: <CAF123@mail.acme.example>", "Message-ID:  \n   <CAF123@mail.acme.example>  ")
    assert email_to_comment(mail(folded)).id == "<CAF123@mail.acme.example>".encode().hex()


def test_id_keeps_raw_non_ascii_bytes():
    raw = mail(BASIC).replace(b"<CAF123@", "<CAFé@".encode("utf-8"))
    assert email_to_comment(raw).id == "<CAFé@mail.acme.example>".encode("utf-8").hex()


def test_missing_message_id_gives_a_stable_derived_id():
    headers = BASIC.replace("Message-ID: <CAF123@mail.acme.example>\n", "")
    first = email_to_comment(mail(headers))
    again = email_to_comment(mail(headers).replace(b"\r\n", b"\n"))  # same email, LF line ends
    other = email_to_comment(mail(headers, "Another body.\n"))
    assert first.user_properties["string:Message ID Source"] == "derived"
    assert len(first.id) == 64 and first.id == again.id != other.id
    assert "string:Message ID" not in first.user_properties


def test_missing_message_id_uses_exchange_internet_message_id():
    headers = BASIC.replace("Message-ID: <CAF123@mail.acme.example>\n", "")
    comment = email_to_comment(mail(headers), ExchangeMeta(internet_message_id=" <ex1@exchange.example> "))
    assert comment.id == "<ex1@exchange.example>".encode().hex()
    assert comment.user_properties["string:Message ID Source"] == "exchange"


def test_thread_id_rules():
    reply = BASIC + "In-Reply-To: <parent@x>\nReferences: <root@x> <parent@x>\n"
    assert email_to_comment(mail(reply)).thread_id == "<root@x>".encode().hex()
    conv = email_to_comment(mail(reply), ExchangeMeta(conversation_id="AAQkADAw"))
    assert conv.thread_id == "AAQkADAw".encode().hex()
    alone = email_to_comment(mail(BASIC))
    assert alone.thread_id == alone.id


def test_timestamps():
    received = datetime(2026, 11, 2, 8, 20, tzinfo=timezone.utc)
    comment = email_to_comment(mail(BASIC), ExchangeMeta(datetime_received=received))
    assert comment.timestamp == received
    assert comment.message.sent_at == datetime(2026, 11, 2, 8, 14, 3, tzinfo=timezone.utc)
    bad = email_to_comment(mail(BASIC.replace("Mon, 2 Nov 2026 09:14:03 +0100", "not a date at all")))
    assert bad.message.sent_at is None
    assert bad.timestamp == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert bad.user_properties["string:Timestamp Source"] == "none"


def test_addresses_and_domains():
    comment = email_to_comment(mail(BASIC))
    message = comment.message
    assert message.from_ == "Ann Smith <ann@acme.example>"
    assert message.to == ["Bob <bob@Beta.example>", "carol@gamma.example"]
    assert message.cc == ["Doe, Dan <dan@beta.example>"]
    properties = comment.user_properties
    assert properties["string:Sender Domain"] == "acme.example"
    assert properties["string:Recipient Domains"] == "beta.example,gamma.example"
    assert properties["number:Recipients"] == 3


def test_rfc2047_and_raw_utf8_headers():
    assert decode_words("=?utf-8?B?SGFsbG8g?= =?utf-8?Q?W=C3=B6rld?=") == "Hallo Wörld"
    assert decode_words("=?iso-8859-1?q?caf=E9?= au lait") == "café au lait"
    assert decode_words("=?x-unknown?q?caf=C3=A9?=") == "café"
    headers = BASIC.replace("Subject: Invoice 4411", "Subject: =?UTF-8?B?w4RyZ2Vy?= mit Rechnung")
    assert email_to_comment(mail(headers)).message.subject.text == "Ärger mit Rechnung"


def test_charset_repair():
    assert decode_bytes("café".encode("utf-8"), "iso-8859-1") == "café"  # mislabelled UTF-8
    assert decode_bytes("café".encode("cp1252"), "us-ascii") == "café"  # lying ASCII label
    assert decode_bytes("스티해".encode("cp949"), "ks_c_5601-1987") == "스티해"
    assert decode_bytes(b"\x81\x8d", "windows-1252") == "\x81\x8d"  # undefined in cp1252: no loss
    assert decode_bytes(b"abc", "no-such-charset") == "abc"


def test_header_injection_is_neutralised():
    headers = BASIC + "X-Mailer: evil\r\n\tInjected: yes\x00\x07\u202e\n"
    comment = email_to_comment(mail(headers), ExchangeMeta(folder_path="Inbox\r\nX-Evil: 1", mailbox="a@b\n"))
    for key, value in comment.user_properties.items():
        if isinstance(value, str):
            assert "\n" not in value and "\r" not in value and "\x00" not in value and "\u202e" not in value, key
    assert comment.user_properties["string:Folder"] == "Inbox X-Evil: 1"


def test_long_values_are_capped():
    headers = BASIC.replace("Subject: Invoice 4411", "Subject: " + "x" * 100) + "In-Reply-To: <" + "y" * 5000 + ">\n"
    comment = email_to_comment(mail(headers, "word " * 20000))
    assert len(comment.user_properties["string:In Reply To"]) <= 1024
    body = comment.message.body.text
    assert len(body) <= MAX_TEXT_CHARS and "[... truncated by exchange-sync:" in body
    assert comment.user_properties["string:Truncated"] == "true"
    name = "N" * 600
    long_from = BASIC.replace("Ann Smith", name)
    assert len(email_to_comment(mail(long_from)).message.from_) <= 512


def test_attachments_capped_and_counted():
    parts = []
    for index in range(MAX_ATTACHMENTS + 5):
        parts.append(
            f"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"f{index}.pdf\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
        )
    body = "--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" + "".join(parts) + "--b--\r\n"
    raw = mail(BASIC + 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n', body)
    comment = email_to_comment(raw)
    assert len(comment.attachments) == MAX_ATTACHMENTS
    assert comment.user_properties["number:Attachments"] == MAX_ATTACHMENTS + 5
    assert comment.user_properties["number:Attachments Dropped"] == 5
    first = comment.attachments[0]
    assert (first.name, first.size, first.content_type, first.inline) == ("f0.pdf", 5, "application/pdf", False)
    assert first.content_hash == hashlib.sha256(b"%PDF-").hexdigest()


def test_rfc2231_filename():
    body = (
        "--b\r\nContent-Type: text/plain\r\n\r\nHi\r\n--b\r\nContent-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename*=utf-8''Rechnung%20M%C3%A4rz.pdf\r\n\r\nxx\r\n--b--\r\n"
    )
    raw = mail(BASIC + 'Content-Type: multipart/mixed; boundary="b"\n', body)
    assert email_to_comment(raw).attachments[0].name == "Rechnung März.pdf"


def test_auto_reply_and_encrypted_flags():
    auto = email_to_comment(mail(BASIC + "Auto-Submitted: auto-replied\n"))
    assert auto.user_properties["string:Auto Reply"] == "true"
    assert "string:Auto Reply" not in email_to_comment(mail(BASIC)).user_properties
    encrypted = mail(
        BASIC + 'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\n'
        "Content-Transfer-Encoding: base64\n",
        "MIAGCSqGSIb3DQEHA6CAMIACAQAx\n",
    )
    comment = email_to_comment(encrypted)
    assert comment.user_properties["string:Encrypted"] == "smime"
    assert comment.message.body.text == ""


def test_rejections_only_for_non_emails():
    assert isinstance(email_to_comment(b""), Rejection)
    assert isinstance(email_to_comment(b"   \r\n "), Rejection)
    rejected = email_to_comment(b"\x00\x01\x02 random binary \xff\xfe", ExchangeMeta(item_id="AAMk1"))
    assert isinstance(rejected, Rejection) and rejected.item_id == "AAMk1" and "not an email" in rejected.reason
    headers_only = email_to_comment(b"Subject: only a subject")
    assert isinstance(headers_only, Comment)


def test_transform_frame():
    received = pd.Timestamp("2026-11-02T08:20:00Z")
    df = pd.DataFrame(
        {
            "mailbox": ["ap@acme.example", "ap@acme.example"],
            "folder_id": ["F1", "F1"],
            "folder_path": ["Inbox/Suppliers", "Inbox/Suppliers"],
            "item_id": ["I1", "I2"],
            "change_key": ["C1", "C2"],
            "change_type": ["create", "create"],
            "internet_message_id": [None, "<x@y>"],
            "datetime_received": [received, received],
            "conversation_id": ["CONV1", None],
            "size": [100, 0],
            "mime_content": [mail(BASIC), b""],
        }
    )
    comments, rejections = transform_frame(df)
    assert len(comments) == 1 and len(rejections) == 1
    comment = comments[0]
    assert comment.user_properties["string:Folder"] == "Inbox/Suppliers"
    assert comment.user_properties["string:Mailbox"] == "ap@acme.example"
    assert comment.thread_id == "CONV1".encode().hex()
    assert comment.timestamp == received.to_pydatetime()
    rejection = rejections[0]
    assert (rejection.item_id, rejection.mailbox, rejection.folder_path, rejection.message_id) == (
        "I2", "ap@acme.example", "Inbox/Suppliers", "<x@y>"
    )
    assert rejection.reason == "empty MIME content"
    again, _ = transform_frame(df)
    assert [c.to_api() for c in again] == [c.to_api() for c in comments]  # deterministic
    # The workers' Arrow path gives the same outcomes as the DataFrame path.
    import pyarrow as pa

    from exchange_sync.staging import STAGED_SCHEMA

    arrow_comments, arrow_rejections = transform_table(pa.Table.from_pandas(df, schema=STAGED_SCHEMA, preserve_index=False))
    assert [c.to_api() for c in arrow_comments] == [c.to_api() for c in comments]
    assert arrow_rejections == rejections


def _der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    size = (length.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + length.to_bytes(size, "big") + content


def test_opaque_smime_signed_data_is_unwrapped():
    import base64

    inner = b"Content-Type: text/plain; charset=utf-8\r\n\r\nSigned hello from inside.\r\n"
    oid_signed = _der(0x06, bytes.fromhex("2a864886f70d010702"))
    oid_data = _der(0x06, bytes.fromhex("2a864886f70d010701"))
    encap = _der(0x30, oid_data + _der(0xA0, _der(0x04, inner)))
    signed = _der(0x30, _der(0x02, b"\x01") + _der(0x31, b"") + encap + _der(0x31, b""))
    blob = _der(0x30, oid_signed + _der(0xA0, signed))
    raw = mail(
        BASIC + 'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\n'
        "Content-Transfer-Encoding: base64\n",
        base64.encodebytes(blob).decode(),
    )
    comment = email_to_comment(raw)
    assert comment.message.body.text == "Signed hello from inside."
    assert comment.user_properties["string:Signed"] == "smime"
    assert "string:Encrypted" not in comment.user_properties
