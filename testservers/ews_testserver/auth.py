"""Accounts, access rights, and HTTP authentication (Basic, NTLM, Bearer).

NTLM: pyspnego's pure-Python acceptor reads its credentials from the file named by the
NTLM_USER_FILE environment variable, matching the DOMAIN and user of the client's
AUTHENTICATE message exactly. To be liberal about how a client spells the account
(``DOMAIN\\user``, ``\\user@example.com``, ``user``), the server peeks at the AUTHENTICATE
message, maps its user to a configured account liberally, and writes a line for that exact
(domain, user) with the account's password hashes before stepping the context. The file
uses the smbpasswd format (hashes, not passwords), so passwords may contain ':'.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field

from .operations import Principal


@dataclass
class Account:
    username: str
    password: str
    impersonation: bool = False
    generation: int = 0  # bumped on password change: connection-level (NTLM) auth must be redone


def _norm(username: str) -> str:
    """'DOMAIN\\User@Example.com' -> 'user@example.com' (domain dropped, case folded)."""
    return username.rsplit("\\", 1)[-1].strip().lower()


def parse_account(spec: str) -> Account:
    """USER:PASSWORD[:impersonation] (the password may itself contain ':')."""
    user, sep, rest = spec.partition(":")
    if not sep or not user:
        raise ValueError(f"--account must be USER:PASSWORD[:impersonation], got {spec!r}")
    impersonation = False
    if rest.endswith(":impersonation"):
        rest, impersonation = rest[: -len(":impersonation")], True
    return Account(user, rest, impersonation)


@dataclass
class AccountRegistry:
    accounts: list[Account] = field(default_factory=list)
    grants: dict[str, set[str]] = field(default_factory=dict)  # normalised username -> addresses
    tokens: dict[str, str] = field(default_factory=dict)  # bearer token -> account username
    lock: threading.RLock = field(default_factory=threading.RLock)

    def find(self, username: str) -> Account | None:
        """Liberal lookup: case-insensitive, with or without domain, UPN or bare user name."""
        wanted = _norm(username)
        with self.lock:
            for acc in self.accounts:
                if _norm(acc.username) == wanted:
                    return acc
            local = wanted.split("@", 1)[0]
            matches = [a for a in self.accounts if _norm(a.username).split("@", 1)[0] == local
                       and ("@" not in wanted or "@" not in _norm(a.username))]
            return matches[0] if len(matches) == 1 else None

    def set_password(self, username: str, password: str) -> Account:
        with self.lock:
            acc = self.find(username)
            if acc is None:
                acc = Account(username, password)
                self.accounts.append(acc)
            elif acc.password != password:
                acc.password = password
                acc.generation += 1
            return acc

    def grant(self, username: str, address: str) -> None:
        with self.lock:
            self.grants.setdefault(_norm(username), set()).add(address.strip().lower())

    def check_password(self, username: str, password: str) -> Account | None:
        acc = self.find(username)
        if acc is None:
            return None
        # Constant-time compare so the test server does not teach timing-leaky habits.
        return acc if hmac.compare_digest(acc.password.encode(), password.encode()) else None

    def issue_token(self, username: str) -> str:
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = username
        return token

    def check_token(self, token: str) -> Account | None:
        with self.lock:
            for known, user in self.tokens.items():
                if hmac.compare_digest(known.encode(), token.encode()):
                    return self.find(user)
        return None

    def principal(self, acc: Account, mailbox_exists) -> Principal:
        norm = _norm(acc.username)
        with self.lock:
            granted = set(self.grants.get(norm, set()))
        own = norm if "@" in norm and mailbox_exists(norm) else None

        def can_access(address: str) -> bool:
            address = address.lower()
            return address == own or address in granted or (
                "@" not in norm and address.split("@", 1)[0] == norm and mailbox_exists(address))
        return Principal(username=acc.username, impersonation=acc.impersonation, can_access=can_access, own_address=own)


def parse_basic(header_value: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(header_value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class NtlmAcceptor:
    """Server side of the NTLM handshake; one per TCP connection (NTLM is connection-oriented)."""

    _file_lock = threading.Lock()
    _store_path: str | None = None
    _entries: dict[tuple[str, str], str] = {}

    def __init__(self, registry: AccountRegistry) -> None:
        import spnego

        self.registry = registry
        self._ensure_store()
        self.ctx = spnego.server(protocol="ntlm", options=spnego.NegotiateOptions.use_ntlm)
        self.account: Account | None = None

    @classmethod
    def _ensure_store(cls) -> None:
        with cls._file_lock:
            if cls._store_path is None:
                fd, path = tempfile.mkstemp(prefix="ews-testserver-ntlm-", suffix=".txt")
                os.close(fd)
                cls._store_path = path
                os.environ["NTLM_USER_FILE"] = path

    @classmethod
    def _write_entry(cls, domain: str, user: str, password: str) -> None:
        from spnego._ntlm_raw.crypto import lmowfv1, ntowfv1

        key = (domain.upper(), user.upper())
        line_user = f"{domain}\\{user}" if domain else user
        line = (f"{line_user}:0:{base64.b16encode(lmowfv1(password)).decode()}:"
                f"{base64.b16encode(ntowfv1(password)).decode()}:[U]:LCT-0")
        with cls._file_lock:
            if cls._entries.get(key) == line:
                return
            cls._entries[key] = line
            assert cls._store_path is not None
            tmp = cls._store_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write("\n".join(cls._entries.values()) + "\n")
            os.replace(tmp, cls._store_path)

    def step(self, token: bytes) -> bytes | None:
        """Feed a client token; returns the reply token (challenge) or None when complete.

        Raises on bad credentials (spnego.exceptions.SpnegoError) or unknown users (PermissionError).
        """
        from spnego._ntlm_raw.messages import Authenticate

        if len(token) > 12 and token[8:12] == b"\x03\x00\x00\x00":
            auth = Authenticate.unpack(token)
            user = auth.user_name or ""
            domain = auth.domain_name or ""
            acc = self.registry.find(f"{domain}\\{user}" if domain else user)
            if acc is None:
                raise PermissionError(f"unknown NTLM user {domain}\\{user}")
            self._write_entry(domain, user, acc.password)
            out = self.ctx.step(token)
            if self.ctx.complete:
                self.account = acc
            return out
        return self.ctx.step(token)
