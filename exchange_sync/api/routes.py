"""The JSON API: the public Re:infer routes, served from the embedded store.

A source ``(project, source)`` is the store's source key ``"project/source"``. Handlers are plain
``def``: FastAPI runs them in its thread pool, and the store is thread-safe.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from exchange_sync.api.auth import require_token
from exchange_sync.api.errors import ApiError
from exchange_sync.api.models import (
    MAX_DELETE_IDS,
    MAX_LIST_LIMIT,
    NAME_PATTERN,
    CommentListResponse,
    CommentResponse,
    ErrorResponse,
    OkResponse,
    SyncRequest,
    SyncResponse,
)
from exchange_sync.comment import MAX_ID_CHARS
from exchange_sync.store import InvalidContinuation, SqlStore

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid request"},
    401: {"model": ErrorResponse, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorResponse, "description": "Quota exceeded"},
    413: {"model": ErrorResponse, "description": "Request body too large"},
}

Project = Annotated[str, Path(pattern=NAME_PATTERN, description="Project name")]
Source = Annotated[str, Path(pattern=NAME_PATTERN, description="Source name")]

router = APIRouter(dependencies=[Depends(require_token)], responses=ERRORS)


def source_key(project: str, source: str) -> str:
    return f"{project}/{source}"


def _store(request: Request) -> SqlStore:
    return request.app.state.store


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:  # a time without offset is read as UTC, like the public API
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _reject_unencodable(body: SyncRequest) -> None:
    """JSON allows lone UTF-16 surrogates ("\\ud800"); UTF-8 cannot carry them. Refuse them here,
    where the client gets a clear 400, instead of storing text no response could encode."""
    for index, comment in enumerate(body.comments):
        try:
            json.dumps(comment.to_api(), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError(400, f"invalid request: comments.{index} contains text that is not valid Unicode") from exc


def _check_quota(request: Request, project: str, source: str, body: SyncRequest) -> None:
    """``--comment-quota`` (tests): refuse a sync that would take the source past the quota, as the
    platform refuses for its comment quota (403 with a message naming the quota). Checked, not locked:
    two concurrent syncs may pass it together."""
    quota = getattr(request.app.state, "comment_quota", None)
    if quota is None:
        return
    store, key = _store(request), source_key(project, source)
    held = store.count_comments(key)
    ids = {c.id for c in body.comments}
    if held + len(ids) <= quota:
        return
    new = sum(1 for i in ids if store.get_comment(i, source=key) is None)
    if new and held + new > quota:
        raise ApiError(403, f"Quota exceeded: source {project}/{source} holds {held} comments and may hold {quota}; "
                            f"{new} new ones refused")


@router.post("/api/v1/sources/{project}/{source}/sync", response_model=SyncResponse)
def sync_comments(
    project: Project,
    source: Source,
    body: SyncRequest,
    request: Request,
    no_charge: Annotated[bool, Query(description="Accepted for compatibility; nothing is billed here")] = False,
) -> SyncResponse:
    """Create or update comments (public sync semantics). Text is replaced, not frozen."""
    _reject_unencodable(body)
    _check_quota(request, project, source, body)
    counts = _store(request).sync_comments(body.comments, source=source_key(project, source), freeze_text=False)
    return SyncResponse(**counts.model_dump())


@router.get(
    "/api/v1/sources/{project}/{source}/comments/{comment_id}",
    response_model=CommentResponse,
    responses={404: {"model": ErrorResponse, "description": "No such comment"}},
)
def get_comment(
    project: Project,
    source: Source,
    comment_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
    request: Request,
) -> JSONResponse:
    comment = _store(request).get_comment(comment_id, source=source_key(project, source)) if _storable(comment_id) else None
    if comment is None:
        raise ApiError(404, f"comment {comment_id!r} not found in {project}/{source}")
    return JSONResponse({"status": "ok", "comment": comment.to_api()})


@router.delete("/api/v1/sources/{project}/{source}/comments", response_model=OkResponse)
def delete_comments(
    project: Project,
    source: Source,
    request: Request,
    ids: Annotated[list[str], Query(alias="id", min_length=1, max_length=MAX_DELETE_IDS)],
) -> OkResponse:
    """Delete comments by id (``?id=a&id=b``); unknown ids are ignored."""
    known = [i for i in ids if _storable(i)]
    if known:
        _store(request).delete_comments(known, source=source_key(project, source))
    return OkResponse()


def _storable(comment_id: str) -> bool:
    """An id with a NUL character cannot be a stored comment's (PostgreSQL text refuses NUL; the
    database would answer an error, not "no such comment"): unknown, without asking the store."""
    return "\x00" not in comment_id


@router.get("/api/_private/sources/{project}/{source}/comments", response_model=CommentListResponse)
def list_comments(
    project: Project,
    source: Source,
    request: Request,
    from_timestamp: datetime | None = None,
    to_timestamp: datetime | None = None,
    after: Annotated[
        str | None, Query(max_length=4096, pattern=r"^[A-Za-z0-9_-]*$", description="Continuation of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
) -> JSONResponse:
    """Comments ordered by (timestamp, id); ``from_timestamp`` inclusive, ``to_timestamp``
    exclusive. Keyset pagination: stable while others write."""
    try:
        comments, continuation = _store(request).list_comments(
            source_key(project, source),
            from_timestamp=_utc(from_timestamp),
            to_timestamp=_utc(to_timestamp),
            after=after or None,
            limit=limit,
        )
    except InvalidContinuation as exc:
        raise ApiError(400, "invalid continuation token") from exc
    return JSONResponse(
        {"status": "ok", "comments": [c.to_api() for c in comments], "continuation": continuation}
    )
