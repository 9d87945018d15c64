"""Server-free tests of the source: folder selection, error mapping, retry policy, TLS context, isolation, redaction."""

from __future__ import annotations

import base64
import binascii
import logging
import ssl

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from exchangelib import errors as ews
from exchangelib.protocol import BaseProtocol, CachingProtocol
from pydantic import SecretStr

from exchange_sync.config import EwsConnection, TlsConfig
from exchange_sync.sources.ews import EwsSource
from exchange_sync.sources import (FolderInfo, InvalidCredentials, InvalidSyncState, MailboxAccessDenied, MailboxNotFound, ServerRejectedRequest, ServerUnavailable, SourceConfigError, TlsConfigError, TlsError)
from exchange_sync.sources.ews.errors import map_exception
from exchange_sync.sources import tls_error_from
from exchange_sync.sources.folders import RawFolder, build_folder_infos, is_mail_class, select_mail_folders
from exchange_sync.sources.ews.protocol import BoundedFaultTolerance
from exchange_sync.sources.ews.retry import call_with_retry
from exchange_sync.sources.tls import build_ssl_context

PASSWORD = "S3cr3t-Pa55word!"


def conn(**kw) -> EwsConnection:
    base = dict(
        server_url="https://mail.example.com/EWS/Exchange.asmx",
        auth="ntlm",
        username="EXAMPLE\\svc",
        password={"env": "EXCHANGE_PASSWORD"},
        access_type="delegate",
    )
    base.update(kw)
    return EwsConnection(**base)


# ---- folders ----------------------------------------------------------------------------------
def tree() -> list[FolderInfo]:
    R = "root"
    raw = [
        RawFolder("inbox", None, R, "Inbox", "IPF.Note", False, 3),
        RawFolder("sup", None, "inbox", "Suppliers", "IPF.Note", False, 1),
        RawFolder("sup2", None, "sup", "Old", "IPF.Note", False, 1),
        RawFolder("sent", None, R, "Sent Items", "IPF.Note", False, 0),
        RawFolder("junk", None, R, "Junk Email", "IPF.Note", False, 0),
        RawFolder("drafts", None, R, "Drafts", "IPF.Note", False, 0),
        RawFolder("outbox", None, R, "Outbox", "IPF.Note", False, 0),
        RawFolder("si", None, R, "Sync Issues", "IPF.Note", False, 0),
        RawFolder("conf", None, "si", "Conflicts", "IPF.Note", False, 0),
        RawFolder("ch", None, R, "Conversation History", "IPF.Note", False, 0),
        RawFolder("cal", None, R, "Calendar", "IPF.Appointment", False, 0),
        RawFolder("con", None, R, "Contacts", "IPF.Contact", False, 0),
        RawFolder("task", None, R, "Tasks", "IPF.Task", False, 0),
        RawFolder("notes", None, R, "Notes", "IPF.StickyNote", False, 0),
        RawFolder("jour", None, R, "Journal", "IPF.Journal", False, 0),
        RawFolder("rss", None, R, "RSS Feeds", "IPF.Note.OutlookHomepage", False, 0),
        RawFolder("arch", None, R, "Archive", "IPF.Note", False, 0),
        RawFolder("imap", None, "arch", "2023", "IPF.Note.Custom", False, 0),
        RawFolder("srch", None, R, "Unread", "IPF.Note", True, 0),
        RawFolder("orphan", None, "elsewhere", "Orphan", "IPF.Note", False, 0),
    ]
    dist = {"inbox": "inbox", "sentitems": "sent", "junkemail": "junk", "drafts": "drafts", "outbox": "outbox",
            "syncissues": "si", "conflicts": "conf", "conversationhistory": "ch"}
    return build_folder_infos(R, raw, dist)


def paths(infos):
    return [i.path for i in infos]


def test_paths_and_distinguished_ids():
    by_path = {i.path: i for i in tree()}
    assert by_path["Inbox/Suppliers/Old"].parent_id == "sup"
    assert by_path["Inbox"].distinguished_id == "inbox"
    assert by_path["Inbox/Suppliers"].distinguished_id is None
    assert "Orphan" not in by_path and "Unread" not in by_path  # outside the root / search folder


