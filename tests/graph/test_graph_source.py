"""GraphSource against the Graph test server: paging, $batch, immutable ids across moves, errors."""

from __future__ import annotations

import pytest

from ews_testserver.testing import make_mime
from exchange_sync.config import GraphConnection
from exchange_sync.sources.graph import GraphSource
from exchange_sync.sources import (InvalidCredentials, InvalidSyncState, MailboxAccessDenied, MailboxNotFound, ServerUnavailable)
from graph_testserver.testing import running_graph_server


@pytest.fixture(scope="module")
def srv():
    with running_graph_server(mailboxes=["ap@example.com=generate:45", "other@example.com=generate:3"],
                              apps=["client-id:client-secret", "scoped:scoped-secret"],
                              policies=["scoped=other@example.com"]) as server:
        yield server


def source(srv, **kw) -> GraphSource:
    return GraphSource(GraphConnection.model_validate(srv.connection(**kw)))


def inbox(mb):
    return next(f for f in mb.mail_folders() if f.path == "Inbox")


def test_pages_are_one_request_each_and_sizes_agree(srv):
    with source(srv) as src:
        mb = src.open_mailbox("ap@example.com")
        folder = inbox(mb)
        mark = srv.last_seq()
        small = list(mb.sync_pages(folder, None, page_size=4))
        deltas = [e for e in srv.log(mark) if e["operation"] == "messages.delta"]
        assert len(deltas) == len(small) and all(e["page_size"] == 4 for e in deltas)
        assert [p.last_page for p in small] == [False] * (len(small) - 1) + [True]
        assert all(len(p.changes) <= 4 for p in small)
        big = list(mb.sync_pages(folder, None, page_size=512))
        assert len(big) == 1
        assert [r.item_id for p in small for r in p.changes] == [r.item_id for r in big[0].changes]
        # Resuming from a page's state continues where it stopped.
        rest = list(mb.sync_pages(folder, small[0].sync_state, page_size=4))
        assert [r.item_id for p in rest for r in p.changes] == [r.item_id for p in small[1:] for r in p.changes]
        assert small[0].sync_state.startswith("graph2:i:") and small[-1].sync_state.startswith("graph2:d:")


