"""Participant and domain filters of a mailbox (pure: no I/O, no Exchange types).

The hosted integration's per-mailbox ``participant_allowlist``, ``participant_denylist``,
``participant_domain_allowlist`` and ``participant_domain_denylist`` (reinfer/cli,
``api/src/resources/integration.rs``: lists of emails and of domain strings). Its public model and
documentation give the names and types only; the rule here (docs/source.md, "Participant filters"):

- a message's participants are the addresses of its From, Sender, To and Cc (not Bcc, not Reply-To);
- addresses compare case-insensitively; a domain entry matches that domain and its subdomains
  (``acme.com`` matches ``a@acme.com`` and ``a@eu.acme.com``, not ``a@notacme.com``);
- deny wins: a message with any participant on a denylist (address or domain) is filtered;
- allow: when an allowlist (address or domain) is configured, a message is kept only if at least one
  participant is on one of the allowlists; without allowlists every message not denied is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_ADDRESS_RE = re.compile(r"^[^@\s<>(),;:\"\[\]]+@([^@\s<>(),;:\"\[\]]+)$")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")

FILTER_FIELDS = ("participant_allowlist", "participant_denylist", "participant_domain_allowlist",
                 "participant_domain_denylist")


def normalise_domain(value: str) -> str:
    """``ACME.com``, ``@acme.com``, ``*.acme.com`` and ``acme.com.`` -> ``acme.com``; ValueError for garbage."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a domain")
    text = value.strip().lower()
    if text.startswith("*."):
        text = text[2:]
    text = text.lstrip("@").rstrip(".")
    if not text or "@" in text:
        raise ValueError(f"{value!r} is not a domain (expected e.g. acme.com)")
    try:
        ascii_text = text.encode("idna").decode("ascii") if not text.isascii() else text
    except UnicodeError:
        raise ValueError(f"{value!r} is not a domain (expected e.g. acme.com)") from None
    if len(ascii_text) > 253 or not all(_LABEL_RE.match(label) for label in ascii_text.split(".")):
        raise ValueError(f"{value!r} is not a domain (expected e.g. acme.com)")
    return text


def normalise_address(value: str) -> str:
    """``Jane@ACME.com`` -> ``jane@acme.com`` (also ``mailto:``); ValueError for anything but one address."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an email address")
    text = value.strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    match = _ADDRESS_RE.match(text)
    if not match:
        raise ValueError(f"{value!r} is not an email address (expected e.g. jane@acme.com, no display name)")
    normalise_domain(match.group(1))
    return text.lower()


def participant_address(value: Any) -> str | None:
    """An address as a message carries it, lowercased; None for one without ``@`` (e.g. an X.500 DN)."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text.startswith("smtp:"):
        text = text[5:]
    if "@" not in text:
        return None
    return text


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[1].rstrip(".")


def _domain_in(domain: str, entries: frozenset[str]) -> bool:
    if domain in entries:
        return True
    parts = domain.split(".")
    return any(".".join(parts[i:]) in entries for i in range(1, len(parts)))


@dataclass(frozen=True)
class ParticipantFilter:
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    domain_allow: frozenset[str] = frozenset()
    domain_deny: frozenset[str] = frozenset()

    @classmethod
    def of(cls, mailbox: Any) -> ParticipantFilter | None:
        """The filter of a ``MailboxConfig`` (already normalised by its validators); None without one."""
        lists = [getattr(mailbox, name, None) or () for name in FILTER_FIELDS]
        if not any(lists):
            return None
        allow, deny, domain_allow, domain_deny = (frozenset(x) for x in lists)
        return cls(allow, deny, domain_allow, domain_deny)

    @property
    def has_allowlist(self) -> bool:
        return bool(self.allow or self.domain_allow)

    def verdict(self, participants: Iterable[str]) -> str | None:
        """None if the message is kept, else why it is filtered (``denylist`` or ``not_allowlisted``)."""
        addresses = {a for a in (participant_address(p) for p in participants) if a}
        allowed = False
        for address in addresses:
            domain = domain_of(address)
            if address in self.deny or _domain_in(domain, self.domain_deny):
                return "denylist"
            if address in self.allow or _domain_in(domain, self.domain_allow):
                allowed = True
        if self.has_allowlist and not allowed:
            return "not_allowlisted"
        return None

    def keeps(self, participants: Iterable[str]) -> bool:
        return self.verdict(participants) is None
