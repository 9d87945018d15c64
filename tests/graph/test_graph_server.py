"""The Graph test server answers like Microsoft Graph and Entra ID (docs/graph.md lists the references)."""

from __future__ import annotations

import base64

import pytest
import requests

from graph_testserver.testing import running_graph_server

ODATA_JSON = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"
GRAPH_WELL_KNOWN = ("archive", "clutter", "conflicts", "conversationhistory", "deleteditems", "drafts", "inbox",
                    "junkemail", "localfailures", "msgfolderroot", "outbox", "recoverableitemsdeletions", "scheduled",
                    "searchfolders", "sentitems", "serverfailures", "syncissues")


@pytest.fixture(scope="module")
def srv():
    with running_graph_server(mailboxes=["ap@example.com=generate:12"]) as server:
        yield server


@pytest.fixture(scope="module")
def token(srv):
    resp = requests.post(f"{srv.authority}/{srv.tenant_id}/oauth2/v2.0/token", verify=srv.ca_file, timeout=30, data={
        "grant_type": "client_credentials", "client_id": srv.client_id, "client_secret": srv.client_secret,
        "scope": "https://graph.microsoft.com/.default"})
    assert resp.status_code == 200
    return resp.json()["access_token"]


def get(srv, token, path, **headers):
    return requests.get(srv.graph_url + path, verify=srv.ca_file, timeout=30,
                        headers={"Authorization": f"Bearer {token}", **headers})


def test_both_url_forms_and_odata_annotations(srv, token):
    key_form = get(srv, token, "/users('ap%40example.com')/mailFolders('inbox')/messages?$top=2&$select=subject")
    path_form = get(srv, token, "/users/ap@example.com/mailfolders/Inbox/messages?$top=2&$select=subject")
    assert key_form.status_code == path_form.status_code == 200
    assert key_form.headers["Content-Type"] == ODATA_JSON and key_form.headers["OData-Version"] == "4.0"
    a, b = key_form.json(), path_form.json()
    assert a["value"] == b["value"]
    assert a["@odata.context"] == f"{srv.graph_url}/$metadata#users('ap%40example.com')/mailFolders('inbox')/messages(subject)"
    assert all(set(m) == {"@odata.etag", "id", "subject"} and m["@odata.etag"].startswith('W/"') for m in a["value"])
    # The paging link is absolute, in the key form, and works as given.
    nxt = a["@odata.nextLink"]
    assert nxt.startswith(f"{srv.graph_url}/users('ap%40example.com')/mailFolders('inbox')/messages?") and "%24skip=2" in nxt
    assert requests.get(nxt, verify=srv.ca_file, timeout=30, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_delta_links_and_items_look_like_microsofts_examples(srv, token):
    body = get(srv, token, "/users/ap@example.com/mailFolders/inbox/messages/delta()?$select=subject,isRead",
               Prefer="odata.maxpagesize=2").json()
    assert body["@odata.context"] == f"{srv.graph_url}/$metadata#Collection(message)"
    link = body["@odata.nextLink"]
    path, query = link.split("?", 1)
    assert path == f"{srv.graph_url}/users('ap%40example.com')/mailFolders('inbox')/messages/delta"
    assert query.startswith("$skiptoken=") and "&" not in query  # $select lives in the opaque token
    assert all(m["@odata.type"] == "#microsoft.graph.message" and "@odata.etag" in m for m in body["value"])
    assert {k for m in body["value"] for k in m if not k.startswith("@")} == {"id", "subject", "isRead"}


def test_well_known_folder_names(srv, token):
    present = {"inbox", "sentitems", "deleteditems", "drafts", "junkemail", "outbox", "msgfolderroot"}
    for name in GRAPH_WELL_KNOWN:
        resp = get(srv, token, f"/users/ap@example.com/mailFolders/{name}?$select=id")
        if name in present:
            assert resp.status_code == 200, name
            assert resp.json()["@odata.context"].endswith("/mailFolders(id)/$entity")
        else:  # a name Graph knows whose folder this mailbox does not have
            assert resp.status_code == 404 and resp.json()["error"]["code"] == "ErrorItemNotFound", name
    for name in ("calendar", "Sent Items", "bogus"):  # not a name, not an id
        resp = get(srv, token, f"/users/ap@example.com/mailFolders/{name}")
        assert resp.status_code == 400 and resp.json()["error"] == {**resp.json()["error"],
                                                                     "code": "ErrorInvalidIdMalformed",
                                                                     "message": "Id is malformed."}


def test_errors_carry_inner_error_and_request_ids(srv, token):
    resp = get(srv, token, "/users/ghost@example.com/mailFolders", **{"client-request-id": "my-id-1"})
    assert resp.status_code == 404
    inner = resp.json()["error"]["innerError"]
    assert set(inner) == {"date", "request-id", "client-request-id"} and inner["client-request-id"] == "my-id-1"
    assert resp.headers["client-request-id"] == "my-id-1" and resp.headers["request-id"] == inner["request-id"]
    unauth = requests.get(srv.graph_url + "/users/ap@example.com", verify=srv.ca_file, timeout=30)
    assert unauth.status_code == 401 and unauth.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert set(unauth.json()["error"]["innerError"]) == {"date", "request-id", "client-request-id"}


def test_token_endpoint_errors_are_entra_shaped(srv):
    resp = requests.post(f"{srv.authority}/{srv.tenant_id}/oauth2/v2.0/token", verify=srv.ca_file, timeout=30, data={
        "grant_type": "client_credentials", "client_id": srv.client_id, "client_secret": "wrong",
        "scope": "https://graph.microsoft.com/.default"})
    assert resp.status_code == 401
    body = resp.json()
    assert body["error"] == "invalid_client"
    assert body["error_description"].startswith("AADSTS7000215: ")
    assert "\r\nTrace ID: " in body["error_description"] and "\r\nCorrelation ID: " in body["error_description"]
    assert body["error_codes"] == [7000215]
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)
    bad_tenant = requests.post(f"{srv.authority}/not-a-tenant/oauth2/v2.0/token", verify=srv.ca_file, timeout=30,
                               data={"grant_type": "client_credentials"})
    assert bad_tenant.status_code == 400 and bad_tenant.json()["error_codes"] == [90002]


def test_batch_sub_responses_carry_content_type_and_base64(srv, token):
    ids = [m["id"] for m in get(srv, token, "/users/ap@example.com/mailFolders/inbox/messages?$select=id&$top=2",
                                Prefer='IdType="ImmutableId"').json()["value"]]
    subs = [{"id": "1", "method": "GET", "url": f"/users/ap@example.com/messages/{ids[0]}/$value"},
            {"id": "2", "method": "GET", "url": f"users('ap%40example.com')/messages('{ids[1]}')?$select=subject"},
            {"id": "3", "method": "GET", "url": "/users/ap@example.com/mailFolders/bogus"}]
    resp = requests.post(srv.graph_url + "/$batch", json={"requests": subs}, verify=srv.ca_file, timeout=30,
                         headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.headers["Content-Type"] == ODATA_JSON
    by_id = {r["id"]: r for r in resp.json()["responses"]}
    one = by_id["1"]
    assert one["headers"]["Content-Type"] == "text/plain" and isinstance(one["body"], str)
    direct = get(srv, token, f"/users/ap@example.com/messages/{ids[0]}/$value").content
    assert base64.b64decode(one["body"], validate=True) == direct
    assert by_id["2"]["headers"]["Content-Type"] == ODATA_JSON and by_id["2"]["body"]["subject"]
    assert by_id["3"]["status"] == 400 and by_id["3"]["body"]["error"]["code"] == "ErrorInvalidIdMalformed"
