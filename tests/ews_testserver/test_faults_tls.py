"""Fault plans against exchangelib's retry policies, and TLS cipher/version restrictions."""

from __future__ import annotations

import ssl
import threading

import pytest
import requests
from exchangelib import FailFast, FaultTolerance
from exchangelib.errors import (
    ErrorExceededConnectionCount,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    RateLimitError,
    TransportError,
)

from ews_testserver.testing import RunningServer, exchangelib_account, exchangelib_tls, running_server

SYNC_FIELDS = ["message_id", "datetime_received"]


def _acc(srv: RunningServer, policy=None):
    return exchangelib_account(srv, "user@example.com", "secret", "user@example.com", retry_policy=policy)


@pytest.fixture()
def faulty(srv: RunningServer):
    srv.clear_faults()
    yield srv
    srv.clear_faults()


def _fired(srv: RunningServer, seq: int, kind: str) -> list[dict]:
    return [e for e in srv.log(seq) if e.get("fault") == kind]


def test_server_busy_failfast_raises_with_back_off(faulty: RunningServer) -> None:
    acc = _acc(faulty, FailFast())
    acc.inbox  # noqa: B018 - resolve folders before arming the fault
    faulty.set_faults([{"operation": "SyncFolderItems", "kind": "server_busy", "back_off_ms": 1500}])
    with pytest.raises(ErrorServerBusy) as info:
        list(acc.inbox.sync_items(only_fields=SYNC_FIELDS))
    assert info.value.back_off == 1.5


def test_server_busy_fault_tolerance_backs_off_and_succeeds(faulty: RunningServer) -> None:
    acc = _acc(faulty, FaultTolerance(max_wait=10))
    acc.inbox  # noqa: B018
    seq = faulty.last_seq()
    faulty.set_faults([{"operation": "SyncFolderItems", "kind": "server_busy", "after": 1, "count": 2,
                        "back_off_ms": 200}])
    changes = list(acc.inbox.sync_items(only_fields=SYNC_FIELDS, max_changes_returned=20))
    assert len(changes) == acc.inbox.total_count
    assert len(_fired(faulty, seq, "server_busy")) == 2
    ops = [e for e in faulty.log(seq) if e["operation"] == "SyncFolderItems"]
    assert [e["status"] for e in ops[:4]] == [200, 500, 500, 200]  # the 2nd page was retried twice


def test_server_busy_longer_than_max_wait_is_a_rate_limit_error(faulty: RunningServer) -> None:
    acc = _acc(faulty, FaultTolerance(max_wait=1))
    acc.inbox  # noqa: B018
    faulty.set_faults([{"operation": "*", "kind": "server_busy", "back_off_ms": 5000}])
    with pytest.raises(RateLimitError):
        list(acc.inbox.sync_items(only_fields=SYNC_FIELDS))


def test_http_503_failfast_and_retry_after(faulty: RunningServer) -> None:
    acc = _acc(faulty, FailFast())
    acc.inbox  # noqa: B018
    faulty.set_faults([{"operation": "GetItem", "kind": "http_503", "retry_after_s": 1}])
    (_c, item), *_ = list(acc.inbox.sync_items(only_fields=SYNC_FIELDS, max_changes_returned=1))
    with pytest.raises(ErrorServerBusy):
        list(acc.fetch(ids=[(item.id, item.changekey)], only_fields=["subject"]))
    from exchangelib import close_connections

    close_connections()  # Protocols are cached per endpoint+credentials, retry policy included
    tolerant = _acc(faulty, FaultTolerance(max_wait=10))
    seq = faulty.last_seq()
    faulty.set_faults([{"operation": "GetItem", "kind": "http_503", "retry_after_s": 1}])
    (fetched,) = list(tolerant.fetch(ids=[(item.id, item.changekey)], only_fields=["subject"]))
    assert fetched.subject
    assert [e["status"] for e in faulty.log(seq) if e["operation"] == "GetItem"] == [503, 200]


GET_INBOX = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
             b'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
             b'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Body><m:GetFolder>'
             b'<m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds>'
             b'<t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder></s:Body></s:Envelope>')


def test_connection_count_over_budget(faulty: RunningServer) -> None:
    """Two concurrent requests against a budget of 1: the one arriving second is refused."""
    faulty.set_faults([
        {"operation": "GetFolder", "kind": "slow", "delay_s": 1.0, "count": 1},
        {"operation": "GetFolder", "kind": "connection_count", "max_concurrent": 1, "count": 0},
    ])
    acc = _acc(faulty, FailFast())
    results: list[object] = []
    first = threading.Thread(target=lambda: results.append(acc.inbox.total_count))
    first.start()
    while faulty.admin("GET", "/health")["in_flight"] < 1 and first.is_alive():
        threading.Event().wait(0.02)  # wait until the slow request is being served
    second = requests.post(faulty.url, data=GET_INBOX, auth=("user@example.com", "secret"), timeout=30)
    first.join()
    assert isinstance(results[0], int)
    assert second.status_code == 500 and b"ErrorExceededConnectionCount" in second.content
    # exchangelib maps the fault to its exception class (budget 0: every request is over it)
    from exchangelib import close_connections

    close_connections()
    faulty.set_faults([{"operation": "*", "kind": "connection_count", "max_concurrent": 0, "count": 1}])
    with pytest.raises(ErrorExceededConnectionCount):
        _acc(faulty, FailFast()).inbox  # noqa: B018