def test_default_selection_skips_non_mail_and_system_folders():
    assert paths(select_mail_folders(tree(), None, [])) == [
        "Archive", "Archive/2023", "Inbox", "Inbox/Suppliers", "Inbox/Suppliers/Old", "Junk Email", "Sent Items",
    ]


def test_allow_and_deny_match_subfolders_case_insensitively():
    assert paths(select_mail_folders(tree(), ["inbox"], [])) == ["Inbox", "Inbox/Suppliers", "Inbox/Suppliers/Old"]
    assert paths(select_mail_folders(tree(), ["INBOX", "Sent Items"], ["inbox/suppliers"])) == ["Inbox", "Sent Items"]
    assert "Junk Email" not in paths(select_mail_folders(tree(), None, ["junk email"]))
    # a prefix of a name is not a parent
    assert paths(select_mail_folders(tree(), ["Inb"], [])) == []


def test_allowlist_can_name_a_default_skipped_folder():
    assert paths(select_mail_folders(tree(), ["Drafts"], [])) == ["Drafts"]
    assert paths(select_mail_folders(tree(), ["Sync Issues/Conflicts"], [])) == ["Sync Issues/Conflicts"]
    assert "Calendar" not in paths(select_mail_folders(tree(), ["Calendar"], []))  # never non-mail


def test_mail_class():
    assert is_mail_class("IPF.Note") and is_mail_class("IPF.Note.Microsoft.Conversation") and is_mail_class(None)
    assert not is_mail_class("IPF.Appointment") and not is_mail_class("IPF.Notes") and not is_mail_class(
        "IPF.Note.OutlookHomepage")


# ---- error mapping ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "exc, cls, reason",
    [
        (ews.UnauthorizedError("Invalid credentials for https://x"), InvalidCredentials, "invalid_exchange_credentials"),
        (ews.ErrorNonExistentMailbox("No mailbox with such guid"), MailboxNotFound, "mailbox_not_found"),
        (ews.ErrorAccessDenied("denied"), MailboxAccessDenied, "mailbox_access_denied"),
        (ews.ErrorImpersonateUserDenied("no role"), MailboxAccessDenied, "mailbox_access_denied"),
        (ews.ErrorInvalidSyncStateData("bad"), InvalidSyncState, "invalid_sync_state"),
        (ews.RateLimitError("Max timeout reached", wait=3600), ServerUnavailable, "server_unavailable"),
        (ews.ErrorTimeoutExpired("Reraised from ConnectionError"), ServerUnavailable, "server_unavailable"),
        (ews.ErrorExceededConnectionCount("too many"), ServerUnavailable, "server_unavailable"),
        (ews.ErrorSchemaValidation("The request failed schema validation"), ServerRejectedRequest,
         "server_rejected_request"),
        (ews.ErrorInvalidRequest("The request is invalid."), ServerRejectedRequest, "server_rejected_request"),
        (ews.ErrorInvalidServerVersion("Tried versions ... but all were invalid"), ServerRejectedRequest,
         "server_rejected_request"),
    ],
)
def test_map_exception(exc, cls, reason):
    err = map_exception(exc, server="mail.example.com", mailbox="ap@acme.com", operation="GetFolder")
    assert type(err) is cls and err.reason == reason and err.mailbox == "ap@acme.com"
    if cls in (MailboxNotFound, MailboxAccessDenied):
        assert "ap@acme.com" in str(err)


@pytest.mark.parametrize("exc", [ews.ErrorSchemaValidation("x"), ews.ErrorInvalidRequest("x"),
                                 ews.ErrorInvalidServerVersion("x")])
def test_a_refused_request_is_not_retried(exc):
    """exchangelib makes these TransportError subclasses (they were reported as server_unavailable,
    pointing the operator at the network); the same request would be refused again."""
    from exchange_sync.sources.ews.retry import is_retryable

    assert not is_retryable(exc)


