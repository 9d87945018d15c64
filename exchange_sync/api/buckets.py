"""The bucket route of the comments API: raw emails as the hosted Exchange integration loads them.

``PUT /api/_private/buckets/<owner>/<bucket>/emails`` with ``{"emails": [...]}`` (the platform's
``AddEmailsToBucketRequest``: ``reinfer/cli`` ``api/src/models/email_new.rs``,
``email_metadata_new.rs``, ``attachment.rs``) answers ``{"status": "ok"}``; an id sent again replaces
its email. ``GET`` on the same path lists a bucket's emails by id (``?id=`` for given ones), so tests
and the demo can check what arrived. Authenticated by ``ApiGate`` before the body is read, like the
other routes; the body limit is the sync route's.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from exchange_sync.api.auth import require_token
from exchange_sync.api.errors import ApiError
from exchange_sync.api.models import ErrorResponse, OkResponse
from exchange_sync.comment import MAX_ATTACHMENTS, MAX_ID_CHARS
from exchange_sync.store import SqlStore
from exchange_sync.store import buckets as bucket_store

# Bucket owner and name: what the platform's CLI accepts (``[A-Za-z0-9-_]{1,256}`` each).
BUCKET_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,256}$"
# Email ids: printable ASCII (ours are the comment ids, lowercase hex); no control characters.
ID_PATTERN = r"^[!-~]+$"
# Standard base64 with padding (RFC 4648 section 4), as documented: validated before it is stored.
BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
MAX_EMAILS_PER_PUT = 4096


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailAttachment(_Strict):
    name: str = Field(max_length=1024)
    size: int = Field(ge=0)
    content_type: str = Field(max_length=256)
    content_hash: str | None = Field(default=None, max_length=256)
    inline: bool | None = None
    attachment_reference: str | None = Field(default=None, max_length=1024)


class EmailMetadata(_Strict):
    sensitivity: str | None = Field(default=None, max_length=64)
    size: int | None = Field(default=None, ge=0)
    categories: list[Annotated[str, Field(max_length=256)]] | None = Field(default=None, max_length=256)
    importance: str | None = Field(default=None, max_length=64)
    has_attachments: bool | None = None
    conversation_id: str | None = Field(default=None, max_length=1024)
    conversation_topic: str | None = Field(default=None, max_length=65_536)
    is_read: bool | None = None
    folder: list[Annotated[str, Field(max_length=1024)]] | None = Field(default=None, max_length=64)
    received_at: datetime | None = None


class EmailNew(_Strict):
    id: str = Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)
    mailbox: str = Field(min_length=1, max_length=320)
    timestamp: datetime
    mime_content: str = Field(description="the raw email (RFC 5322), base64", pattern=BASE64_PATTERN)
    metadata: EmailMetadata | None = None
    attachments: list[EmailAttachment] | None = Field(default=None, max_length=MAX_ATTACHMENTS)

    @field_validator("mime_content")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("mime_content must be the raw email in base64") from None
        return value


class PutEmailsRequest(_Strict):
    emails: list[EmailNew] = Field(max_length=MAX_EMAILS_PER_PUT)


class EmailListResponse(BaseModel):
    status: Literal["ok"] = "ok"
    emails: list[dict]
    continuation: str | None = None


Owner = Annotated[str, Path(pattern=BUCKET_NAME_PATTERN, description="Bucket owner (project)")]
Bucket = Annotated[str, Path(pattern=BUCKET_NAME_PATTERN, description="Bucket name")]

router = APIRouter(dependencies=[Depends(require_token)],
                   responses={400: {"model": ErrorResponse, "description": "Invalid request"},
                              401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
                              413: {"model": ErrorResponse, "description": "Request body too large"}})


def _store(request: Request) -> SqlStore:
    return request.app.state.store


@router.put("/api/_private/buckets/{owner}/{bucket}/emails", response_model=OkResponse,
            responses={403: {"model": ErrorResponse, "description": "Quota exceeded"}})
def put_emails(
    owner: Owner,
    bucket: Bucket,
    body: PutEmailsRequest,
    request: Request,
    no_charge: Annotated[bool, Query(description="Accepted for compatibility; nothing is billed here")] = False,
) -> OkResponse:
    """Add emails to a bucket; an email whose id is already there is replaced (never duplicated)."""
    emails = [e.model_dump(mode="json", exclude_none=True) for e in body.emails]
    for index, data in enumerate(emails):
        try:  # JSON allows lone UTF-16 surrogates; UTF-8 (and so the store) cannot hold them
            bucket_store.canonical(data).encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, f"invalid request: emails.{index} contains text that is not valid Unicode") from None
    try:
        bucket_store.put_emails(_store(request), f"{owner}/{bucket}", emails,
                                quota=getattr(request.app.state, "comment_quota", None))
    except bucket_store.QuotaExceeded as exc:
        raise ApiError(403, f"Quota exceeded: bucket {owner}/{bucket} holds {exc.held} emails and may hold "
                            f"{exc.quota}; {exc.new} new ones refused") from None
    return OkResponse()


@router.get("/api/_private/buckets/{owner}/{bucket}/emails", response_model=EmailListResponse)
def get_emails(
    owner: Owner,
    bucket: Bucket,
    request: Request,
    ids: Annotated[list[Annotated[str, StringConstraints(max_length=MAX_ID_CHARS, pattern=ID_PATTERN)]] | None,
                   Query(alias="id", max_length=500)] = None,
    after: Annotated[str | None, Query(max_length=MAX_ID_CHARS, pattern=ID_PATTERN,
                                       description="Continuation of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    """A bucket's emails ordered by id (``?id=`` for given ones); ``continuation`` pages on."""
    emails = bucket_store.list_emails(_store(request), f"{owner}/{bucket}", ids=ids, after=after, limit=limit)
    continuation = emails[-1]["id"] if len(emails) == limit and ids is None else None
    return JSONResponse({"status": "ok", "emails": emails, "continuation": continuation})
