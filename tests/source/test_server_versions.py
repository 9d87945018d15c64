"""The source against each Exchange version profile of the test server, which validates every request
against that version's schema as real Exchange does (ErrorSchemaValidation for the whole request).

Exchange 2010 SP2 does not know the DistinguishedFolderIds added in Exchange 2013 (syncissues, conflicts,
localfailures, serverfailures, conversationhistory), and only Exchange Online knows ``archive``: a discovery
that asks every server for all of them fails every mailbox on 2010 SP2 and on a 2016-spec server."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from ews_testserver.testing import running_server
from exchange_sync.sources.ews import EwsSource
from exchange_sync.sources import ServerRejectedRequest
from exchange_sync.sources.folders import WELL_KNOWN_2013

from .source_support import PASSWORD, connection

pytestmark = pytest.mark.timeout(180)

PROFILES = {  # profile -> (major, minor) of the build it reports, and the optional ids it knows
    "Exchange2010_SP2": ((14, 2), set()),
    "Exchange2013": ((15, 0), set(WELL_KNOWN_2013)),
    "Exchange2016": ((15, 1), set(WELL_KNOWN_2013)),
    "Exchange2019": ((15, 2), set(WELL_KNOWN_2013)),
    "Online": ((15, 20), set(WELL_KNOWN_2013) | {"archive"}),
}


@pytest.fixture(scope="module", params=list(PROFILES))
def versioned(request):
    with running_server(accounts=[f"svc@example.com:{PASSWORD}"],
                        mailboxes=["ap@example.com=generate:6", "b@example.com=generate:3"],
                        grants=["svc@example.com=ap@example.com", "svc@example.com=b@example.com"],
                        tls=True, exchange_version=request.param) as srv:
        yield request.param, srv


@pytest.fixture(scope="module")
def exchange2010():
    with running_server(accounts=[f"svc@example.com:{PASSWORD}"],
                        mailboxes=["ap@example.com=generate:3", "b@example.com=generate:2"],
                        grants=["svc@example.com=ap@example.com", "svc@example.com=b@example.com"],
                        tls=True, exchange_version="Exchange2010_SP2") as srv:
        yield srv


def open_source(srv, **kw) -> EwsSource:
    return EwsSource(connection(srv, **kw), SecretStr(PASSWORD), max_connections=2, fetch_chunk_size=4)


def ops_since(srv, seq):
    return [(e["operation"], e.get("response_code")) for e in srv.log(seq)]


@pytest.mark.parametrize("configured", [None, "Exchange2016", "Exchange2010_SP2"])
def test_discovery_and_sync_work_on_every_version(versioned, configured):
    """Probed or configured (even a configured version newer than the server): no request is refused."""
    profile, srv = versioned
    build, optional = PROFILES[profile]
    with open_source(srv, exchange_version=configured) as src:
        seq = srv.last_seq()
        for address in ("ap@example.com", "b@example.com"):
            mb = src.open_mailbox(address)
            folders = mb.mail_folders(None, [])
            assert "Inbox" in [f.path for f in folders]
            inbox = next(f for f in folders if f.path == "Inbox")
            assert inbox.distinguished_id == "inbox"
            refs = [r for page in mb.sync_pages(inbox, None) for r in page.changes]
            assert refs and len(mb.fetch(refs, inbox).table) == len(refs)
        reported = src.reported_version()
        assert reported is not None and (reported.build.major_version, reported.build.minor_version) == build
        assert set(src.optional_well_known()) == optional
        log = ops_since(srv, seq)
        refused = [op for op in log if op[1] not in ("NoError", None)]
        # exchangelib walks down from a configured version newer than the server: ErrorInvalidServerVersion
        # is how Exchange tells it so; nothing else may be refused, and once a version worked, every later
        # request (other mailboxes, other pages) uses it: no negotiation again.
        assert {code for _, code in refused} <= {"ErrorInvalidServerVersion"}, refused
        first_ok = next(i for i, op in enumerate(log) if op[1] == "NoError")
        assert all(code == "NoError" for _, code in log[first_ok:]), log


@pytest.mark.allow_protocol_violations(directions=("request",))
def test_a_stale_cached_version_costs_a_negotiation_not_the_mailbox(exchange2010):
    """A cached version that claims more than the server knows (e.g. after a move to an older server):
    the refusals tell the client the real version, discovery asks again with what that version knows."""
    srv = exchange2010
    src = EwsSource(connection(srv, exchange_version=None), SecretStr(PASSWORD), max_connections=2,
                    version_hint="Exchange2013_SP1", build_hint="15.0.1497.2")
    with src:
        seq = srv.last_seq()
        folders = src.open_mailbox("ap@example.com").mail_folders(None, [])
        assert "Inbox" in [f.path for f in folders]
        codes = [code for _, code in ops_since(srv, seq)]
        # exchangelib's walk down to Exchange2010_SP2, then the body is refused for the 2013 ids once,
        # then the 2007 ids alone, and nothing more is asked of this server's version.
        assert set(codes[:codes.index("ErrorSchemaValidation")]) == {"ErrorInvalidServerVersion"}
        assert codes[codes.index("ErrorSchemaValidation") + 1:] == ["NoError", "NoError"]  # GetFolder, FindFolder
        assert src.optional_well_known() == ()
        seq = srv.last_seq()
        assert src.open_mailbox("b@example.com").mail_folders(None, [])
        assert ops_since(srv, seq) == [("GetFolder", "NoError"), ("FindFolder", "NoError")]


@pytest.mark.allow_protocol_violations(directions=("request",))
def test_ids_a_server_still_refuses_are_dropped_one_by_one(exchange2010, monkeypatch):
    """A server whose reported version claims ids its schema refuses (a proxy or a patched server):
    each optional id is asked alone, the refused ones are dropped and remembered; the mailbox syncs."""
    srv = exchange2010
    from exchange_sync.sources.ews import source as ews

    monkeypatch.setattr(ews, "well_known_for", lambda build, api_version: WELL_KNOWN_2013)
    with open_source(srv, exchange_version="Exchange2010_SP2") as src:
        seq = srv.last_seq()
        folders = src.open_mailbox("ap@example.com").mail_folders(None, [])
        assert "Inbox" in [f.path for f in folders]
        log = ops_since(srv, seq)
        # first contact: the 2007 ids; then the optional ones together (refused), then one at a time
        assert log[0] == ("GetFolder", "NoError")
        assert log[1] == ("GetFolder", "ErrorSchemaValidation")
        assert log[2:2 + len(WELL_KNOWN_2013)] == [("GetFolder", "ErrorSchemaValidation")] * len(WELL_KNOWN_2013)
        assert log[2 + len(WELL_KNOWN_2013):] == [("FindFolder", "NoError")]
        assert src.optional_well_known() == ()
        seq = srv.last_seq()
        assert src.open_mailbox("b@example.com").mail_folders(None, [])
        assert ops_since(srv, seq) == [("GetFolder", "NoError"), ("FindFolder", "NoError")]


@pytest.mark.allow_protocol_violations(directions=("request",))
def test_a_refused_request_is_reported_as_such_and_never_retried(exchange2010):
    srv = exchange2010
    with open_source(srv, exchange_version="Exchange2010_SP2") as src:
        mb = src.open_mailbox("ap@example.com")
        seq = srv.last_seq()
        with pytest.raises(ServerRejectedRequest) as info:
            mb._get_well_known(["msgfolderroot", "syncissues"])
        assert info.value.reason == "server_rejected_request"
        assert "ErrorSchemaValidation" in str(info.value) and "syncissues" in str(info.value)
        assert ops_since(srv, seq) == [("GetFolder", "ErrorSchemaValidation")]  # one request: not retried
