"""The CSDL validator (graph_testserver/csdl.py) against Microsoft Graph's v1.0 metadata, and the audit hook."""

from __future__ import annotations

import base64
import copy
import json

import pytest

from testserver_core import audit
from graph_testserver import csdl
from graph_testserver.api import Reply, error
from graph_testserver.server import audit_reply

CTX = "https://graph.microsoft.com/v1.0/$metadata#"
MESSAGE = {
    "@odata.type": "#microsoft.graph.message",
    "@odata.etag": 'W/"CQAAABYAAAARn2vdzPFjSbaPPxzjlzOTAAASsKZz"',
    "id": "AAMkADNkNAAASq35xAAA=",
    "createdDateTime": "2026-01-05T10:00:00Z",
    "receivedDateTime": "2026-01-05T10:00:01Z",
    "sentDateTime": "2026-01-05T09:59:59+01:00",
    "subject": "Holiday hours update",
    "isRead": False,
    "importance": "normal",
    "inferenceClassification": "focused",
    "categories": [],
    "flag": {"flagStatus": "notFlagged"},
    "sender": {"emailAddress": {"name": "Dana Swope", "address": "danas@contoso.com"}},
    "toRecipients": [{"emailAddress": {"name": "A", "address": "a@contoso.com"}}],
    "body": {"contentType": "html", "content": "<p>hi</p>"},
    "internetMessageHeaders": [{"name": "X-Test", "value": "1"}],
}


@pytest.fixture(scope="module")
def schema():
    return csdl.schema()


def delta(*values):
    return {"@odata.context": CTX + "Collection(message)",
            "@odata.nextLink": "https://graph.microsoft.com/v1.0/users('a')/mailFolders('b')/messages/delta?$skiptoken=x",
            "value": list(values)}


def test_a_valid_message_passes(schema):
    assert schema.check_response(delta(MESSAGE)) == []
    assert schema.check_response({"@odata.context": CTX + "users('a%40b.c')/messages/$entity", **MESSAGE}) == []
    removed = {"@odata.type": "#microsoft.graph.message", "id": "x", "@removed": {"reason": "deleted"}}
    assert schema.check_response(delta(removed)) == []


@pytest.mark.parametrize("change, expect", [
    ({"recievedDateTime": "2026-01-05T10:00:01Z"}, "has no property 'recievedDateTime'"),
    ({"isRead": "false"}, "Edm.Boolean"),
    ({"receivedDateTime": "5 Jan 2026"}, "Edm.DateTimeOffset"),
    ({"importance": "urgent"}, "not a member of microsoft.graph.importance"),
    ({"toRecipients": {"emailAddress": {"address": "a@b"}}}, "JSON array"),
    ({"sender": {"emailAddress": {"adress": "a@b"}}}, "has no property 'adress'"),
    ({"body": {"contentType": "markdown", "content": "x"}}, "bodyType"),
    ({"flag": {"flagStatus": "notFlagged", "dueDateTime": "2026-01-01"}}, "JSON object"),
    ({"@odata.type": "#microsoft.graph.mailFolder"}, "is not microsoft.graph.message"),
    ({"@odata.type": "#microsoft.graph.outlookItem"}, "is not microsoft.graph.message"),
    ({"@microsoft.graph.tips": "x"}, "instance annotation not allowed"),
    ({"subject@odata.type": "#String", "nope@odata.type": "#String"}, "annotates 'nope'"),
])
def test_a_misspelled_property_or_a_wrong_type_fails(schema, change, expect):
    msg = {**copy.deepcopy(MESSAGE), **change}
    errors = schema.check_response(delta(msg))
    assert any(expect in e for e in errors), errors
    assert all(e.startswith("$.value[0]") for e in errors)


def test_derived_types_by_odata_type(schema):
    event = {**MESSAGE, "@odata.type": "#microsoft.graph.eventMessageRequest", "meetingMessageType": "meetingRequest",
             "isAllDay": False}
    assert schema.check_response(delta(event)) == []
    assert schema.check_response(delta({**MESSAGE, "isAllDay": False}))  # not a message property


