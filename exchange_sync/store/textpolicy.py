"""What "the text" of a comment is, and how the two text policies merge and compare comments.

Definitions (one place, used by the store and the Re:infer destination alike):

* **Text fields** of a comment are, for every message, ``subject``, ``body`` and ``signature``
  (each the whole rich-text object: ``text`` and ``translated_from``). A comment's text
  *changed* when the list of those triples differs (so a different number of messages is a text
  change too). This is what the public API bills as ``updated_text_changed``.
* **Frozen fields** (kept from the first sync when text is frozen, DESIGN 1.9) are the text fields
  plus each message's ``language`` (detected from that text, so it travels with it) and the
  comment's ``timestamp``: the pipeline derives it from the received time, which Exchange keeps
  across moves (DateTimeReceived survives a move), but a CC'd copy in another mailbox can carry
  a received time a few seconds apart; freezing it keeps one comment at one point in time and
  keeps keyset pagination on (timestamp, id) stable.
* Everything else (user properties, attachments, thread_id, text_format, each message's from,
  to, cc, bcc, sent_at) is **metadata**: it is always taken from the comment synced last
  (DESIGN 1.8, "metadata of the copy synced last wins").

Equality is on canonical JSON of the public API form (``Comment.to_api()``): keys sorted, and
numbers that are whole floats written as integers (``1.0 == 1``), so a value that went through a
JSON round trip compares equal to the original.
"""

from __future__ import annotations

import copy
import hashlib
import json
from email.utils import parseaddr
from typing import Any, Literal

TEXT_FIELDS = ("subject", "body", "signature")
FROZEN_MESSAGE_FIELDS = (*TEXT_FIELDS, "language")

Outcome = Literal["new", "unchanged", "updated_properties_only", "updated_text_changed"]


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _normalise(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_normalise(item) for item in value]
    return value


def canonical_json(data: dict[str, Any], *, ensure_ascii: bool = False) -> str:
    return json.dumps(_normalise(data), sort_keys=True, separators=(",", ":"), ensure_ascii=ensure_ascii)


def text_fields(data: dict[str, Any]) -> list[list[Any]]:
    return [[message.get(field) for field in TEXT_FIELDS] for message in data.get("messages", [])]


def text_fingerprint(data: dict[str, Any]) -> str:
    """sha256 (hex) of the comment's text fields; equal fingerprints = same text."""
    # ensure_ascii: the hash must not fail on a lone surrogate, and is the same for any text.
    encoded = json.dumps(_normalise(text_fields(data)), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(encoded.encode("ascii")).hexdigest()


def search_text(data: dict[str, Any]) -> str:
    parts: list[str] = []
    for message in data.get("messages", []):
        for field in TEXT_FIELDS:
            rich = message.get(field)
            if rich and rich.get("text"):
                parts.append(rich["text"])
    return "\n".join(parts).lower()


def freeze_text(stored: dict[str, Any], incoming: dict[str, Any]) -> dict[str, Any]:
    """``incoming`` with the frozen fields of ``stored``.

    Message i of the result is incoming message i's metadata with stored message i's frozen
    fields. Incoming messages beyond the stored count are dropped (they would be new text);
    stored messages beyond the incoming count are kept as stored.
    """
    merged = copy.deepcopy(incoming)
    merged["timestamp"] = stored["timestamp"]
    stored_messages = stored.get("messages", [])
    incoming_messages = incoming.get("messages", [])
    messages: list[dict[str, Any]] = []
    for index, old in enumerate(stored_messages):
        if index >= len(incoming_messages):
            messages.append(copy.deepcopy(old))
            continue
        message = copy.deepcopy(incoming_messages[index])
        for field in FROZEN_MESSAGE_FIELDS:
            if field in old:
                message[field] = copy.deepcopy(old[field])
            else:
                message.pop(field, None)
        messages.append(message)
    merged["messages"] = messages
    return merged


def decide(stored: dict[str, Any] | None, incoming: dict[str, Any], *, freeze: bool) -> tuple[Outcome, dict[str, Any]]:
    """The outcome of syncing ``incoming`` over ``stored`` and the comment to keep."""
    if stored is None:
        return "new", incoming
    result = freeze_text(stored, incoming) if freeze else incoming
    if canonical_json(result) == canonical_json(stored):
        return "unchanged", stored
    if text_fingerprint(result) != text_fingerprint(stored):
        return "updated_text_changed", result
    return "updated_properties_only", result


def mailbox_of(data: dict[str, Any]) -> str | None:
    value = data.get("user_properties", {}).get("string:Mailbox")
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def folder_of(data: dict[str, Any]) -> str | None:
    value = data.get("user_properties", {}).get("string:Folder")
    return value if isinstance(value, str) and value else None


def sender_domain_of(data: dict[str, Any]) -> str | None:
    value = data.get("user_properties", {}).get("string:Sender Domain")
    if isinstance(value, str) and value.strip():
        return value.strip().lower()
    messages = data.get("messages") or [{}]
    address = parseaddr(messages[0].get("from") or "")[1]
    if "@" in address:
        return address.rsplit("@", 1)[1].strip().lower() or None
    return None
