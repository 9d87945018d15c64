"""The source against each Exchange version profile of the test server, which validates every request
against that version's schema as real Exchange does (ErrorSchemaValidation for the whole request).

Exchange 2010 SP2 does not know the DistinguishedFolderIds added in Exchange 2013 (syncissues, conflicts,
localfailures, serverfailures, conversationhistory), and only Exchange Online knows ``archive``: a discovery
that asks every server for all of them fails every mailbox on 2010 SP2 and on a 2016-spec server."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from ews_testserver.testing import running_server
from exchange_sync.source import EwsSource, ServerRejectedRequest
from exchange_sync.source.folders import WELL_KNOWN_2013

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
        refused = [op for op in ops_since(srv, seq) if op[1] not in ("NoError", None)]
        # exchangelib walks down from a configured version newer than the server: ErrorInvalidServerVersion
        # is how Exchange tells it so; nothing else may be refused.
        assert {code for _, code in refused} <= {"ErrorInvalidServerVersion"}, refused


@pytest.mark.allow_protocol_violations(directions=("request",))
def test_a_stale_version_falls_back_instead_of_failing_the_mailbox(versioned):
    """A cached version that claims more than the server knows (e.g. after a move to an older server):
    the refused request is asked again without the optional ids, then one id at a time; the mailbox syncs."""
    profile, srv = versioned
    if profile != "Exchange2010_SP2":
        pytest.skip("needs a server that refuses the Exchange 2013 ids")
    src = EwsSource(connection(srv, exchange_version=None), SecretStr(PASSWORD), max_connections=2,
                    version_hint="Exchange2013_SP1", build_hint="15.0.1497.2")
    with src:
        seq = srv.last_seq()
        folders = src.open_mailbox("ap@example.com").mail_folders(None, [])
        assert "Inbox" in [f.path for f in folders]
        log = ops_since(srv, seq)
        # refused once with everything, then the 2007 ids alone, then each optional id alone (all refused)
        assert log[0] == ("GetFolder", "ErrorSchemaValidation")
        assert log[1] == ("GetFolder", "NoError")
        assert log[2:2 + len(WELL_KNOWN_2013)] == [("GetFolder", "ErrorSchemaValidation")] * len(WELL_KNOWN_2013)
        assert src.optional_well_known() == ()
        # The next mailbox asks only what the server accepted: one GetFolder, no refusal.
        seq = srv.last_seq()
        assert src.open_mailbox("b@example.com").mail_folders(None, [])
        assert ops_since(srv, seq) == [("GetFolder", "NoError"), ("FindFolder", "NoError")]


@pytest.mark.allow_protocol_violations(directions=("request",))
def test_a_refused_request_is_reported_as_such_and_never_retried(versioned):
    profile, srv = versioned
    if profile != "Exchange2010_SP2":
        pytest.skip("needs a server that refuses the Exchange 2013 ids")
    with open_source(srv) as src:
        mb = src.open_mailbox("ap@example.com")
        seq = srv.last_seq()
        with pytest.raises(ServerRejectedRequest) as info:
            mb._get_well_known(["msgfolderroot", "syncissues"])
        assert info.value.reason == "server_rejected_request"
        assert "ErrorSchemaValidation" in str(info.value) and "syncissues" in str(info.value)
        assert ops_since(srv, seq) == [("GetFolder", "ErrorSchemaValidation")]  # one request: not retried