def test_drop_and_slow(faulty: RunningServer) -> None:
    acc = _acc(faulty, FailFast())
    acc.inbox  # noqa: B018
    seq = faulty.last_seq()
    faulty.set_faults([{"operation": "SyncFolderItems", "kind": "drop"}])
    with pytest.raises((ErrorTimeoutExpired, TransportError)):
        list(acc.inbox.sync_items(only_fields=SYNC_FIELDS))
    faulty.set_faults([{"operation": "SyncFolderItems", "kind": "slow", "delay_s": 0.3}])
    assert list(acc.inbox.sync_items(only_fields=SYNC_FIELDS))
    assert [e.get("fault") for e in faulty.log(seq) if e["operation"] == "SyncFolderItems"][:2] == ["drop", "slow"]
    snapshot = faulty.faults()
    assert snapshot[0]["fired"] == 1 and snapshot[0]["seen"] >= 1


# -- TLS ----------------------------------------------------------------------------------------

RSA_CIPHER = "ECDHE-RSA-AES128-GCM-SHA256"


@pytest.fixture(scope="module")
def tls_srv():
    with running_server(accounts=["user@example.com:secret"], mailboxes=["user@example.com=generate:10"],
                        tls=True, ciphers=RSA_CIPHER, cert_type="rsa") as server:
        yield server
    assert server.returncode == 0


@pytest.mark.parametrize("auth", ["basic", "ntlm"])
def test_https_with_matching_cipher(tls_srv: RunningServer, auth: str) -> None:
    with exchangelib_tls(tls_srv.ca_file, ciphers=RSA_CIPHER + ":ECDHE-ECDSA-AES128-GCM-SHA256"):
        acc = exchangelib_account(tls_srv, "user@example.com", "secret", "user@example.com", auth=auth)
        assert len(list(acc.inbox.sync_items(only_fields=SYNC_FIELDS))) == acc.inbox.total_count


def test_https_with_non_matching_cipher_fails(tls_srv: RunningServer) -> None:
    with exchangelib_tls(tls_srv.ca_file, ciphers="ECDHE-RSA-AES256-GCM-SHA384", max_tls=ssl.TLSVersion.TLSv1_2):
        acc = exchangelib_account(tls_srv, "user@example.com", "secret", "user@example.com")
        with pytest.raises(TransportError):
            acc.inbox  # noqa: B018
    with pytest.raises(requests.exceptions.SSLError):  # and the server really is capped at TLS 1.2
        ctx_adapter_session(tls_srv, min_tls=ssl.TLSVersion.TLSv1_3)


def test_untrusted_certificate_is_refused(tls_srv: RunningServer) -> None:
    from exchangelib import close_connections

    close_connections()
    acc = exchangelib_account(tls_srv, "user@example.com", "secret", "user@example.com")
    with pytest.raises(TransportError):
        acc.inbox  # noqa: B018


def ctx_adapter_session(srv: RunningServer, **kwargs) -> requests.Response:
    from ews_testserver.testing import tls_adapter

    session = requests.Session()
    session.mount("https://", tls_adapter(srv.ca_file, **kwargs)())
    return session.get(srv.admin_url + "/health", headers={"Authorization": f"Bearer {srv.admin_token}"}, timeout=10)


def test_min_tls_and_ecdsa_certificate() -> None:
    with running_server(mailboxes=["user@example.com=generate:3"], tls=True, min_tls="1.3",
                        cert_type="ecdsa") as server:
        assert ctx_adapter_session(server).status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            ctx_adapter_session(server, max_tls=ssl.TLSVersion.TLSv1_2)
        with exchangelib_tls(server.ca_file):
            acc = exchangelib_account(server, "user@example.com", "secret", "user@example.com", auth="ntlm")
            assert acc.inbox.total_count >= 1
    assert server.returncode == 0


@pytest.mark.parametrize("chunked", [False, True])
def test_a_request_cut_off_by_a_dying_client_is_dropped_not_answered(srv: RunningServer, chunked: bool) -> None:
    """A client killed mid-request (kill -9 of a run) leaves half a body: nothing is answered, logged or
    reported to the protocol audit as a malformed request, and the server keeps serving."""
    import base64
    import socket
    import urllib.parse

    url = urllib.parse.urlsplit(srv.url)
    body = b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    auth = base64.b64encode(b"user@example.com:secret").decode()
    head = (f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Basic {auth}\r\n"
            "Content-Type: text/xml; charset=utf-8\r\n")
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {len(body) + 500}\r\n\r\n"
    seq = srv.last_seq()
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(head.encode() + (f"{len(body) + 500:x}\r\n".encode() if chunked else b"") + body)
        sock.shutdown(socket.SHUT_WR)  # the client is gone
        assert sock.recv(1024) == b""  # closed without an answer
    assert srv.log(seq) == []
    assert srv.admin("GET", "/health")["ok"]
