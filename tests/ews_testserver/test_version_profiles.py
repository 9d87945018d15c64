"""The server behaves as the Exchange version it is started as (``--exchange-version``): its
ServerVersionInfo, the RequestServerVersion values it accepts, and the schema every request is
validated against (real sockets, real server subprocesses, raw SOAP and exchangelib)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import requests
from lxml import etree

from ews_testserver import schema, soap
from ews_testserver.testing import RunningServer, date_n, exchangelib_account, make_mime, running_server

T, M, E = soap.T, soap.M, soap.E
PROFILES = ["Exchange2010_SP2", "Exchange2013", "Exchange2016", "Exchange2019", "Online"]
# (Major, Minor, MajorBuild, MinorBuild, Version) of a real build of each version, and the API
# version exchangelib derives from it.
EXPECTED = {
    "Exchange2010_SP2": ((14, 2, 247, 5), "Exchange2010_SP2", "Exchange2010_SP2"),
    "Exchange2013": ((15, 0, 1497, 7), "V2_23", "Exchange2013_SP1"),
    "Exchange2016": ((15, 1, 2507, 6), "V2017_07_11", "Exchange2016"),
    "Exchange2019": ((15, 2, 1544, 4), "V2017_07_11", "Exchange2016"),
    "Online": ((15, 20, 8769, 35), "V2018_01_08", "Exchange2016"),
}
INVALID_REQUESTS = pytest.mark.allow_protocol_violations(directions=("request",))


@pytest.fixture(scope="module", params=PROFILES)
def vsrv(request) -> Iterator[RunningServer]:
    with running_server(exchange_version=request.param, mailboxes=["user@example.com=generate:30"]) as server:
        server.profile = request.param  # type: ignore[attr-defined]
        yield server
    assert server.returncode == 0


def envelope(body: str, version: str | None = "Exchange2010_SP2", header_extra: str = "") -> bytes:
    rsv = f'<t:RequestServerVersion Version="{version}"/>' if version else ""
    return (
        "<?xml version='1.0' encoding='utf-8'?>\n"
        f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="{M}" xmlns:t="{T}">'
        f"<s:Header>{rsv}{header_extra}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def get_folder(*ids: str) -> str:
    folders = "".join(f'<t:DistinguishedFolderId Id="{i}"/>' for i in ids)
    return (f"<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
            f"<m:FolderIds>{folders}</m:FolderIds></m:GetFolder>")


def sync_items(max_changes: str | int, state: str | None = None, folder: str = "inbox",
               shape: str = "IdOnly", extra_props: str = "") -> str:
    st = f"<m:SyncState>{state}</m:SyncState>" if state else ""
    props = f"<t:AdditionalProperties>{extra_props}</t:AdditionalProperties>" if extra_props else ""
    return (f"<m:SyncFolderItems><m:ItemShape><t:BaseShape>{shape}</t:BaseShape>{props}</m:ItemShape>"
            f'<m:SyncFolderId><t:DistinguishedFolderId Id="{folder}"/></m:SyncFolderId>{st}'
            f"<m:MaxChangesReturned>{max_changes}</m:MaxChangesReturned></m:SyncFolderItems>")


def post(srv: RunningServer, data: bytes) -> tuple[int, etree._Element]:
    resp = requests.post(srv.url, data=data, auth=("user@example.com", "secret"), timeout=60,
                         headers={"Content-Type": "text/xml; charset=utf-8"})
    return resp.status_code, etree.fromstring(resp.content)


def fault_code(doc: etree._Element) -> str | None:
    rc = doc.find(f".//detail/{{{E}}}ResponseCode")
    return rc.text if rc is not None else None


def test_server_version_info_is_a_real_build_of_the_version(vsrv: RunningServer) -> None:
    status, doc = post(vsrv, envelope(get_folder("inbox")))
    assert status == 200
    svi = doc.find(f".//{{{T}}}ServerVersionInfo")
    (major, minor, mbuild, nbuild), version, _api = EXPECTED[vsrv.profile]
    assert (svi.get("MajorVersion"), svi.get("MinorVersion"), svi.get("MajorBuildNumber"),
            svi.get("MinorBuildNumber"), svi.get("Version")) == (str(major), str(minor), str(mbuild), str(nbuild), version)
    assert schema.PROFILES[vsrv.profile].build == (major, minor, mbuild, nbuild)


@INVALID_REQUESTS
def test_distinguished_folder_ids_exist_from_their_version_on(vsrv: RunningServer) -> None:
    # The client's discovery asks for these in one request; Exchange 2010 SP2 rejects the whole of it.
    status, doc = post(vsrv, envelope(get_folder("inbox", "syncissues", "conflicts")))
    if vsrv.profile == "Exchange2010_SP2":
        assert status == 500 and fault_code(doc) == "ErrorSchemaValidation"
        fs = doc.find(".//faultstring").text
        assert fs.startswith("The request failed schema validation: The 'Id' attribute is invalid - The value "
                             "'syncissues' is invalid according to its datatype "
                             "'http://schemas.microsoft.com/exchange/services/2006/types:DistinguishedFolderIdNameType'"
                             " - The Enumeration constraint failed.")
        mx = doc.find(f".//detail/{{{T}}}MessageXml")
        line = int(mx.find(f"{{{T}}}LineNumber").text)
        pos = int(mx.find(f"{{{T}}}LinePosition").text)
        raw_line = envelope(get_folder("inbox", "syncissues", "conflicts")).split(b"\n")[line - 1]
        assert raw_line[pos - 1:].startswith(b'Id="syncissues"')  # points at the offending attribute
        assert "syncissues" in mx.find(f"{{{T}}}Violation").text
    else:
        assert status == 200
        codes = [e.text for e in doc.iter(f"{{{M}}}ResponseCode")]
        assert codes[0] == "NoError" and len(codes) == 3  # known values; folders this store lacks: per-item errors
    status, doc = post(vsrv, envelope(get_folder("inbox", "archive")))
    if vsrv.profile == "Online":
        assert status == 200
    else:
        assert status == 500 and fault_code(doc) == "ErrorSchemaValidation"
        assert "'archive'" in doc.find(".//faultstring").text


def test_request_server_version_newer_than_the_server_is_refused(vsrv: RunningServer) -> None:
    order = ["Exchange2007_SP1", "Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2", "Exchange2013",
             "Exchange2013_SP1", "Exchange2016"]
    newest = {"Exchange2010_SP2": "Exchange2010_SP2", "Exchange2013": "Exchange2013_SP1"}.get(vsrv.profile, "Exchange2016")
    for version in order + ["Exchange2015", "Exchange2015_SP1", "Exchange2019", "V2018_01_08"]:
        status, doc = post(vsrv, envelope(get_folder("inbox"), version=version))
        accepted = version in order and order.index(version) <= order.index(newest)
        if accepted:
            assert status == 200, version
        else:
            assert status == 500 and fault_code(doc) == "ErrorInvalidServerVersion", version


@INVALID_REQUESTS
def test_max_changes_returned_outside_1_to_512_fails_schema_validation(vsrv: RunningServer) -> None:
    for bad in (0, 513, -1, "x"):
        status, doc = post(vsrv, envelope(sync_items(bad)))
        assert status == 500 and fault_code(doc) == "ErrorSchemaValidation", bad
        assert "MaxChangesReturned" in doc.find(".//faultstring").text
    for good in (1, 512):
        status, doc = post(vsrv, envelope(sync_items(good)))
        assert status == 200 and doc.find(f".//{{{M}}}ResponseCode").text == "NoError"


@INVALID_REQUESTS
def test_unknown_elements_and_header_children_fail_validation(vsrv: RunningServer) -> None:
    body = get_folder("inbox").replace("</m:GetFolder>", "<m:Bogus/></m:GetFolder>")
    status, doc = post(vsrv, envelope(body))
    assert status == 500 and fault_code(doc) == "ErrorSchemaValidation"
    assert "has invalid child element 'Bogus'" in doc.find(".//faultstring").text
    status, doc = post(vsrv, envelope(get_folder("inbox"), header_extra='<t:TimeZoneContext><t:Nope/></t:TimeZoneContext>'))
    assert status == 500 and fault_code(doc) == "ErrorSchemaValidation"


def test_exchangelib_guesses_the_version_of_every_profile(vsrv: RunningServer) -> None:
    from exchangelib import Build

    acc = exchangelib_account(vsrv, "user@example.com", "secret", "user@example.com", version=False)
    build, _version, api = EXPECTED[vsrv.profile]
    assert acc.version.build == Build(*build)
    assert acc.version.api_version == api
    # and the requests exchangelib builds for that version validate against it
    items = list(acc.inbox.all().only("subject", "datetime_received")[:5])
    assert len(items) == 5


def test_ids_look_like_exchange_ids(vsrv: RunningServer) -> None:
    status, doc = post(vsrv, envelope(sync_items(5)))
    ids = doc.findall(f".//{{{T}}}ItemId")
    assert len(ids) == 5
    for el in ids:
        assert el.get("Id").startswith("AAMkA") and len(el.get("Id")) == 152
        assert len(el.get("ChangeKey")) == 40 and el.get("ChangeKey").startswith("CQAAAB")
        base64.b64decode(el.get("Id"), validate=True)
    body = (f'<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape><m:ItemIds>'
            f'<t:ItemId Id="{ids[0].get("Id")}"/><t:ItemId Id="AAMkADUMMY="/></m:ItemIds></m:GetItem>')
    status, doc = post(vsrv, envelope(body))
    assert [e.text for e in doc.iter(f"{{{M}}}ResponseCode")] == ["NoError", "ErrorInvalidIdMalformed"]
    error_msg = doc.findall(f".//{{{M}}}GetItemResponseMessage")[1]
    assert error_msg.find(f"{{{M}}}Items") is not None and len(error_msg.find(f"{{{M}}}Items")) == 0


def test_first_sync_lists_newest_first_then_changes_in_order() -> None:
    with running_server(mailboxes=["user@example.com="]) as srv:
        for n in (3, 1, 4, 0, 2):  # added out of date order
            srv.add_message("user@example.com", make_mime(f"m{n}", f"<m{n}@x>", date=date_n(n)))
        seen: list[str] = []
        state = None
        while True:
            status, doc = post(srv, envelope(sync_items(2, state, shape="IdOnly",
                                                       extra_props='<t:FieldURI FieldURI="item:Subject"/>')))
            assert status == 200
            seen += [e.text for e in doc.iter(f"{{{T}}}Subject")]
            state = doc.find(f".//{{{M}}}SyncState").text
            if doc.find(f".//{{{M}}}IncludesLastItemInRange").text == "true":
                break
            if len(seen) == 2:  # arrives during the initial sync (older date, newer change)
                srv.add_message("user@example.com", make_mime("late", "<late@x>", date=date_n(-5)))
        # the snapshot's items newest first, then what arrived during the initial sync
        assert seen == ["m4", "m3", "m2", "m1", "m0", "late"]
        srv.add_message("user@example.com", make_mime("m9", "<m9@x>", date=date_n(9)))
        srv.add_message("user@example.com", make_mime("m8", "<m8@x>", date=date_n(8)))
        status, doc = post(srv, envelope(sync_items(10, state, extra_props='<t:FieldURI FieldURI="item:Subject"/>')))
        assert [e.text for e in doc.iter(f"{{{T}}}Subject")] == ["m9", "m8"]  # later syncs: change order


def test_schema_validation_catches_a_broken_response() -> None:
    """The response audit can fail: these are the mistakes the server used to make."""
    resp, msgs = soap.response_root("GetFolder")
    folders = etree.SubElement(soap.success_message(msgs, "GetFolder"), soap.m("Folders"))
    cal = soap.sub(folders, "CalendarFolder")
    soap.sub(cal, "DisplayName", "Calendar")
    soap.sub(cal, "UnreadCount", "0")  # CalendarFolderType has no UnreadCount
    problems = schema.validate_request(resp, "Exchange2016")
    assert len(problems) == 1 and "invalid child element 'UnreadCount'" in problems[0]
    resp, msgs = soap.response_root("GetItem")
    msg = soap.success_message(msgs, "GetItem")
    item = soap.sub(etree.SubElement(msg, soap.m("Items")), "Message")
    soap.sub(item, "ItemId", Id="x")
    soap.sub(item, "MimeContent", "AAAA")  # MimeContent comes before ItemId
    assert schema.validate_request(resp, "Exchange2016")
    # DistinguishedFolderId in a folder is a 2016 element; TextBody a 2013 one
    resp, msgs = soap.response_root("GetFolder")
    f = soap.sub(etree.SubElement(soap.success_message(msgs, "GetFolder"), soap.m("Folders")), "Folder")
    soap.sub(f, "DistinguishedFolderId", "inbox")
    assert schema.validate_request(resp, "Exchange2016") == []
    assert schema.validate_request(resp, "Exchange2013")
    # faults: a detail Exchange never sends
    bad_fault = soap.fault("ErrorServerBusy", "busy").replace(b"e:Message", b"e:Mesage")
    assert schema.validate_response_envelope(bad_fault, "Exchange2016")
    assert schema.validate_response_envelope(soap.fault("ErrorServerBusy", "busy", 500), "Exchange2016") == []


def test_restrictions_table_is_applied_per_profile() -> None:
    versions = {p: schema.compiled(p).accepted_versions for p in PROFILES}
    assert "Exchange2013" not in versions["Exchange2010_SP2"] and "Exchange2010_SP2" in versions["Exchange2010_SP2"]
    assert "Exchange2016" not in versions["Exchange2013"] and "Exchange2013_SP1" in versions["Exchange2013"]
    assert all("Exchange2016" in versions[p] for p in ("Exchange2016", "Exchange2019", "Online"))
    assert not any("Exchange2015" in v for v in versions.values())
    assert "+DistinguishedFolderIdNameType:archive" in schema.compiled("Online").changes
    assert schema.compiled("Exchange2016").changes == []  # the spec as published
