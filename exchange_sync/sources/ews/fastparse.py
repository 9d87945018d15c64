"""The narrow fix for exchangelib 5.6.0's byte-at-a-time response parse (docs/upstream/exchangelib-iter-content.md).

``EWSService._get_soap_parts`` parses every response with ``to_xml(response.iter_content())``. For a
non-streaming request, requests has already read the whole body into ``response._content``;
``iter_content()`` without a chunk size then yields it **one byte per iteration** (requests'
default ``chunk_size=1``), and exchangelib's ``BytesGeneratorIO`` stitches those bytes back together
for lxml: ~0.5 MB/s of pure Python overhead. ``to_xml`` already has a fast path for ``bytes``
(``io.BytesIO``), which is what we hand it when the body is fully buffered.

Scope: only services that inherit :class:`FastParseMixin` (the source's own service classes); other
exchangelib code in the process is untouched. Streaming responses (``stream=True``, where
``_content`` is not yet read) keep the original path. Everything after parsing - SOAP fault mapping,
BackOffMilliseconds, ResponseCode handling, retries - is exchangelib's unchanged code.
"""

from __future__ import annotations

from typing import Any

import requests
from exchangelib.errors import MalformedResponseError, SOAPError, TransportError
from exchangelib.util import SOAPNS, ParseError, to_xml
from exchangelib.version import Version

from .xmlguard import check_response


def buffered_body(response: Any) -> bytes | None:
    """The fully downloaded body, or None when the response is (still) a stream."""
    if isinstance(response, requests.Response):
        # requests sets _content_consumed/_content after reading a non-streamed body in Session.send().
        content = getattr(response, "_content", False)
        if getattr(response, "_content_consumed", False) and isinstance(content, bytes):
            return content
        return None
    # exchangelib's DummyResponse (used by Service.parse()) keeps bytes in .content when not streaming.
    content = getattr(response, "content", None)
    return content if isinstance(content, bytes) else None


class FastParseMixin:
    """Put first in the bases of an exchangelib service class."""

    @classmethod
    def _get_soap_parts(cls, response: Any) -> tuple[Any, Any]:
        body_bytes = buffered_body(response)
        if body_bytes is None:
            return super()._get_soap_parts(response=response)  # type: ignore[misc]
        check_response(body_bytes)  # no DTD, no entities (xmlguard.py)
        # Same as EWSService._get_soap_parts, with the bytes instead of a 1-byte iterator.
        try:
            root = to_xml(body_bytes)
        except ParseError as e:
            raise SOAPError(f"Bad SOAP response: {e}")
        header = root.find(f"{{{SOAPNS}}}Header")
        body = root.find(f"{{{SOAPNS}}}Body")
        if body is None:
            raise MalformedResponseError("No Body element in SOAP response")
        return header, body

    def _update_api_version(self, api_version: str, header: Any) -> None:
        super()._update_api_version(api_version=api_version, header=header)  # type: ignore[misc]
        # exchangelib keeps *a* version (configured, or guessed from its own table, where Exchange2016 maps
        # to Exchange Online's build); what the server itself reported is kept apart on the protocol, so
        # that requests depending on the real server version (discovery) can trust it.
        try:
            reported = Version.from_soap_header(requested_api_version=api_version, header=header)
        except TransportError:
            return
        if reported.build is not None:
            self.protocol.reported_version = reported  # type: ignore[attr-defined]
            # exchangelib keeps a version negotiated down from a configured one (ErrorInvalidServerVersion,
            # then the next older RequestServerVersion) on the *account* only: every new MailboxSession
            # would negotiate again, several refused requests before each real one on an older server.
            if self.protocol.config.version != reported:  # type: ignore[attr-defined]
                self.protocol.config.version = reported  # type: ignore[attr-defined]
