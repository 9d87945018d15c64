"""Credentials, TLS and server faults against the EWS test server (no timing assertions: outcomes and request logs)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from .source_support import PASSWORD, connection

from exchange_sync.config import TlsConfig
from exchange_sync.sources.ews import EwsSource
from exchange_sync.sources import InvalidCredentials, ServerUnavailable, TlsError

ews_testing = pytest.importorskip("ews_testserver.testing", reason="the EWS test server (ews_testserver) is missing")
pytestmark = pytest.mark.timeout(120)


def chain_text(exc: BaseException) -> str:
    parts, cur, seen = [], exc, set()
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        parts += [str(cur), repr(cur)]
        cur = cur.__cause__ or cur.__context__
    return "\n".join(parts)


def inbox(mb):
    return next(f for f in mb.mail_folders(["Inbox"], []) if f.path == "Inbox")


# ---- credentials --------------------------------------------------------------------------------
@pytest.mark.timeout(30)  # exchangelib's FaultTolerance would wait up to an hour on a 401
@pytest.mark.parametrize("auth", ["ntlm", "basic"])
def test_bad_password_fails_at_once(srv, make_source, auth):
    wrong = "Wr0ng-pa55-" + auth
    seq = srv.last_seq()
    with pytest.raises(InvalidCredentials) as info:
        make_source(wrong, auth=auth).open_mailbox("ap@example.com").mail_folders(None, [])
    err = info.value
    assert err.reason == "invalid_exchange_credentials" and "401" in str(err)
    text = chain_text(err)
    assert wrong not in text and PASSWORD not in text
    assert len(srv.log(seq)) <= 1  # no retry storm


def test_password_changed_mid_run(srv, make_source):
    src = make_source()
    mb = src.open_mailbox("ap@example.com")
    f = inbox(mb)
    srv.set_password("svc@example.com", "rotated-" + PASSWORD)
    try:
        src.protocol.close()  # new connections must authenticate again (NTLM is per connection)
        with pytest.raises(InvalidCredentials):
            list(mb.sync_pages(f, None))
    finally:
        srv.set_password("svc@example.com", PASSWORD)


# ---- TLS ----------------------------------------------------------------------------------------
def test_wrong_ca_fails_clearly(srv, make_source):
    with pytest.raises(TlsError) as info:
        make_source(tls=TlsConfig()).open_mailbox("ap@example.com").mail_folders(None, [])
    assert info.value.reason == "tls_error"
    assert "certificate verify failed" in str(info.value) and "ca_bundle" in str(info.value)


@pytest.fixture(scope="module")
def ecdsa_srv():
    with ews_testing.running_server(accounts=[f"svc@example.com:{PASSWORD}"],
                                    mailboxes=["svc@example.com=generate:3"], tls=True, cert_type="ecdsa") as s:
        yield s


def ecdsa_source(srv, tls: TlsConfig) -> EwsSource:
    return EwsSource(connection(srv, tls=tls), SecretStr(PASSWORD), max_connections=1)


def test_environment_ca_variables_do_not_override_the_configuration(srv, make_source, monkeypatch):
    """requests merges REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE over the session's verify: a configured
    ca_bundle then stopped replacing the trust store and ``verify: false`` was turned back on."""
    import certifi

    # The environment trusts the test CA, the configuration does not: the configuration wins.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", srv.ca_file)
    monkeypatch.setenv("CURL_CA_BUNDLE", srv.ca_file)
    with pytest.raises(TlsError):
        make_source(tls=TlsConfig(ca_bundle=certifi.where())).open_mailbox("ap@example.com").mail_folders(None, [])
    # The environment names a bundle without the test CA; the configuration turned verification off.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    assert inbox(make_source(tls=TlsConfig(verify=False)).open_mailbox("ap@example.com"))
    # And the configured CA bundle is used as configured.
    assert inbox(make_source(tls=TlsConfig(ca_bundle=srv.ca_file)).open_mailbox("ap@example.com"))


def test_verify_false_warns_once_not_per_request(srv, make_source, caplog, recwarn):
    import logging

    caplog.set_level(logging.WARNING, logger="exchange_sync.sources.ews.source")
    for _ in range(2):
        mb = make_source(tls=TlsConfig(verify=False)).open_mailbox("ap@example.com")
        list(mb.sync_pages(inbox(mb), None))
    ours = [r for r in caplog.records if "verification is OFF" in r.getMessage()]
    assert len(ours) <= 1  # once per server and process (an earlier test may have warned already)
    assert not [w for w in recwarn if "InsecureRequestWarning" in type(w.message).__name__]


def test_cipher_mismatch_fails_the_handshake(ecdsa_srv):
    tls = TlsConfig(ca_bundle=ecdsa_srv.ca_file, ciphers="AES128-SHA", max_version="1.2")
    with ecdsa_source(ecdsa_srv, tls) as src, pytest.raises(TlsError) as info:
        src.open_mailbox("svc@example.com").mail_folders(None, [])
    assert "no shared cipher" in str(info.value) and "handshake" in str(info.value)


def test_cipher_match_works(ecdsa_srv):
    tls = TlsConfig(ca_bundle=ecdsa_srv.ca_file, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", min_version="1.2",
                    max_version="1.2")
    with ecdsa_source(ecdsa_srv, tls) as src:
        assert [f.path for f in src.open_mailbox("svc@example.com").mail_folders(["Inbox"], [])] == ["Inbox"]


def test_tls13_ignores_the_cipher_string_unless_capped(ecdsa_srv):
    """Documents what tls.ciphers restricts: without max_version 1.2 the TLS 1.3 suites still negotiate."""
    tls = TlsConfig(ca_bundle=ecdsa_srv.ca_file, ciphers="AES128-SHA")
    with ecdsa_source(ecdsa_srv, tls) as src:
        assert src.open_mailbox("svc@example.com").mail_folders(["Inbox"], [])


# ---- server faults ------------------------------------------------------------------------------
def test_server_busy_is_honoured_and_retried(srv, make_source):
    mb = make_source().open_mailbox("ap@example.com")
    f = inbox(mb)
    srv.set_faults([{"operation": "SyncFolderItems", "kind": "server_busy", "count": 2, "back_off_ms": 300}])
    seq = srv.last_seq()
    pages = list(mb.sync_pages(f, None))
    assert sum(len(p.changes) for p in pages) == 6
    assert [e["operation"] for e in srv.log(seq)].count("SyncFolderItems") == 3
    assert srv.faults()[0]["fired"] == 2


def test_server_busy_beyond_the_budget_is_server_unavailable(srv, make_source):
    mb = make_source().open_mailbox("ap@example.com")
    f = inbox(mb)
    srv.set_faults([{"operation": "SyncFolderItems", "kind": "server_busy", "count": 0, "back_off_ms": 600_000}])
    with pytest.raises(ServerUnavailable) as info:
        list(mb.sync_pages(f, None))
    assert info.value.reason == "server_unavailable" and "back off" in str(info.value)


def test_http_503_with_retry_after_is_retried(srv, make_source):
    mb = make_source().open_mailbox("ap@example.com")
    f = inbox(mb)
    refs = [r for p in mb.sync_pages(f, None) for r in p.changes]
    srv.set_faults([{"operation": "GetItem", "kind": "http_503", "count": 2, "retry_after_s": 1}])
    result = mb.fetch(refs, f)
    assert result.table.num_rows == len(refs) and not result.missing_ids
    assert srv.faults()[0]["fired"] == 2


@pytest.mark.parametrize("max_connections", [1, 3])
def test_dropped_connections_are_retried(srv, make_source, max_connections):
    mb = make_source(max_connections=max_connections, fetch_chunk_size=2).open_mailbox("ap@example.com")
    f = inbox(mb)
    refs = [r for p in mb.sync_pages(f, None) for r in p.changes]
    srv.set_faults([{"operation": "GetItem", "kind": "drop", "count": 2}])
    result = mb.fetch(refs, f)
    assert sorted(result.table.column("item_id").to_pylist()) == sorted(r.item_id for r in refs)
    assert srv.faults()[0]["fired"] == 2


def test_drops_beyond_the_retry_budget(srv, make_source):
    mb = make_source().open_mailbox("ap@example.com")
    f = inbox(mb)
    srv.set_faults([{"operation": "SyncFolderItems", "kind": "drop", "count": 0}])
    with pytest.raises(ServerUnavailable) as info:
        list(mb.sync_pages(f, None))
    assert "SyncFolderItems" in str(info.value)


def test_exceeded_connection_count_backs_off_and_completes(srv, make_source):
    mb = make_source(max_connections=4, fetch_chunk_size=1).open_mailbox("ap@example.com")
    f = inbox(mb)
    refs = [r for p in mb.sync_pages(f, None) for r in p.changes]
    # The slow rule makes the parallel chunks overlap on the server, so some arrive over the budget of 1.
    srv.set_faults([{"operation": "GetItem", "kind": "connection_count", "count": 3, "max_concurrent": 1},
                    {"operation": "GetItem", "kind": "slow", "count": 0, "delay_s": 0.3}])
    result = mb.fetch(refs, f)
    assert sorted(result.table.column("item_id").to_pylist()) == sorted(r.item_id for r in refs)
    assert srv.faults()[0]["fired"] >= 1  # only requests over the concurrency budget are answered with the fault


# ---- OAuth2 client credentials --------------------------------------------------------------------
def test_oauth2_client_credentials(srv):
    from .source_support import IMP_PASSWORD

    base = srv.url.split("/EWS/")[0]
    conn = connection(srv, auth="oauth2", username=None, access_type="impersonation", tenant_id="tenant-guid",
                      client_id="imp@example.com", client_secret={"env": "EXCHANGE_SYNC_TEST_UNUSED"},
                      authority=base)
    with EwsSource(conn, SecretStr(IMP_PASSWORD), max_connections=1) as src:
        mb = src.open_mailbox("other@example.com")
        f = inbox(mb)
        assert sum(len(p.changes) for p in mb.sync_pages(f, None)) > 0
    with EwsSource(conn, SecretStr("wrong-secret"), max_connections=1) as src, pytest.raises(InvalidCredentials) as info:
        src.open_mailbox("other@example.com").mail_folders(None, [])
    assert "wrong-secret" not in chain_text(info.value)
