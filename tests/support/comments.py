"""A small factory of valid comments for tests (ids are the hex of a made-up Message-ID)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from exchange_sync.comment import Comment, message_id_to_comment_id

BASE_TIME = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def comment_id(n: int | str) -> str:
    return message_id_to_comment_id(f"<msg-{n}@example.test>")


def make_comment(
    n: int | str,
    *,
    subject: str | None = None,
    body: str | None = None,
    signature: str | None = "Ann Smith\nAccounts Payable",
    mailbox: str = "ap@acme.com",
    folder: str = "Inbox",
    sender: str = "Ann <ann@acme.com>",
    to: list[str] | None = None,
    timestamp: datetime | None = None,
    language: str | None = "en",
    thread_id: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    extra_properties: dict[str, Any] | None = None,
) -> Comment:
    when = timestamp or BASE_TIME + timedelta(minutes=int(n) if str(n).isdigit() else 0)
    sender_domain = sender.rsplit("@", 1)[-1].rstrip(">").lower()
    message: dict[str, Any] = {
        "from": sender,
        "to": to if to is not None else [mailbox],
        "sent_at": when.isoformat(),
        "subject": {"text": subject if subject is not None else f"Invoice {n} overdue"},
        "body": {"text": body if body is not None else f"Please pay invoice {n}."},
    }
    if language is not None:
        message["language"] = language
    if signature is not None:
        message["signature"] = {"text": signature}
    properties: dict[str, Any] = {
        "string:Mailbox": mailbox,
        "string:Folder": folder,
        "string:Message ID": f"<msg-{n}@example.test>",
        "string:Sender Domain": sender_domain,
        "number:Attachments": len(attachments or []),
    }
    properties.update(extra_properties or {})
    return Comment.model_validate(
        {
            "id": comment_id(n),
            "timestamp": when.isoformat(),
            "thread_id": thread_id,
            "messages": [message],
            "user_properties": properties,
            "attachments": attachments or [],
        }
    )
