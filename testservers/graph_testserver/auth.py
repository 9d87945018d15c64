"""App registrations, the OAuth2 client-credentials token endpoint's logic, and access tokens.

An app is ``CLIENT_ID:SECRET`` (client secret) or ``CLIENT_ID:cert=PEM_PATH`` (certificate: the PEM holds
the app's public certificate; msal signs a client assertion JWT with the private key, verified here).
An app may be scoped to some mailboxes, like an Exchange Online *application access policy*
(``New-ApplicationAccessPolicy -AccessRight RestrictAccess``): other mailboxes answer 403.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field


class TokenError(Exception):
    """An OAuth2 error response: (status, error, AADSTS description)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass
class App:
    client_id: str
    secret: str | None = None
    cert_pem: bytes | None = None
    mailboxes: set[str] | None = None  # None: every mailbox (no access policy)

    def allows(self, mailbox: str) -> bool:
        return self.mailboxes is None or mailbox.lower() in self.mailboxes


def parse_app(spec: str) -> App:
    """``CLIENT_ID:SECRET`` | ``CLIENT_ID:cert=PEM_PATH`` (scope it with ``--policy``/``POST /admin/policy``)."""
    client_id, sep, cred = spec.partition(":")
    if not sep or not client_id or not cred:
        raise ValueError(f"--app must be CLIENT_ID:SECRET or CLIENT_ID:cert=PEM_PATH, got {spec.split(':')[0]}:...")
    if cred.startswith("cert="):
        with open(cred[5:], "rb") as fh:
            return App(client_id, cert_pem=fh.read())
    return App(client_id, secret=cred)


@dataclass
class Token:
    client_id: str
    expires_at: float
    revoked: bool = False


@dataclass
class AuthRegistry:
    tenant_id: str
    apps: dict[str, App] = field(default_factory=dict)
    token_lifetime_s: int = 3599
    _tokens: dict[str, Token] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    issued: int = 0

    def add(self, app: App) -> None:
        with self._lock:
            self.apps[app.client_id] = app

    def issue(self, form: dict[str, str], token_url: str) -> dict:
        """The client-credentials grant. Raises TokenError like Entra ID does."""
        if form.get("grant_type") != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
        scope = form.get("scope", "")
        if not any(s.endswith("/.default") for s in scope.split()):
            raise TokenError(400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. "
                                                   "Client credential flows must have a scope value with /.default.")
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            raise TokenError(400, "unauthorized_client", "AADSTS700016: Application with identifier "
                             f"'{form.get('client_id', '')}' was not found in the directory.")
        if app.secret is not None:
            given = form.get("client_secret", "")
            if not hmac.compare_digest(given.encode(), app.secret.encode()):
                raise TokenError(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        else:
            self._check_assertion(app, form, token_url)
        access = "gt-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[access] = Token(app.client_id, time.time() + self.token_lifetime_s)
            self.issued += 1
        return {"token_type": "Bearer", "expires_in": self.token_lifetime_s,
                "ext_expires_in": self.token_lifetime_s, "access_token": access}

    @staticmethod
    def _check_assertion(app: App, form: dict[str, str], token_url: str) -> None:
        import jwt
        from cryptography import x509

        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            raise TokenError(401, "invalid_client", "AADSTS7000216: 'client_assertion' is required for this app.")
        assert app.cert_pem is not None
        key = x509.load_pem_x509_certificate(app.cert_pem).public_key()
        try:
            claims = jwt.decode(form.get("client_assertion", ""), key, algorithms=["RS256", "PS256"],
                                audience=token_url, options={"require": ["exp", "aud", "iss", "sub"]})
        except jwt.PyJWTError as exc:
            raise TokenError(401, "invalid_client",
                             f"AADSTS700027: Client assertion failed signature validation ({type(exc).__name__}).") from exc
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise TokenError(401, "invalid_client", "AADSTS700023: Client assertion issuer/subject mismatch.")

    def check(self, access: str) -> tuple[App | None, str | None]:
        """(app, None) for a valid token, else (None, why)."""
        with self._lock:
            tok = self._tokens.get(access)
        if tok is None:
            return None, "IDX14100: JWT is not well formed."
        if tok.revoked or tok.expires_at <= time.time():
            return None, "Lifetime validation failed, the token is expired."
        app = self.apps.get(tok.client_id)
        if app is None:
            return None, "The app of this token no longer exists."
        return app, None

    def expire_all(self) -> int:
        """Make every issued token invalid now (the next Graph call with one answers 401)."""
        with self._lock:
            live = [t for t in self._tokens.values() if not t.revoked]
            for t in live:
                t.revoked = True
            return len(live)
