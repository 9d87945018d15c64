"""SOAP 1.1 envelope parsing and EWS response building (lxml)."""

from __future__ import annotations

import itertools
import re
import secrets
import threading
from dataclasses import dataclass

import pybase64
from lxml import etree

from . import schema

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP_BODY = {"m": M, "t": T}

# The ServerVersionInfo of the default profile (Exchange 2016 CU23); each server sends its profile's
# (``schema.PROFILES``).
SERVER_VERSION = schema.PROFILES[schema.DEFAULT_PROFILE].server_version_info()

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, remove_blank_text=True)


class SoapFault(Exception):
    """Raised by an operation to answer with a SOAP fault (HTTP 500) instead of a response.

    ``message``: the detail's e:Message when it differs from the faultstring (ErrorSchemaValidation);
    ``violation``: (line, position, text) for the detail's t:MessageXml of a schema failure."""

    def __init__(self, code: str, text: str, back_off_ms: int | None = None, message: str | None = None,
                 violation: tuple[int, int, str] | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.back_off_ms = back_off_ms
        self.message = message
        self.violation = violation


class ResponseError(Exception):
    """A per-ResponseMessage error (ResponseClass="Error")."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass
class Request:
    operation: str
    body: etree._Element  # the operation element, e.g. m:GetFolder
    impersonate: str | None  # SMTP address / UPN / SID from ExchangeImpersonation
    requested_version: str | None
    header: etree._Element | None = None  # s:Header (its children are validated)
    raw: bytes = b""  # the request as received (line/position of schema violations)


def t(name: str) -> str:
    return f"{{{T}}}{name}"


def m(name: str) -> str:
    return f"{{{M}}}{name}"


def parse_request(data: bytes) -> Request:
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        line, col = exc.position if exc.position else (0, 0)
        text = exc.msg or str(exc)
        raise SoapFault("ErrorSchemaValidation", f"The request failed schema validation: {text}",
                        message="The request failed schema validation.", violation=(line, col, text)) from exc
    if root.tag != f"{{{S}}}Envelope":
        raise SoapFault("ErrorSchemaValidation", "The request is not a SOAP 1.1 envelope.")
    header = root.find(f"{{{S}}}Header")
    body = root.find(f"{{{S}}}Body")
    if body is None or len(body) == 0:
        raise SoapFault("ErrorSchemaValidation", "The SOAP body is empty.")
    op = body[0]
    impersonate = None
    version = None
    if header is not None:
        imp = header.find(t("ExchangeImpersonation"))
        if imp is not None:
            sid = imp.find(t("ConnectingSID"))
            if sid is not None:
                for child in sid:
                    if child.text and child.text.strip():
                        impersonate = child.text.strip()
                        break
            if impersonate is None:
                impersonate = ""
        rsv = header.find(t("RequestServerVersion"))
        if rsv is not None:
            version = rsv.get("Version")
    name = etree.QName(op).localname
    # A few operations name their body element <Op>Request (GetUserOofSettingsRequest, ...).
    if name.endswith("Request") and name not in ("ResolveNames",):
        name = name[: -len("Request")]
    return Request(name, op, impersonate, version, header, data)


# Large base64 values (MimeContent, attachment content) are not put through lxml: setting a 5 MB
# text checks every character and serialising it copies it again (a fifth of the server's CPU in a
# 10,000-message sync). The element gets a placeholder token instead and ``envelope`` splices the
# base64 bytes into the serialised document (base64 needs no XML escaping). Tokens carry a per-process
# random nonce, so no mail content can forge one. A token is itself valid base64Binary (alphanumeric,
# 32 characters), so the tree validates against the schema before the splice (protocol audit).
_RAW_NONCE = secrets.token_hex(8)
_RAW_TOKEN_RE = re.compile(rf"RAW0{_RAW_NONCE}(\d{{12}})".encode())
_raw_parts = threading.local()  # this request thread's pending spliced values: {number: bytes}
_raw_numbers = itertools.count()


def sub_base64(parent: etree._Element, name: str, data: bytes, **attrs: str) -> etree._Element:
    """``sub(parent, name, base64(data))``, the base64 spliced in by ``envelope`` (see above)."""
    parts = getattr(_raw_parts, "values", None)
    if parts is None:
        parts = _raw_parts.values = {}
    number = next(_raw_numbers)
    parts[number] = pybase64.b64encode(data)
    return sub(parent, name, f"RAW0{_RAW_NONCE}{number:012d}", **attrs)


def build_envelope(body_child: etree._Element, server_version: dict[str, str] | None = None) -> etree._Element:
    """The response envelope as a tree (validated as is by the protocol audit; ``serialize`` splices)."""
    env = etree.Element(f"{{{S}}}Envelope", nsmap={"s": S})
    header = etree.SubElement(env, f"{{{S}}}Header")
    etree.SubElement(header, t("ServerVersionInfo"), server_version or SERVER_VERSION, nsmap={"h": T})
    body = etree.SubElement(
        env, f"{{{S}}}Body",
        nsmap={"m": M, "t": T, "xsi": "http://www.w3.org/2001/XMLSchema-instance",
               "xsd": "http://www.w3.org/2001/XMLSchema"},
    )
    body.append(body_child)
    return env


def envelope(body_child: etree._Element, server_version: dict[str, str] | None = None) -> bytes:
    return serialize(build_envelope(body_child, server_version))


def serialize(env: etree._Element) -> bytes:
    out = etree.tostring(env, xml_declaration=True, encoding="utf-8")
    parts = getattr(_raw_parts, "values", None)
    if not parts:
        return out
    _raw_parts.values = None  # whatever this response did not use (an error path) is dropped too
    pieces = _RAW_TOKEN_RE.split(out)
    # split() alternates text and captured numbers: text, n, text, n, ..., text
    for i in range(1, len(pieces), 2):
        pieces[i] = parts[int(pieces[i])]
    return b"".join(pieces)


def fault(code: str, text: str, back_off_ms: int | None = None, server_version: dict[str, str] | None = None,
          message: str | None = None, violation: tuple[int, int, str] | None = None) -> bytes:
    """A SOAP fault exchangelib maps to ``exchangelib.errors.<code>``.

    BackOffMilliseconds sits in ``t:MessageXml`` in the *types* namespace: that is where
    exchangelib (and real Exchange) put it; under the errors namespace it is silently ignored.
    A schema failure (``violation``) carries t:LineNumber, t:LinePosition and t:Violation there, and
    e:Message "The request failed schema validation." as Exchange sends it.
    """
    env = etree.Element(f"{{{S}}}Envelope", nsmap={"s": S})
    header = etree.SubElement(env, f"{{{S}}}Header")
    etree.SubElement(header, t("ServerVersionInfo"), server_version or SERVER_VERSION, nsmap={"h": T})
    body = etree.SubElement(env, f"{{{S}}}Body")
    flt = etree.SubElement(body, f"{{{S}}}Fault")
    fc = etree.SubElement(flt, "faultcode", nsmap={"a": T})
    fc.text = f"a:{code}"
    fs = etree.SubElement(flt, "faultstring")
    fs.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    fs.text = text
    detail = etree.SubElement(flt, "detail")
    etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E}).text = code
    etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E}).text = message or text
    if violation is not None:
        mx = etree.SubElement(detail, t("MessageXml"), nsmap={"t": T})
        etree.SubElement(mx, t("LineNumber")).text = str(violation[0])
        etree.SubElement(mx, t("LinePosition")).text = str(violation[1])
        etree.SubElement(mx, t("Violation")).text = violation[2]
    if back_off_ms is not None:
        mx = etree.SubElement(detail, t("MessageXml"), nsmap={"t": T})
        v = etree.SubElement(mx, t("Value"), Name="BackOffMilliseconds")
        v.text = str(int(back_off_ms))
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def response_root(operation: str) -> tuple[etree._Element, etree._Element]:
    """(m:<Op>Response, m:ResponseMessages)"""
    resp = etree.Element(m(f"{operation}Response"), nsmap=NSMAP_BODY)
    msgs = etree.SubElement(resp, m("ResponseMessages"))
    return resp, msgs


def success_message(parent: etree._Element, operation: str) -> etree._Element:
    msg = etree.SubElement(parent, m(f"{operation}ResponseMessage"), ResponseClass="Success")
    etree.SubElement(msg, m("ResponseCode")).text = "NoError"
    return msg


# The (empty) container Exchange puts into a per-item error message of these operations, e.g.
# <m:GetItemResponseMessage ResponseClass="Error">...<m:DescriptiveLinkKey>0</...><m:Items/>.
ERROR_CONTAINERS = {"GetItem": "Items", "MoveItem": "Items", "CopyItem": "Items", "CreateItem": "Items",
                    "UpdateItem": "Items", "GetFolder": "Folders", "CreateFolder": "Folders",
                    "GetAttachment": "Attachments"}


def error_message(parent: etree._Element, operation: str, code: str, text: str) -> etree._Element:
    msg = etree.SubElement(parent, m(f"{operation}ResponseMessage"), ResponseClass="Error")
    etree.SubElement(msg, m("MessageText")).text = text
    etree.SubElement(msg, m("ResponseCode")).text = code
    etree.SubElement(msg, m("DescriptiveLinkKey")).text = "0"
    container = ERROR_CONTAINERS.get(operation)
    if container is not None:
        etree.SubElement(msg, m(container))
    return msg


def sub(parent: etree._Element, name: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, t(name), attrs)
    if text is not None:
        el.text = text
    return el
