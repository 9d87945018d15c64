"""`destination: reinfer` uploads stored attachment content (mailboxes with attachments.sync) with the
platform's route, against our comments API over HTTP: the bytes arrive as they were, a re-run sends
nothing, a changed file at the same index is sent again, a mailbox without the option sends nothing,
a bad token fails clearly; the API checks the token before the body and limits its size."""

from __future__ import annotations

import hashlib
import http.client

import requests

from tests.support.api import running_api
from tests.support.attachments import CONTENT_TYPES, MAX_BYTES, attachment_mail

from .conftest import make_config

TOKEN_ENV = "EXSYNC_E2E_API_TOKEN"
TOKEN = "upload-token-" + "u" * 24


def hexid(message_id: str) -> str:
    return message_id.encode().hex()


def uploads(api, source_id: str, comment_id: str) -> list[dict]:
    response = requests.get(f"{api.url}/api/_private/sources/id:{source_id}/comments/{comment_id}/attachments",
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["attachments"]


def test_reinfer_destination_uploads_stored_attachments_once(ews, sync, tmp_path, monkeypatch):
    mail = attachment_mail("<up-1@acme.example>")
    srv = ews(["ap@example.com=generate:0", "other@example.com=generate:0"])
    srv.add_message("ap@example.com", mail.mime, "Inbox")
    srv.add_message("other@example.com", attachment_mail("<up-other@acme.example>", seed=7).mime, "Inbox")
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    platform = tmp_path / "platform"  # the API's own store: the bytes really travel over HTTP
    with running_api(f"sqlite:///{tmp_path / 'api.db'}", token=TOKEN, attachments_url=str(platform)) as api:
        data = make_config(srv, tmp_path / "client", [
            {"email": "ap@example.com", "attachments": {"sync": True, "max_bytes": MAX_BYTES,
                                                        "content_types": CONTENT_TYPES}},
            "other@example.com"], concurrency={"mailboxes": 1})
        data["destination"] = {"kind": "reinfer", "url": api.url, "project": "acme", "source": "mail",
                               "token": {"env": TOKEN_ENV}}
        summary, code = sync(data)
        assert code == 0, summary

        source = requests.get(f"{api.url}/api/v1/sources/acme/mail", headers={"Authorization": f"Bearer {TOKEN}"},
                              timeout=10).json()["source"]
        comment = api.store.get_comment(hexid("<up-1@acme.example>"), source="acme/mail").to_api()
        stored = {i: a["attachment_reference"] for i, a in enumerate(comment["attachments"])
                  if a.get("attachment_reference")}
        assert len(stored) == 2  # the PDF and the attached message (.eml); inline/over-size/exe are not stored
        first = uploads(api, source["id"], comment["id"])
        assert [u["index"] for u in first if u["uploaded"]] == sorted(stored)
        for index, sha in stored.items():
            assert first[index]["content_hash"] == sha
            body = (platform / sha[:2] / sha).read_bytes()
            assert hashlib.sha256(body).hexdigest() == sha
        pdf_index = next(i for i, a in enumerate(comment["attachments"]) if a["name"] == "invoice 4411.pdf")
        assert (platform / stored[pdf_index][:2] / stored[pdf_index]).read_bytes() == mail.pdf
        # The mailbox without the option: nothing uploaded.
        other = hexid("<up-other@acme.example>")
        assert not any(u["uploaded"] for u in uploads(api, source["id"], other))
        assert set(p.name for p in platform.rglob("*") if len(p.name) == 64) == set(stored.values())

        # A second run (and a new mail in the other mailbox) uploads nothing again.
        srv.add_message("ap@example.com", attachment_mail("<up-2@acme.example>", subject="Reminder",
                                                          date="Tue, 05 Mar 2024 10:00:00 +0000").mime, "Inbox")
        summary, code = sync(data)
        assert code == 0, summary
        assert uploads(api, source["id"], comment["id"]) == first
        second = uploads(api, source["id"], hexid("<up-2@acme.example>"))
        assert sum(u["uploaded"] for u in second) == 2  # its own comment's entries (the same files)

        # A changed file at the same index is sent again; the same one is not (the destination's ledger).
        from exchange_sync.attachments import AttachmentStore, attachments_url
        from exchange_sync.destinations.reinfer import ReinferClient
        from exchange_sync.store import SqlStore

        client_store = AttachmentStore(attachments_url(data["staging"]["url"]))
        dest = ReinferClient(api.url, "acme", "mail", TOKEN, ledger=SqlStore(data["state"]["url"]))
        swapped = {**comment, "attachments": [dict(a) for a in comment["attachments"]]}
        other_index = next(i for i in stored if i != pdf_index)
        swapped["attachments"][pdf_index]["attachment_reference"] = stored[other_index]
        counts = dest.upload_attachments([swapped], client_store)
        assert (counts.uploaded, counts.already) == (1, 1)
        assert uploads(api, source["id"], comment["id"])[pdf_index]["content_hash"] == stored[other_index]
        assert dest.upload_attachments([swapped], client_store).uploaded == 0

        # The route: the token before the body, a size limit, an unknown comment or index.
        url = f"{api.url}/api/_private/sources/id:{source['id']}/comments/{comment['id']}/attachments/0"
        files = {"file": ("a.pdf", b"%PDF-1.7 x", "application/pdf")}
        assert requests.put(url, files=files, timeout=10).status_code == 401
        assert requests.put(url, files=files, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        # A declared length over the limit: 413 at once, not a byte of the body read.
        connection = http.client.HTTPConnection(api.url.split("//", 1)[1], timeout=10)
        connection.putrequest("PUT", url.split(api.url, 1)[1])
        for name, value in (("Authorization", f"Bearer {TOKEN}"), ("Content-Length", str(64 * 2**20)),
                            ("Content-Type", "multipart/form-data; boundary=b")):
            connection.putheader(name, value)
        connection.endheaders()
        big = connection.getresponse()
        assert big.status == 413 and b"larger than" in big.read()
        connection.close()
        missing = requests.put(url.replace(comment["id"], "ab" * 8), files=files, timeout=10,
                               headers={"Authorization": f"Bearer {TOKEN}"})
        assert missing.status_code == 404 and "not found" in missing.json()["message"]
        no_index = requests.put(url[:-1] + "9", files=files, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"})
        assert no_index.status_code == 404 and "no attachment 9" in no_index.json()["message"]

        # A bad token fails the run clearly (before any upload) and never shows the token.
        monkeypatch.setenv(TOKEN_ENV, "not-the-token-" + "n" * 20)
        srv.add_message("ap@example.com", attachment_mail("<up-3@acme.example>", seed=3).mime, "Inbox")
        summary, code = sync(data)
        assert code == 1
        errors = summary["mailboxes"][0]["errors"]
        assert "rejected the API token" in errors and "not-the-token" not in errors
        assert api.store.get_comment(hexid("<up-3@acme.example>"), source="acme/mail") is None