def test_fetch_batches_at_most_20_and_mime_is_byte_identical(srv):
    with source(srv) as src:
        mb = src.open_mailbox("ap@example.com")
        folder = inbox(mb)
        refs = [r for p in mb.sync_pages(folder, None) for r in p.changes]
        assert len(refs) > 20
        mark = srv.last_seq()
        result = mb.fetch(refs, folder)
        batches = [e for e in srv.log(mark) if e["operation"] == "batch"]
        assert len(batches) == -(-len(refs) // 20) and all(e["items"] <= 20 for e in batches)
        assert result.table.num_rows == len(refs) and not result.missing_ids and not result.failed
        assert result.table.column("item_id").to_pylist() == [r.item_id for r in refs]
        mime = result.table.column("mime_content").to_pylist()
        import requests

        token = src.tokens.token()
        one = requests.get(f"{srv.graph_url}/users/ap@example.com/messages/{refs[0].item_id}/$value",
                           headers={"Authorization": f"Bearer {token}"}, verify=srv.ca_file, timeout=30)
        assert one.content == mime[0]


def test_move_keeps_the_immutable_id(srv):
    srv.add_message("ap@example.com", make_mime("movable", "<mv-src@acme.com>"), "Inbox")
    srv.create_folder("ap@example.com", "Archive")
    with source(srv) as src:
        mb = src.open_mailbox("ap@example.com")
        folders = {f.path: f for f in mb.mail_folders()}
        states = {}
        ids = {}
        for path in ("Inbox", "Archive"):
            pages = list(mb.sync_pages(folders[path], None))
            states[path] = pages[-1].sync_state
            ids.update({r.internet_message_id: r.item_id for p in pages for r in p.changes})
        srv.move("ap@example.com", "<mv-src@acme.com>", "Archive")
        moved_in = [r for p in mb.sync_pages(folders["Archive"], states["Archive"]) for r in p.changes]
        removed = [d for p in mb.sync_pages(folders["Inbox"], states["Inbox"]) for d in p.deletes]
        assert [r.item_id for r in moved_in] == [ids["<mv-src@acme.com>"]]
        assert removed == [ids["<mv-src@acme.com>"]]
        assert mb.fetch(moved_in, folders["Archive"]).table.num_rows == 1


def test_errors_map_to_reasons(srv):
    with source(srv) as src:
        with pytest.raises(MailboxNotFound):
            src.open_mailbox("ghost@example.com").mail_folders()
        mb = src.open_mailbox("ap@example.com")
        folder = inbox(mb)
        with pytest.raises(InvalidSyncState):
            next(mb.sync_pages(folder, "not-a-graph-state"))
        other = next(f for f in mb.mail_folders() if f.path == "Sent Items")
        good = list(mb.sync_pages(other, None))[-1].sync_state
        with pytest.raises(InvalidSyncState):  # a state of another folder
            next(mb.sync_pages(folder, good))
    import os

    scoped_conn = GraphConnection.model_validate(srv.connection(secret_env="SCOPED_SECRET", client_id="scoped"))
    os.environ["SCOPED_SECRET"] = "scoped-secret"  # connection() set the default app's secret there
    scoped = GraphSource(scoped_conn)
    with scoped:
        assert scoped.open_mailbox("other@example.com").mail_folders()
        with pytest.raises(MailboxAccessDenied):
            scoped.open_mailbox("ap@example.com").mail_folders()
    os.environ["WRONG_SECRET"] = "wrong"
    conn = srv.connection()
    conn["client_secret"] = {"env": "WRONG_SECRET"}
    with GraphSource(GraphConnection.model_validate(conn)) as bad:
        with pytest.raises(InvalidCredentials) as info:
            bad.open_mailbox("ap@example.com").mail_folders()
        assert "wrong" not in str(info.value)


def test_retry_after_beyond_max_backoff_fails_fast(srv):
    srv.set_faults([{"operation": "mailFolders.delta", "kind": "throttle", "retry_after_s": 30, "count": 1}])
    try:
        with source(srv, max_backoff_s=5) as src:
            with pytest.raises(ServerUnavailable, match="max_backoff_s"):
                src.open_mailbox("ap@example.com").mail_folders()
    finally:
        srv.clear_faults()


def test_410_on_a_delta_page_is_invalid_sync_state(srv):
    with source(srv) as src:
        mb = src.open_mailbox("ap@example.com")
        folder = inbox(mb)
        state = list(mb.sync_pages(folder, None))[-1].sync_state
        srv.set_faults([{"operation": "messages.delta", "kind": "gone", "count": 1}])
        try:
            with pytest.raises(InvalidSyncState):
                next(mb.sync_pages(folder, state))
        finally:
            srv.clear_faults()


def test_certificate_credential_signs_a_client_assertion(tmp_path):
    """msal signs a JWT with the app's private key; the server verifies it against the uploaded certificate."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "exchange-sync")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "other.pem").write_bytes(other.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    thumb = cert.fingerprint(hashes.SHA1()).hex().upper()
    with running_graph_server(mailboxes=["ap@example.com=generate:3"],
                              apps=["client-id:client-secret", f"certapp:cert={tmp_path / 'cert.pem'}"]) as srv:
        for key_file, ok in (("key.pem", True), ("other.pem", False)):
            conn = srv.connection(client_id="certapp")
            del conn["client_secret"]
            conn["certificate"] = {"thumbprint": thumb, "path": str(tmp_path / key_file)}
            with GraphSource(GraphConnection.model_validate(conn)) as src:
                if ok:
                    assert "Inbox" in [f.path for f in src.open_mailbox("ap@example.com").mail_folders()]
                else:
                    with pytest.raises(InvalidCredentials):
                        src.open_mailbox("ap@example.com").mail_folders()


def test_environment_ca_variables_do_not_override_the_configuration(srv, monkeypatch):
    """requests merges REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE over a request's verify=True: the configuration
    must win, for Graph and for msal's token requests through the same session."""
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", srv.ca_file)
    monkeypatch.setenv("CURL_CA_BUNDLE", srv.ca_file)
    # The configuration trusts only the public CAs (the default store): the test server's CA from the
    # environment must not make it trusted.
    with source(srv, tls={"verify": True}) as src, pytest.raises(ServerUnavailable) as info:
        inbox(src.open_mailbox("ap@example.com"))
    assert info.value.reason == "tls_error"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    with source(srv, tls={"verify": False}) as src:
        assert inbox(src.open_mailbox("ap@example.com"))
    with source(srv) as src:  # ca_bundle = the test CA, as configured
        assert inbox(src.open_mailbox("ap@example.com"))
