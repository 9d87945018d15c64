"""``create_app``: the FastAPI application over one ``SqlStore``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exchange_sync import __version__
from exchange_sync.comment import MAX_TEXT_CHARS, PROPERTY_NAME_PATTERN, TIMESTAMP_PATTERN
from exchange_sync.api import page, routes
from exchange_sync.api.errors import error_response, install_error_handlers
from exchange_sync.store import SqlStore

# 16,384 comments of real mail are ~30-100 MB of JSON; more than this is refused before parsing.
DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: by Content-Length up front, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = error_response(413, f"request body larger than {self.max_bytes} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await too_large(scope, receive, send)
                    return
        received = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            # FastAPI turns any exception raised while reading the body into a 400, so the 413
            # is sent from here and the application is told the client went away.
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out already
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise


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


def create_app(store: SqlStore, *, token: str | None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The API + comments page. ``token=None`` disables authentication (the CLI allows that only on
    a loopback address)."""
    app = FastAPI(
        title="exchange-sync comments API",
        version=__version__,
        description="Comments synced from Exchange, in the public Re:infer / Communications Mining API shape.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.store = store
    app.state.api_token = token
    install_error_handlers(app)
    app.include_router(routes.router)
    app.include_router(page.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    return app
