"""Bearer-token authentication (one shared token, compared in constant time).

The comments page cannot send an ``Authorization`` header from a plain link, so it uses a cookie
that holds not the token but ``HMAC(token, "comments-page")``: a stolen page cookie reads the
page, it cannot call the API.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from fastapi import Request

from exchange_sync.api.errors import ApiError

TOKEN_ENV = "EXCHANGE_SYNC_API_TOKEN"
PAGE_COOKIE = "exsync_page"


def token_matches(presented: str | None, expected: str) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8"))


def page_cookie_value(token: str) -> str:
    return hmac.new(token.encode("utf-8"), b"comments-page", hashlib.sha256).hexdigest()


def bearer_from(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the configured bearer token."""
    expected: str | None = request.app.state.api_token
    if expected is None:  # --no-auth (loopback only, enforced at start-up)
        return
    presented = bearer_from(request)
    if presented is None:
        raise ApiError(401, "missing bearer token: send 'Authorization: Bearer <token>'")
    if not token_matches(presented, expected):
        raise ApiError(401, "invalid API token")


def page_authorised(request: Request) -> bool:
    expected: str | None = request.app.state.api_token
    if expected is None:
        return True
    cookie = request.cookies.get(PAGE_COOKIE)
    if cookie is not None and hmac.compare_digest(cookie.encode(), page_cookie_value(expected).encode()):
        return True
    return token_matches(bearer_from(request), expected)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
