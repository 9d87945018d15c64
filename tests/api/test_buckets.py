"""The comments API's bucket route over HTTP: PUT raw emails as the hosted integration does (an id
sent again replaces), GET them back, the token checked before the body, bad input and the quota."""

from __future__ import annotations

import base64

import requests

from tests.support.api import running_api

from .test_gate import raw_request

URL = "/api/_private/buckets/acme/raw-mail/emails"
MIME = b"From: a@acme.com\r\nTo: b@acme.com\r\nMessage-ID: <1@acme.com>\r\nSubject: hi\r\n\r\nbody\r\n"


def _email(i: int, folder: str = "Inbox") -> dict:
    return {"id": f"{i:04x}", "mailbox": "ap@acme.com", "timestamp": "2026-11-02T09:14:03Z",
            "mime_content": base64.b64encode(MIME).decode(), "attachments": [],
            "metadata": {"folder": [folder], "received_at": "2026-11-02T09:14:03Z", "size": len(MIME),
                         "importance": "Normal", "sensitivity": "Normal", "categories": [], "has_attachments": False}}


def test_put_replaces_by_id_and_get_lists(tmp_path):
    with running_api(f"sqlite:///{tmp_path / 'api.db'}") as api:
        put = requests.put(api.url + URL, json={"emails": [_email(1), _email(2)]}, headers=api.headers(), timeout=10)
        assert put.status_code == 200 and put.json() == {"status": "ok"}
        again = requests.put(api.url + URL, json={"emails": [_email(2, folder="Archive")]}, headers=api.headers(),
                             timeout=10)
        assert again.status_code == 200
        listed = requests.get(api.url + URL, headers=api.headers(), timeout=10).json()
        assert [e["id"] for e in listed["emails"]] == ["0001", "0002"]
        assert listed["emails"][1]["metadata"]["folder"] == ["Archive"]
        one = requests.get(api.url + URL, params={"id": "0001"}, headers=api.headers(), timeout=10).json()
        assert base64.b64decode(one["emails"][0]["mime_content"]) == MIME


def test_token_is_checked_before_the_body_and_bad_input_is_refused(tmp_path):
    with running_api(f"sqlite:///{tmp_path / 'api.db'}") as api:
        # 64 MB announced without a token, not one byte sent: the 401 comes at once (the body is never read).
        head = (f"PUT {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {64 * 1024 * 1024}\r\n")
        status, answer, _elapsed = raw_request(api.url, head)
        assert status == 401, answer[:300]
        bad_json = requests.put(api.url + URL, data=b"{bad", headers={"Content-Type": "application/json"}, timeout=10)
        assert bad_json.status_code == 401  # the token before the body
        bad = _email(1) | {"mime_content": "not base64!"}
        response = requests.put(api.url + URL, json={"emails": [bad]}, headers=api.headers(), timeout=10)
        assert response.status_code == 400 and "mime_content" in response.json()["message"]
        response = requests.put(api.url + "/api/_private/buckets/acme/bad name/emails", json={"emails": []},
                                headers=api.headers(), timeout=10)
        assert response.status_code in (400, 404)
        assert requests.get(api.url + URL, headers=api.headers(), timeout=10).json()["emails"] == []


def test_quota_refuses_new_emails_with_a_quota_message(tmp_path):
    with running_api(f"sqlite:///{tmp_path / 'api.db'}", comment_quota=2) as api:
        ok = requests.put(api.url + URL, json={"emails": [_email(1), _email(2)]}, headers=api.headers(), timeout=10)
        assert ok.status_code == 200
        replaced = requests.put(api.url + URL, json={"emails": [_email(2, folder="Archive")]}, headers=api.headers(),
                                timeout=10)
        assert replaced.status_code == 200  # replacing is not growing
        refused = requests.put(api.url + URL, json={"emails": [_email(3)]}, headers=api.headers(), timeout=10)
        assert refused.status_code == 403 and "quota" in refused.json()["message"].lower()
        sync = requests.post(api.url + "/api/v1/sources/acme/mail/sync", headers=api.headers(), timeout=10,
                             json={"comments": [{"id": f"{i:02x}", "timestamp": "2026-11-02T09:14:03Z",
                                                 "messages": [{"body": {"text": "x"}}]} for i in range(3)]})
        assert sync.status_code == 403 and "quota" in sync.json()["message"].lower()
