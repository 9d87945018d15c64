"""The scoped parse fix (exchange_sync.sources.ews.fastparse): same results as exchangelib's path, faults intact."""

from __future__ import annotations

import base64
import io

import lxml.etree
import pytest
import requests
from exchangelib import errors as ews
from exchangelib.services import GetItem
from exchangelib.util import DummyResponse

from exchange_sync.sources.ews.fastparse import FastParseMixin, buffered_body
from exchange_sync.sources.ews.services import RawGetItem

ENVELOPE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
    '<s:Header><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" '
    'MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6"/></s:Header>'
    '<s:Body xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">{body}</s:Body></s:Envelope>'
)


def getitem_response(n: int, mime_size: int) -> bytes:
    msgs = []
    for i in range(n):
        mime = (f"Message-ID: <m{i}@x>\r\nSubject: s{i}\r\n\r\n".encode() + bytes([65 + i % 26]) * mime_size)
        msgs.append(
            '<m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items>'
            f'<t:Message><t:ItemId Id="id{i}" ChangeKey="ck{i}"/>'
            f'<t:MimeContent CharacterSet="UTF-8">{base64.b64encode(mime).decode()}</t:MimeContent>'
            f"<t:InternetMessageId>&lt;m{i}@x&gt;</t:InternetMessageId></t:Message></m:Items>"
            "</m:GetItemResponseMessage>"
        )
    msgs.append(
        '<m:GetItemResponseMessage ResponseClass="Error"><m:MessageText>gone</m:MessageText>'
        "<m:ResponseCode>ErrorItemNotFound</m:ResponseCode><m:Items/></m:GetItemResponseMessage>"
    )
    body = f"<m:GetItemResponse><m:ResponseMessages>{''.join(msgs)}</m:ResponseMessages></m:GetItemResponse>"
    return ENVELOPE.format(body=body).encode()


BUSY_FAULT = ENVELOPE.format(
    body='<s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy'
    "</faultcode><faultstring>busy</faultstring><detail>"
    '<e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode>'
    '<e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">busy</e:Message>'
    '<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
    '<t:Value Name="BackOffMilliseconds">1500</t:Value></t:MessageXml></detail></s:Fault>'
).encode()

SYNC_STATE_FAULT = ENVELOPE.format(
    body="<m:GetItemResponse><m:ResponseMessages>"
    '<m:GetItemResponseMessage ResponseClass="Error"><m:MessageText>bad</m:MessageText>'
    "<m:ResponseCode>ErrorAccessDenied</m:ResponseCode></m:GetItemResponseMessage>"
    "</m:ResponseMessages></m:GetItemResponse>"
).encode()


def buffered_response(content: bytes) -> requests.Response:
    """A requests.Response in the state Session.send(stream=False) leaves it: body read, raw exhausted."""
    r = requests.Response()
    r.status_code = 200
    r._content = content
    r._content_consumed = True
    r.raw = io.BytesIO(b"")
    return r


def streaming_response(content: bytes) -> requests.Response:
    r = requests.Response()
    r.status_code = 200
    r.raw = io.BytesIO(content)
    return r


class _Probe(FastParseMixin, GetItem):
    pass


def canon(parts):
    header, body = parts
    return (
        None if header is None else lxml.etree.tostring(header, method="c14n"),
        lxml.etree.tostring(body, method="c14n"),
    )


def test_identical_tree_to_exchangelib_path():
    content = getitem_response(5, 20_000)
    original = GetItem._get_soap_parts(buffered_response(content))
    fixed = _Probe._get_soap_parts(buffered_response(content))
    assert canon(fixed) == canon(original)


def test_identical_objects_through_the_whole_service_parse():
    """Parse to exchangelib items (and an ErrorItemNotFound instance) through both paths."""
    content = getitem_response(3, 5_000)

    class Account:  # just what GetItem's parsing touches
        version = None
        default_timezone = None

    def parse(cls):
        svc = object.__new__(cls)
        svc.account = Account()
        header, body = cls._get_soap_parts(buffered_response(content))
        return list(svc._elems_to_objs(svc._get_elements_in_response(svc._get_soap_messages(body=body))))

    a, b = parse(GetItem), parse(_Probe)
    assert len(a) == len(b) == 4
    for x, y in zip(a[:3], b[:3]):
        assert (x.id, x.changekey, x.mime_content, x.message_id) == (y.id, y.changekey, y.mime_content, y.message_id)
    assert base64.b64decode(base64.b64encode(a[0].mime_content)).startswith(b"Message-ID: <m0@x>")
    assert isinstance(a[3], ews.ErrorItemNotFound) and isinstance(b[3], ews.ErrorItemNotFound)


def test_soap_fault_still_raises_server_busy_with_back_off():
    svc = object.__new__(_Probe)
    header, body = _Probe._get_soap_parts(buffered_response(BUSY_FAULT))
    with pytest.raises(ews.ErrorServerBusy) as info:
        svc._get_soap_messages(body=body)
    assert info.value.back_off == 1.5


def test_error_response_message_still_raised():
    svc = object.__new__(RawGetItem)
    header, body = RawGetItem._get_soap_parts(buffered_response(SYNC_STATE_FAULT))
    with pytest.raises(ews.ErrorAccessDenied):
        list(svc._get_elements_in_response(svc._get_soap_messages(body=body)))


def test_bad_xml_still_soap_error():
    with pytest.raises(ews.SOAPError):
        _Probe._get_soap_parts(buffered_response(b"this is not xml"))
    with pytest.raises(ews.MalformedResponseError):
        _Probe._get_soap_parts(buffered_response(b'<?xml version="1.0"?><a/>'))


def test_streaming_responses_keep_the_original_path(monkeypatch):
    content = getitem_response(1, 100)
    resp = streaming_response(content)
    assert buffered_body(resp) is None
    calls = []
    original = GetItem._get_soap_parts.__func__

    def spy(cls, response):
        calls.append(response)
        return original(cls, response)

    monkeypatch.setattr(GetItem, "_get_soap_parts", classmethod(spy))
    parts = _Probe._get_soap_parts(resp)
    assert calls == [resp]
    assert canon(parts) == canon(GetItem._get_soap_parts.__func__(GetItem, buffered_response(content)))


def test_buffered_body_detection():
    assert buffered_body(buffered_response(b"<x/>")) == b"<x/>"
    assert buffered_body(DummyResponse(content=b"<x/>", streaming=False)) == b"<x/>"
    assert buffered_body(DummyResponse(content=b"<x/>", streaming=True)) is None


def test_fix_does_not_touch_exchangelib_classes():
    from exchangelib.services.common import EWSService

    assert "_get_soap_parts" in EWSService.__dict__
    assert GetItem._get_soap_parts.__func__ is EWSService._get_soap_parts.__func__
    assert RawGetItem._get_soap_parts.__func__ is FastParseMixin._get_soap_parts.__func__
