"""Attachment content (mailboxes[].attachments): the real flow against the EWS test server stores
file attachments content-addressed next to staging, the comments carry the references, the comments
API serves the bytes over HTTP behind the token, and a mailbox without the option is untouched."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from email import message_from_bytes
from pathlib import Path

from ews_testserver.testing import date_n, make_mime
from exchange_sync.attachments.load import NOT_STORED_PROPERTY, STORED_PROPERTY
from tests.support.api import running_api
from tests.support.attachments import CONTENT_TYPES, MAX_BYTES, attachment_mail

from .conftest import all_comments, make_config

TOKEN = "attachments-token-0123456789abcdef"


def hexid(message_id: str) -> str:
    return message_id.encode().hex()


def stored_files(staging: Path) -> dict[str, bytes]:
    root = staging / "_attachments"
    return {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file() and len(p.name) == 64} if root.exists() else {}


def get(url: str, token: str | None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_attachments_stored_referenced_served_and_opt_in(ews, sync, tmp_path):
    mail = attachment_mail("<att-1@acme.example>")
    # (Not generated mail in both: the same Message-IDs would make one comment with the metadata, and
    # so the attachment references, of the copy synced last: DESIGN 1.8.)
    srv = ews(["ap@example.com=generate:2", "other@example.com=generate:0"])
    srv.add_message("ap@example.com", mail.mime, "Inbox")
    srv.add_message("other@example.com", attachment_mail("<att-other@acme.example>", seed=7).mime, "Inbox")
    options = {"sync": True, "max_bytes": MAX_BYTES, "content_types": CONTENT_TYPES}
    data = make_config(srv, tmp_path, [{"email": "ap@example.com", "attachments": options}, "other@example.com"])
    summary, code = sync(data)
    assert code == 0, summary

    comments = all_comments(data)
    entries = {a.name: a for a in comments[hexid("<att-1@acme.example>")].attachments}
    files = stored_files(tmp_path / "staging")
    pdf = entries["invoice 4411.pdf"]
    # The stored file is the original bytes, under their sha256, and the comment references it.
    assert pdf.attachment_reference == pdf.content_hash == mail.sha(mail.pdf)
    assert files[pdf.attachment_reference] == mail.pdf
    eml = next(a for a in entries.values() if a.content_type == "message/rfc822")
    assert eml.attachment_reference and message_from_bytes(files[eml.attachment_reference])["Subject"] == "Original order"
    # Inline image (include_inline off), over max_bytes, type not allowed: listed, not stored, with a reason.
    for name in ("scan.png", "archive.zip", "tool.exe"):
        assert entries[name].attachment_reference is None and entries[name].content_hash not in files, name
    properties = comments[hexid("<att-1@acme.example>")].user_properties
    assert properties[STORED_PROPERTY] == 2
    assert "scan.png: inline" in properties[NOT_STORED_PROPERTY]
    assert f"archive.zip: over max_bytes ({len(mail.big)} > {MAX_BYTES})" in properties[NOT_STORED_PROPERTY]
    assert "tool.exe: content type not allowed" in properties[NOT_STORED_PROPERTY]
    # Every stored file is referenced by a comment of the opted-in mailbox (generated mail may carry some too).
    referenced = {a.attachment_reference for c in comments.values() for a in c.attachments if a.attachment_reference}
    assert set(files) == referenced and {pdf.attachment_reference, eml.attachment_reference} <= referenced
    assert all(c.user_properties.get("string:Mailbox") == "ap@example.com"
               for c in comments.values() if any(a.attachment_reference for a in c.attachments))
    # The mailbox without the option: its comment is exactly what it was before the feature.
    other = comments[hexid("<att-other@acme.example>")]
    assert all(a.attachment_reference is None for a in other.attachments) and other.attachments
    assert STORED_PROPERTY not in other.user_properties and NOT_STORED_PROPERTY not in other.user_properties

    # A second email with the same PDF, and a re-sync: nothing is stored twice.
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "staging" / "_attachments").rglob("*") if p.is_file()}
    srv.add_message("ap@example.com", attachment_mail("<att-2@acme.example>", subject="Reminder").mime, "Inbox")
    summary, code = sync(data)
    assert code == 0 and summary["totals"]["new"] == 1, summary
    again = {a.name: a for a in all_comments(data)[hexid("<att-2@acme.example>")].attachments}
    assert again["invoice 4411.pdf"].attachment_reference == pdf.attachment_reference
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    # Only the second message's attached .eml is new (its bytes differ: another Date header... no, the same
    # inner message: nothing new at all).
    assert set(stored_files(tmp_path / "staging")) == set(files)

    # The comments API serves the bytes over HTTP, behind the token.
    with running_api(data["destination"]["url"], token=TOKEN, attachments_url=str(tmp_path / "staging" / "_attachments")) as api:
        url = f"{api.url}/api/v1/attachments/{pdf.attachment_reference}"
        status, headers, body = get(url, TOKEN)
        assert status == 200 and hashlib.sha256(body).hexdigest() == pdf.attachment_reference
        assert headers["content-type"] == "application/pdf"
        assert headers["content-length"] == str(len(mail.pdf))
        assert headers["content-disposition"].startswith('attachment; filename="invoice 4411.pdf"')
        assert headers["x-content-type-options"] == "nosniff"
        assert get(url, None)[0] == 401
        assert get(url, "wrong-token")[0] == 401
        assert get(f"{api.url}/api/v1/attachments/{'0' * 64}", TOKEN)[0] == 404
        assert get(f"{api.url}/api/v1/attachments/{pdf.content_hash.upper()}", TOKEN)[0] == 400
        assert get(f"{api.url}/api/v1/attachments/..%2F..%2Fstate.db", TOKEN)[0] in (400, 404)
        # Not stored (over max_bytes): unknown to the API.
        assert get(f"{api.url}/api/v1/attachments/{entries['archive.zip'].content_hash}", TOKEN)[0] == 404


def test_without_the_option_nothing_is_stored_and_comments_are_unchanged(ews, sync, tmp_path):
    from exchange_sync.transform import ExchangeMeta, email_to_comment

    mail = attachment_mail("<att-plain@acme.example>")
    srv = ews(["ap@example.com=generate:0"])
    srv.add_message("ap@example.com", mail.mime, "Inbox")
    srv.add_message("ap@example.com", make_mime("No attachments", "<plain-1@acme.example>", date_n(1)), "Inbox")
    data = make_config(srv, tmp_path, ["ap@example.com"])
    summary, code = sync(data)
    assert code == 0, summary
    assert not (tmp_path / "staging" / "_attachments").exists()
    comment = all_comments(data)[hexid("<att-plain@acme.example>")]
    direct = email_to_comment(mail.mime, ExchangeMeta(mailbox="ap@example.com", folder_path="Inbox"))
    assert [a.model_dump() for a in comment.attachments] == [a.model_dump() for a in direct.attachments]
    assert STORED_PROPERTY not in comment.user_properties


def test_attachment_options_are_validated_and_matched():
    import pytest

    from exchange_sync.attachments import AttachmentPolicy, is_sha256
    from exchange_sync.config import AttachmentsConfig, ConfigError, parse_config

    base = {"name": "x", "connection": {"server_url": "https://mail.example.com/EWS/Exchange.asmx", "auth": "basic",
                                        "username": "u", "password": {"env": "P"}, "access_type": "delegate"}}
    with pytest.raises(ConfigError, match=r"mailboxes\.0\.attachments\.content_types: 'pdf' is not a media type"):
        parse_config({**base, "mailboxes": [{"email": "a@example.com", "attachments": {"sync": True, "content_types": ["pdf"]}}]})
    with pytest.raises(ConfigError, match=r"mailboxes\.0\.attachments\.max_bytes"):
        parse_config({**base, "mailboxes": [{"email": "a@example.com", "attachments": {"sync": True, "max_bytes": 0}}]})
    assert AttachmentPolicy.of(AttachmentsConfig()) is None  # off by default: no cost, nothing stored
    policy = AttachmentPolicy.of(AttachmentsConfig(sync=True, max_bytes=10, content_types=["Image/*", "application/pdf"]))
    assert policy.reason_to_skip("image/PNG", 10, inline=False) is None
    assert policy.reason_to_skip("image/png", 10, inline=True) == "inline"
    assert policy.reason_to_skip("application/pdf", 11, inline=False) == "over max_bytes (11 > 10)"
    assert policy.reason_to_skip("application/zip", 1, inline=False) == "content type not allowed"
    assert is_sha256("a" * 64) and not is_sha256("A" * 64) and not is_sha256("../" + "a" * 61)


def test_store_on_an_fsspec_filesystem_writes_once_and_streams():
    import hashlib
    import uuid

    from exchange_sync.attachments import AttachmentStore
    from exchange_sync.attachments.store import CHUNK_BYTES

    store = AttachmentStore(f"memory://att-{uuid.uuid4().hex}")  # fsspec's in-memory filesystem (object-storage shaped)
    data = bytes(range(256)) * (CHUNK_BYTES // 256 * 2 + 3)
    sha = hashlib.sha256(data).hexdigest()
    assert store.put(sha, data, content_type="application/pdf", name="a.pdf") is True
    assert store.put(sha, data, content_type="application/pdf", name="b.pdf") is False  # never written twice
    info = store.info(sha)
    assert (info.size, info.content_type, info.name) == (len(data), "application/pdf", "a.pdf")
    chunks = list(store.iter_bytes(sha))
    assert len(chunks) == 3 and b"".join(chunks) == data
    assert store.info("0" * 64) is None and store.info("../x") is None
    try:
        store.put("1" * 64, b"other bytes", content_type="text/plain", name="x")
    except ValueError:
        pass
    else:
        raise AssertionError("bytes that do not match their name must not be stored")
    assert not [p for p in store.fs.find(store.root) if "1" * 64 in p or p.endswith(".tmp")]  # nothing left behind
