"""``GET /api/v1/attachments/{attachment_reference}``: the stored bytes of an attachment.

The route is the public API's (``reinfer/cli`` ``api/src/apis/attachments_api.rs``, ``get_attachment``);
here an ``attachment_reference`` is the sha256 of the content (``exchange_sync.attachments``), validated
as 64 lowercase hex digits before any storage is touched (so never a path), answered 404 when unknown.
Authenticated by ``ApiGate`` and ``require_token`` like every ``/api`` route. The body streams from the
store 1 MiB at a time, as a download (``Content-Disposition: attachment``, ``nosniff``): stored mail
content is never rendered by a browser on this origin.

Uploads, as the platform's private route (``reinfer/cli`` ``upload_comment_attachment``):
``PUT /api/_private/sources/id:{source_id}/comments/{comment_id}/attachments/{attachment_index}`` with
a multipart ``file`` field, answering ``{"status": "ok", "content_hash": <sha256>}``. A source's id is
the hex of its UTF-8 key ``project/source`` (``GET /api/v1/sources/{project}/{source}`` answers it as
``source.id``), so it needs no table. The comment must exist and have an attachment at that index. The
bytes are stored content-addressed in the ``--attachments`` store, hashed while they are copied
(FastAPI spools the part to a temporary file past 1 MiB); what was uploaded is listed by
``GET /api/_private/sources/id:{source_id}/comments/{comment_id}/attachments`` (index, content_hash,
uploaded_at; kept in the state database's ledger table under ``api-upload:<project/source>``).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Path, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from exchange_sync.api.auth import require_token
from exchange_sync.api.errors import ApiError
from exchange_sync.api.models import NAME_PATTERN, ErrorResponse
from exchange_sync.attachments.store import upload_key
from exchange_sync.comment import MAX_ATTACHMENTS, MAX_ID_CHARS
from exchange_sync.store import LedgerEntry

SHA256_PATTERN = r"^[0-9a-f]{64}$"

router = APIRouter(dependencies=[Depends(require_token)], responses={
    400: {"model": ErrorResponse, "description": "Not a sha256 reference"},
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
    404: {"model": ErrorResponse, "description": "Unknown attachment"},
})


def _download_name(name: str) -> str:
    # RFC 6266: an ASCII fallback plus the UTF-8 name; quotes, backslashes and controls never pass.
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in name) or "attachment"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get(
    "/api/v1/attachments/{attachment_reference}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The attachment's bytes"}},
)
def get_attachment(
    request: Request,
    attachment_reference: Annotated[str, Path(pattern=SHA256_PATTERN, description="sha256 of the content")],
) -> StreamingResponse:
    store = request.app.state.attachments
    info = store.info(attachment_reference) if store is not None else None
    if info is None:
        raise ApiError(404, f"attachment {attachment_reference} not found")
    content_type = info.content_type if "/" in info.content_type and "\n" not in info.content_type else "application/octet-stream"
    headers = {
        "Content-Length": str(info.size),
        "Content-Disposition": _download_name(info.name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=86400, immutable",
    }
    return StreamingResponse(store.iter_bytes(attachment_reference), media_type=content_type, headers=headers)


# --- uploads (the platform's private route) -------------------------------------------------------

SOURCE_ID_PATTERN = r"^(?:[0-9a-f]{2}){3,260}$"
UPLOAD_LEDGER = "api-upload:"


class SourceInfo(BaseModel):
    id: str
    owner: str
    name: str


class SourceResponse(BaseModel):
    status: str = "ok"
    source: SourceInfo


class UploadAttachmentResponse(BaseModel):
    status: str = "ok"
    content_hash: str


def source_id(project: str, source: str) -> str:
    return f"{project}/{source}".encode("utf-8").hex()


def _source_key(source_id_hex: str) -> str:
    try:
        key = bytes.fromhex(source_id_hex).decode("utf-8")
    except ValueError:
        key = ""
    project, _, source = key.partition("/")
    if not (re.match(NAME_PATTERN, project) and re.match(NAME_PATTERN, source)):
        raise ApiError(404, f"source id:{source_id_hex} not found")
    return key


def _comment(request: Request, key: str, comment_id: str):
    comment = request.app.state.store.get_comment(comment_id, source=key) if "\x00" not in comment_id else None
    if comment is None:
        raise ApiError(404, f"comment {comment_id!r} not found in {key}")
    return comment


@router.get("/api/v1/sources/{project}/{source}", response_model=SourceResponse)
def get_source(
    project: Annotated[str, Path(pattern=NAME_PATTERN, description="Project name")],
    source: Annotated[str, Path(pattern=NAME_PATTERN, description="Source name")],
) -> SourceResponse:
    """A source by owner and name; ``source.id`` is what the ``id:`` routes take."""
    return SourceResponse(source=SourceInfo(id=source_id(project, source), owner=project, name=source))


@router.put(
    "/api/_private/sources/id:{source_id}/comments/{comment_id}/attachments/{attachment_index}",
    response_model=UploadAttachmentResponse,
    responses={413: {"model": ErrorResponse, "description": "Request body too large"}},
)
def upload_comment_attachment(
    request: Request,
    source_id: Annotated[str, Path(pattern=SOURCE_ID_PATTERN, description="The source's id")],
    comment_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
    attachment_index: Annotated[int, Path(ge=0, lt=MAX_ATTACHMENTS)],
    file: Annotated[UploadFile, File(description="The attachment's bytes")],
) -> UploadAttachmentResponse:
    key = _source_key(source_id)
    comment = _comment(request, key, comment_id)
    if attachment_index >= len(comment.attachments):
        raise ApiError(404, f"comment {comment_id!r} has no attachment {attachment_index} "
                            f"({len(comment.attachments)} attachments)")
    store = request.app.state.attachments
    if store is None:
        raise ApiError(400, "this server stores no attachment content (start it with --attachments)")
    entry = comment.attachments[attachment_index]
    info, _ = store.put_stream(file.file, content_type=entry.content_type or "application/octet-stream",
                               name=entry.name or "attachment")
    request.app.state.store.ledger_put(UPLOAD_LEDGER + key, [LedgerEntry(
        id=upload_key(comment_id, attachment_index), text_hash=info.sha256, timestamp=datetime.now(timezone.utc))])
    return UploadAttachmentResponse(content_hash=info.sha256)


@router.get("/api/_private/sources/id:{source_id}/comments/{comment_id}/attachments")
def list_uploaded_attachments(
    request: Request,
    source_id: Annotated[str, Path(pattern=SOURCE_ID_PATTERN, description="The source's id")],
    comment_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
) -> JSONResponse:
    """The comment's attachment entries, each with ``uploaded`` and, when uploaded, ``content_hash``
    of the bytes received and ``uploaded_at`` (the last upload)."""
    key = _source_key(source_id)
    comment = _comment(request, key, comment_id)
    ids = [upload_key(comment_id, i) for i in range(len(comment.attachments))]
    received = request.app.state.store.ledger_get(UPLOAD_LEDGER + key, ids)
    out = []
    for index, entry in enumerate(comment.attachments):
        got = received.get(ids[index])
        out.append({"index": index, "name": entry.name, "uploaded": got is not None,
                    **({"content_hash": got.text_hash,
                        "uploaded_at": got.timestamp.isoformat().replace("+00:00", "Z")} if got else {})})
    return JSONResponse({"status": "ok", "attachments": out})