def test_select_in_the_context_limits_the_properties(schema):
    body = {"@odata.context": CTX + "users('a')/mailFolders('inbox')/messages(receivedDateTime,subject)",
            "value": [{"@odata.etag": 'W/"x"', "id": "1", "receivedDateTime": "2026-01-05T10:00:01Z", "subject": "s"}]}
    assert schema.check_response(body) == []
    body["value"][0]["isRead"] = True
    assert any("not in $select" in e for e in schema.check_response(body))


def test_contexts_resolve_through_the_entity_container(schema):
    assert schema.resolve_context(CTX + "users/$entity") == ("microsoft.graph.user", False, None)
    assert schema.resolve_context(CTX + "users('x')/mailFolders(id)/$entity") == ("microsoft.graph.mailFolder", False, ["id"])
    assert schema.resolve_context(CTX + "users('x')/mailFolders('y')/childFolders") == ("microsoft.graph.mailFolder", True, None)
    assert schema.resolve_context(CTX + "Collection(mailFolder)") == ("microsoft.graph.mailFolder", True, None)
    for bad in (CTX + "users('x')/mailBoxes", "https://graph.microsoft.com/v1.0/users", CTX + "Collection(nothing)"):
        with pytest.raises(csdl.ContextError):
            schema.resolve_context(bad)
    assert schema.check_response({"value": []}) == ["$: no @odata.context (Graph sends one with odata.metadata=minimal)"]


def test_folders_and_users(schema):
    folder = {"id": "AAMk", "displayName": "Inbox", "parentFolderId": "AAMj", "childFolderCount": 0,
              "unreadItemCount": 3, "totalItemCount": 10, "isHidden": False}
    assert schema.check_response({"@odata.context": CTX + "users('a')/mailFolders", "value": [folder]}) == []
    assert schema.check_response({"@odata.context": CTX + "users('a')/mailFolders", "value": [
        {**folder, "totalItemCount": "10"}]})
    assert schema.check_response({"@odata.context": CTX + "users('a')/mailFolders", "value": [
        {**folder, "childFolderCount": 2 ** 31}]})
    user = {"id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd", "mail": "a@b.c", "userPrincipalName": "a@b.c",
            "displayName": "A"}
    assert schema.check_response({"@odata.context": CTX + "users/$entity", **user}) == []
    assert schema.check_response({"@odata.context": CTX + "users/$entity", **user, "mial": "x"})


def test_error_bodies(schema):
    good = {"error": {"code": "ErrorItemNotFound", "message": "The specified object was not found in the store.",
                      "innerError": {"date": "2026-01-05T10:00:01", "request-id": "r", "client-request-id": "c"}}}
    assert schema.check_response(good, 404) == []
    assert schema.check_response({"error": {"code": "x", "message": "y", "innerError": {"request-id": "r"}}}, 404)
    assert csdl.check_error({"error": "invalid_client"})


def test_batch_envelope():
    ok = {"responses": [
        {"id": "1", "status": 200, "headers": {"Content-Type": "text/plain"}, "body": base64.b64encode(b"x").decode()},
        {"id": "2", "status": 404, "headers": {"Content-Type": "application/json"}, "body": {"error": {}}}]}
    assert csdl.check_batch(ok) == []
    raw = {"responses": [{"id": "1", "status": 200, "headers": {"Content-Type": "text/plain"}, "body": "From: a\r\n"}]}
    assert any("not valid base64" in e for e in csdl.check_batch(raw))
    obj = {"responses": [{"id": 1, "status": "200", "headers": {"Content-Type": "text/plain"}, "body": {"a": 1}}]}
    assert len(csdl.check_batch(obj)) == 3


def test_the_server_reports_violations_through_the_audit(tmp_path, monkeypatch):
    monkeypatch.setenv(audit.ENV, str(tmp_path))
    reader = audit.AuditReader(tmp_path)
    good = Reply.json(200, delta(MESSAGE))
    good.operation = "messages.delta"
    audit_reply(good)
    audit_reply(error(404, "ErrorItemNotFound", "gone"))
    assert reader.take() == []
    bad = Reply.json(200, delta({**MESSAGE, "isRaed": True}))
    bad.operation = "messages.delta"
    audit_reply(bad)
    [found] = reader.take()
    assert found["server"] == "graph" and found["direction"] == "response" and found["operation"] == "messages.delta"
    assert "isRaed" in found["error"]
    json.loads(found["excerpt"])
