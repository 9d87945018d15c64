"""``create_app``: the FastAPI application over one ``SqlStore``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from exchange_sync import __version__
from exchange_sync.comment import MAX_TEXT_CHARS, PROPERTY_NAME_PATTERN, TIMESTAMP_PATTERN
from exchange_sync.api import attachments, buckets, page, routes
from exchange_sync.api.errors import install_error_handlers
from exchange_sync.api.gate import LOOPBACK_HOSTS, MAX_SYNC_BYTES, ApiGate
from exchange_sync.store import SqlStore

def _document_message_rules(components: dict[str, Any]) -> None:
    for name, component in components.items():
        sent_at = component.get("properties", {}).get("sent_at") if name.startswith("Message") else None
        for option in (sent_at or {}).get("anyOf", []):
            if option.get("format") == "date-time":
                option["pattern"] = TIMESTAMP_PATTERN


def _document_comment_rules(components: dict[str, Any]) -> None:
    """Rules the Comment model checks in validators, which pydantic cannot put in the schema:
    ids are lowercase hex, property keys are typed ("string:..." -> string, "number:..." ->
    number). Documented so that clients (and the fuzzer) know what is valid."""
    for name, component in components.items():
        if not name.startswith("Comment") or "user_properties" not in component.get("properties", {}):
            continue
        properties = component["properties"]
        properties["id"]["pattern"] = "^[0-9a-f]+$"
        properties["timestamp"]["pattern"] = TIMESTAMP_PATTERN
        properties["user_properties"] = {
            "type": "object",
            "title": "User Properties",
            "patternProperties": {
                f"^string:{PROPERTY_NAME_PATTERN}$": {"type": "string", "maxLength": MAX_TEXT_CHARS},
                f"^number:{PROPERTY_NAME_PATTERN}$": {"type": "number"},
            },
            "additionalProperties": False,
        }


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI documents validation errors as 422 HTTPValidationError; this API answers 400
    with the public error shape, so the document says that (schemathesis checks it)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
    components = schema.get("components", {}).get("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    _document_comment_rules(components)
    _document_message_rules(components)
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http",
        "scheme": "bearer",
    }
    schema["security"] = [{"bearerAuth": []}]
    app.openapi_schema = schema
    return schema


def create_app(store: SqlStore, *, token: str | None, max_body_bytes: int = MAX_SYNC_BYTES,
               allowed_hosts: frozenset[str] | None = None, comment_quota: int | None = None,
               attachments_url: str | None = None) -> FastAPI:
    """The API + comments page. ``token=None`` disables authentication (the CLI allows that only on
    a loopback address) and then only requests whose ``Host`` is a loopback name are answered
    (``allowed_hosts``, default ``LOOPBACK_HOSTS``: DNS rebinding). ``max_body_bytes`` is the sync
    route's body limit; every limit and the token are enforced by ``ApiGate`` before a body is read.

    No Swagger UI (it loads its scripts from a CDN): the OpenAPI document is at ``/openapi.json``,
    behind the token. ``comment_quota``: at most this many comments per source (and emails per
    bucket); a sync or put past it is refused with 403 "Quota exceeded" (tests of ``comment_quota_hit``).
    ``attachments_url``: the attachment store served at ``/api/v1/attachments/<sha256>`` (None: every
    reference is 404)."""
    app = FastAPI(
        title="exchange-sync comments API",
        version=__version__,
        description="Comments synced from Exchange, in the public Re:infer / Communications Mining API shape.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    app.state.api_token = token
    app.state.comment_quota = comment_quota
    from exchange_sync.attachments import AttachmentStore

    app.state.attachments = AttachmentStore(attachments_url) if attachments_url else None
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(buckets.router)
    app.include_router(attachments.router)
    app.include_router(page.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    if token is None and allowed_hosts is None:
        allowed_hosts = LOOPBACK_HOSTS
    app.add_middleware(ApiGate, token=token, allowed_hosts=allowed_hosts, max_sync_bytes=max_body_bytes)
    return app
