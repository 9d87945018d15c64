"""ApiGate: authentication before any body is read, per-route streaming body limits, the Host check
of --no-auth (DNS rebinding), the OpenAPI document behind the token, and an access log without
query strings. Over real HTTP (uvicorn in a thread); the memory bound is measured on a real
`exchange-sync api` process in tests/security/test_api_memory.py."""

from __future__ import annotations

import logging
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests

from exchange_sync.api.gate import MAX_LOGIN_BYTES, MAX_SYNC_JSON_VALUES, host_of
from tests.support.api import ApiUnderTest, running_api
from tests.support.comments import make_comment

SYNC = "/api/v1/sources/acme/emails/sync"


def raw_request(url: str, head: str, body: bytes = b"", *, timeout: float = 10) -> tuple[int, bytes, float]:
    """Send ``head`` (request line + headers) and ``body`` over a plain socket; return the status,
    the raw answer and the seconds until the first byte of the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        started = time.monotonic()
        answer = sock.recv(65536)
        elapsed = time.monotonic() - started
        while b"\r\n\r\n" not in answer:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    return int(answer.split(b" ", 2)[1]), answer, elapsed


def test_bad_body_without_token_is_401_not_400(api: ApiUnderTest) -> None:
    # Before: FastAPI parsed the body before the token dependency ran ("{bad" -> 400).
    response = requests.post(api.url + SYNC, data=b"{bad", headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    response = requests.post(api.url + SYNC, data=b"{bad", timeout=30,
                             headers={"Content-Type": "application/json", "Authorization": "Bearer wrong"})
    assert response.status_code == 401


def test_unauthenticated_body_is_never_read(api: ApiUnderTest) -> None:
    # 64 MB announced, not one byte sent: the 401 comes at once (the server does not wait for the body).
    head = (f"POST {SYNC} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {64 * 1024 * 1024}\r\n")
    status, answer, elapsed = raw_request(api.url, head)
    assert status == 401 and elapsed < 5, answer[:300]


def test_declared_body_over_the_limit_is_413_before_reading(api: ApiUnderTest) -> None:
    head = (f"POST {SYNC} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {api.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {64 * 1024 * 1024}\r\n")
    status, _answer, elapsed = raw_request(api.url, head)
    assert status == 413 and elapsed < 5


def test_login_form_limit_applies_while_reading(api: ApiUnderTest) -> None:
    def chunks():  # no Content-Length: only counting while reading can refuse it
        yield b"token=x&next=%2F&pad="
        for _ in range(40):
            yield b"a" * 1024

    response = requests.post(api.url + "/login", data=chunks(), timeout=30,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    head = (f"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {MAX_LOGIN_BYTES + 1}\r\n")
    status, _answer, elapsed = raw_request(api.url, head)
    assert status == 413 and elapsed < 5
    # A normal sign-in still works.
    good = requests.post(api.url + "/login", data={"token": api.token, "next": "/"}, allow_redirects=False, timeout=30)
    assert good.status_code == 303


def test_sync_json_value_cap(api: ApiUnderTest) -> None:
    # Within the byte limit, but a million tiny values would cost ~100 bytes each once parsed.
    body = b'{"comments": [' + b"0," * (MAX_SYNC_JSON_VALUES + 1) + b"0]}"
    response = requests.post(api.url + SYNC, data=body, headers={**api.headers(), "Content-Type": "application/json"},
                             timeout=60)
    assert response.status_code == 413 and "split the batch" in response.json()["message"]
    ok = requests.post(api.url + SYNC, json={"comments": [make_comment(1).to_api()]}, headers=api.headers(), timeout=30)
    assert ok.status_code == 200 and ok.json()["new"] == 1


def test_openapi_behind_token_and_no_third_party_scripts(api: ApiUnderTest) -> None:
    assert requests.get(api.url + "/openapi.json", timeout=30).status_code == 401
    assert requests.get(api.url + "/openapi.json", headers=api.headers(), timeout=30).status_code == 200
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        response = requests.get(api.url + path, headers=api.headers(), timeout=30)
        assert response.status_code == 404, path
    for path in ("/", "/comment?source=a/b&id=ff"):
        page = requests.get(api.url + path, timeout=30).text
        assert "<script" not in page and "cdn" not in page.lower()


def test_access_log_has_no_query_string(api: ApiUnderTest, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="exchange_sync.api.access"):
        requests.get(f"{api.url}/?token={api.token}&mailbox=secret-query", timeout=30)
        requests.get(f"{api.url}/api/_private/sources/a/b/comments?limit=5&note=secret-query", headers=api.headers(), timeout=30)
        time.sleep(0.2)
    lines = [r.getMessage() for r in caplog.records if r.name == "exchange_sync.api.access"]
    assert len(lines) == 2 and '"GET / HTTP' not in lines[0]
    assert '"GET /" 401' in lines[0] and '"GET /api/_private/sources/a/b/comments" 200' in lines[1]
    assert not [line for line in lines if api.token in line or "secret-query" in line]


@pytest.mark.parametrize("host,allowed", [
    ("127.0.0.1", True), ("localhost", True), ("[::1]", True), ("LOCALHOST.", True),
    ("evil.example", False), ("127.0.0.1.evil.example", False), ("", False),
])
def test_no_auth_checks_the_host_header(db_url: str, host: str, allowed: bool) -> None:
    with running_api(db_url, token=None) as api:
        port = urlsplit(api.url).port
        header = f"Host: {host}:{port}\r\n" if host else ""
        version = "HTTP/1.1" if host else "HTTP/1.0"  # HTTP/1.0 may omit Host
        status, answer, _ = raw_request(api.url, f"GET /api/_private/sources/a/b/comments {version}\r\n{header}"
                                                 "Connection: close\r\n")
        assert (status == 200) == allowed, answer[:300]
        if not allowed:
            assert status == 421


def test_host_of() -> None:
    assert host_of("127.0.0.1:8000") == "127.0.0.1"
    assert host_of("[::1]:8000") == "::1"
    assert host_of("Evil.Example:80") == "evil.example"
    assert host_of("localhost.") == "localhost"