def test_tls_errors_are_named():
    verify = ews.TransportError(
        "HTTPSConnectionPool(host='h', port=1): Max retries exceeded with url: /EWS/Exchange.asmx (Caused by "
        "SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
        "unable to get local issuer certificate (_ssl.c:1006)')))")
    err = tls_error_from(verify, "h:1")
    assert isinstance(err, TlsError) and err.reason == "tls_error"
    assert "certificate verify failed: unable to get local issuer certificate" in str(err)
    shake = ews.TransportError("... SSLError(1, '[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure')")
    assert "no shared cipher" in str(tls_error_from(shake, "h:1"))
    assert tls_error_from(ews.ErrorServerBusy("busy"), "h") is None


# ---- retry policy -------------------------------------------------------------------------------
def fake_response(status: int, headers: dict | None = None, body: bytes = b"") -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r.headers.update(headers or {})
    r._content = body
    r.url = "https://mail.example.com/EWS/Exchange.asmx"
    return r


def test_401_is_unauthorized_even_with_connection_close():
    policy = BoundedFaultTolerance(max_wait=10)
    for headers in ({}, {"Connection": "close"}):
        with pytest.raises(ews.UnauthorizedError):
            policy.raise_response_errors(fake_response(401, headers))


def test_503_retry_after_passed_on():
    policy = BoundedFaultTolerance(max_wait=10)
    with pytest.raises(ews.ErrorServerBusy) as info:
        policy.raise_response_errors(fake_response(503, {"Retry-After": "2"}))
    assert info.value.back_off == 2


def test_back_off_budget_is_total_per_call():
    policy = BoundedFaultTolerance(max_wait=5)
    policy.begin_call()
    policy.back_off(2)
    policy.back_off(2)
    with pytest.raises(ews.RateLimitError):
        policy.back_off(2)  # 6 > 5 in total
    policy.begin_call()
    policy.back_off(4)  # a new call has a fresh budget
    with pytest.raises(ews.RateLimitError):
        BoundedFaultTolerance(max_wait=5).back_off(6)  # a single wait beyond the budget


def run(fn, attempts=4):
    sleeps: list[float] = []
    policy = BoundedFaultTolerance(max_wait=5)
    try:
        return call_with_retry(fn, policy=policy, attempts=attempts, max_wait_s=5, server="mail.example.com",
                               mailbox="ap@acme.com", operation="GetItem", sleep=sleeps.append), sleeps
    except Exception as exc:
        exc.sleeps = sleeps
        raise


def test_dropped_connections_are_retried_then_succeed():
    calls = []

    def fn():
        calls.append(1)
        if len(calls) < 3:
            raise ews.ErrorTimeoutExpired("Reraised from ConnectionError(...)")
        return "ok"

    result, sleeps = run(fn)
    assert result == "ok" and len(calls) == 3 and len(sleeps) == 2


def test_retry_budget_exhausted_is_server_unavailable():
    calls = []

    def fn():
        calls.append(1)
        raise ews.ErrorExceededConnectionCount("too many concurrent connections")

    with pytest.raises(ServerUnavailable) as info:
        run(fn, attempts=3)
    assert len(calls) == 3 and "ErrorExceededConnectionCount" in str(info.value)


@pytest.mark.parametrize("exc, cls", [
    (ews.UnauthorizedError("Invalid credentials"), InvalidCredentials),
    (ews.RateLimitError("budget", wait=100), ServerUnavailable),
    (ews.ErrorInvalidSyncStateData("x"), InvalidSyncState),
    (ews.ErrorNonExistentMailbox("x"), MailboxNotFound),
])
def test_final_errors_are_not_retried(exc, cls):
    calls = []

    def fn():
        calls.append(1)
        raise exc

    with pytest.raises(cls):
        run(fn)
    assert len(calls) == 1


# ---- TLS context and isolation ------------------------------------------------------------------
def test_ssl_context_settings():
    ctx = build_ssl_context(TlsConfig(ciphers="AES128-SHA", min_version="1.2", max_version="1.2"))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2 == ctx.maximum_version
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"]
    assert tls12 == ["AES128-SHA"]
    off = build_ssl_context(TlsConfig(verify=False))
    assert off.verify_mode == ssl.CERT_NONE and not off.check_hostname


