"""``GET /api/v1/attachments/{attachment_reference}``: the stored bytes of an attachment.

The route is the public API's (``reinfer/cli`` ``api/src/apis/attachments_api.rs``, ``get_attachment``);
here an ``attachment_reference`` is the sha256 of the content (``exchange_sync.attachments``), validated
as 64 lowercase hex digits before any storage is touched (so never a path), answered 404 when unknown.
Authenticated by ``ApiGate`` and ``require_token`` like every ``/api`` route. The body streams from the
store 1 MiB at a time, as a download (``Content-Disposition: attachment``, ``nosniff``): stored mail
content is never rendered by a browser on this origin.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import StreamingResponse

from exchange_sync.api.auth import require_token
from exchange_sync.api.errors import ApiError
from exchange_sync.api.models import ErrorResponse

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
