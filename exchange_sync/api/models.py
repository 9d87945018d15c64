"""Request and response bodies of the comments API (compatible with the public Re:infer API)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from exchange_sync.comment import MAX_COMMENTS_PER_SYNC, Comment

# Project and source names: what the public API accepts in practice (letters, digits, - _ .).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
MAX_LIST_LIMIT = 1000
MAX_DELETE_IDS = 4096


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comments: list[Comment] = Field(max_length=MAX_COMMENTS_PER_SYNC)


class SyncResponse(BaseModel):
    status: Literal["ok"] = "ok"
    new: int
    updated: int
    updated_properties_only: int
    updated_text_changed: int
    unchanged: int


class CommentResponse(BaseModel):
    status: Literal["ok"] = "ok"
    comment: Comment


class CommentListResponse(BaseModel):
    status: Literal["ok"] = "ok"
    comments: list[Comment]
    continuation: str | None = None


class OkResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorResponse(BaseModel):
    status: Literal["error"] = "error"
    message: str