def test_bad_tls_settings_fail_before_network(tmp_path):
    with pytest.raises(TlsConfigError, match="matches no cipher"):
        build_ssl_context(TlsConfig(ciphers="NOT-A-CIPHER"))
    with pytest.raises(TlsConfigError, match="ca_bundle"):
        build_ssl_context(TlsConfig(ca_bundle=tmp_path / "missing.pem"))
    with pytest.raises(SourceConfigError, match="exchange_version"):
        EwsSource(conn(exchange_version="Exchange2099"), SecretStr(PASSWORD))


def test_each_source_has_its_own_adapter_and_no_global_state():
    before = dict(CachingProtocol._protocol_cache)
    a = EwsSource(conn(tls=TlsConfig(ciphers="AES128-SHA", max_version="1.2")), SecretStr(PASSWORD))
    b = EwsSource(conn(), SecretStr(PASSWORD), max_connections=2)
    try:
        ma, mb = a.open_mailbox("x@example.com"), b.open_mailbox("x@example.com")
        assert ma.account.protocol is a.protocol and mb.account.protocol is b.protocol
        assert a.protocol is not b.protocol
        assert a.protocol.HTTP_ADAPTER_CLS is not b.protocol.HTTP_ADAPTER_CLS
        assert BaseProtocol.HTTP_ADAPTER_CLS is requests.adapters.HTTPAdapter
        sa, sb = a.protocol.create_session(), b.protocol.create_session()
        ctx_a = sa.get_adapter(a.connection.server_url).ssl_context
        ctx_b = sb.get_adapter(b.connection.server_url).ssl_context
        assert ctx_a is not ctx_b and ctx_a.maximum_version == ssl.TLSVersion.TLSv1_2
        assert b.protocol.max_connections == 2
        # exchangelib's process-wide cache never holds our credentials
        for key, _ in CachingProtocol._protocol_cache.items():
            if key not in before:
                assert key[1] is None
    finally:
        a.close()
        b.close()


def test_access_type_is_passed_through():
    with EwsSource(conn(access_type="impersonation"), SecretStr(PASSWORD)) as src:
        assert src.open_mailbox("X@Example.com").account.access_type == "impersonation"
        assert src.open_mailbox("X@Example.com").email == "x@example.com"
    with EwsSource(conn(), SecretStr(PASSWORD)) as src:
        assert src.open_mailbox("x@example.com").account.access_type == "delegate"


def test_repr_and_errors_never_show_the_password():
    with EwsSource(conn(), SecretStr(PASSWORD)) as src:
        assert PASSWORD not in repr(src) and PASSWORD not in repr(src.open_mailbox("x@example.com"))


def test_debug_logs_are_redacted(caplog):
    import base64

    with EwsSource(conn(auth="basic", username="svc@example.com"), SecretStr(PASSWORD)):
        basic = base64.b64encode(f"svc@example.com:{PASSWORD}".encode()).decode()
        with caplog.at_level(logging.DEBUG, logger="exchangelib.util"):
            logging.getLogger("exchangelib.util").debug("Request headers: %s", {"Authorization": f"Basic {basic}"})
            logging.getLogger("exchangelib.util").debug("password is %s", PASSWORD)
    text = caplog.text
    assert PASSWORD not in text and basic not in text and "***" in text


@given(st.one_of(
    st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),  # what EWS sends
    st.binary(max_size=64).map(lambda b: base64.encodebytes(b).decode()),  # wrapped lines
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n \t*-é\x00", max_size=48),
))
@settings(max_examples=3000, deadline=None)
def test_mime_content_decodes_exactly_as_the_stdlib(text):
    # The SIMD fast path may never change a result: same bytes, or the same kind of failure.
    from exchange_sync.sources.ews.source import decode_mime_content

    try:
        expected: object = base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as exc:
        expected = type(exc)
    try:
        got: object = decode_mime_content(text)
    except (binascii.Error, ValueError) as exc:
        got = type(exc)
    assert got == expected


def test_mime_content_with_padding_in_the_middle_keeps_the_stdlib_answer():
    from exchange_sync.sources.ews.source import decode_mime_content

    # pybase64's own lenient mode decodes past the padding; the stdlib stops there.
    assert decode_mime_content("QUJDRA==QUJD") == base64.b64decode("QUJDRA==QUJD") == b"ABCD"
