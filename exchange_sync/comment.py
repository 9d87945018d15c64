"""The comment: the public Re:infer / Communications Mining comment format, as pydantic models.

These models are the boundary between the transform (which builds them), the stores and
destinations (which persist them) and the comments API (which serves them). Field limits are
those of the public API; the transform truncates *before* building a model (with a visible
marker, see ``truncate_text``) so validation here is a last line of defence, not the way long
text is handled.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

MAX_TEXT_CHARS = 65_536
MAX_ADDRESS_CHARS = 512
MAX_LANGUAGE_CHARS = 8
MAX_ATTACHMENTS = 128
MAX_ATTACHMENT_FIELD_CHARS = 256
MAX_MESSAGES = 2048
MAX_COMMENTS_PER_SYNC = 16_384
MAX_ID_CHARS = 1024  # hex of a Message-ID: RFC 5322 lines are <= 998 chars, ids in practice far shorter

TRUNCATION_MARKER = "\n[... truncated by exchange-sync: {dropped} characters removed]"

_ID_RE = re.compile(r"^[0-9a-f]+$")
# The part after "string:"/"number:": starts with a visible character, no control characters.
# Spelled with explicit code points so Python's `re` and the ECMA regexes of OpenAPI tooling agree
# (their `\s` and `.` differ, e.g. on U+0085).
PROPERTY_NAME_PATTERN = (
    r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
    r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]{0,254}"
)
_PROPERTY_KEY_RE = re.compile(rf"^(string|number):{PROPERTY_NAME_PATTERN}$")


def truncate_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    # The marker's own length depends on the number it prints; reserve room for the widest.
    marker_room = len(TRUNCATION_MARKER.format(dropped=len(text)))
    keep = max(limit - marker_room, 0)
    return text[:keep] + TRUNCATION_MARKER.format(dropped=len(text) - keep)


# Years 1001-9998: a time zone offset can then never push the UTC value out of Python's range
# (year 1 - 9999). Documented in the OpenAPI schema so clients and the API fuzzer know.
TIMESTAMP_PATTERN = (
    r"^(100[1-9]|10[1-9][0-9]|1[1-9][0-9]{2}|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        # e.g. 0001-01-01T00:00:00+05:00: in UTC it would fall before year 1.
        raise ValueError("timestamp is out of range in UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
Address = Annotated[str, Field(max_length=MAX_ADDRESS_CHARS)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class RichText(_Model):
    text: str = Field(max_length=MAX_TEXT_CHARS)
    translated_from: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)


class Message(_Model):
    # `from` is a Python keyword: the attribute is `from_`, serialised as "from" (by_alias).
    from_: Address | None = Field(default=None, alias="from")
    to: list[Address] = Field(default_factory=list)
    cc: list[Address] = Field(default_factory=list)
    bcc: list[Address] = Field(default_factory=list)
    sent_at: UtcDatetime | None = None
    language: str | None = Field(default=None, max_length=MAX_LANGUAGE_CHARS)
    subject: RichText | None = None
    body: RichText = Field(default_factory=lambda: RichText(text=""))
    signature: RichText | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Attachment(_Model):
    name: str = Field(max_length=MAX_ATTACHMENT_FIELD_CHARS)
    size: int = Field(ge=0)
    content_type: str = Field(max_length=MAX_ATTACHMENT_FIELD_CHARS)
    inline: bool | None = None
    content_hash: str | None = Field(default=None, max_length=MAX_ATTACHMENT_FIELD_CHARS)
    attachment_reference: str | None = Field(default=None, max_length=MAX_ATTACHMENT_FIELD_CHARS)


UserPropertyValue = str | float | int


class Comment(_Model):
    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    timestamp: UtcDatetime
    thread_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    user_properties: dict[str, UserPropertyValue] = Field(default_factory=dict)
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    text_format: Literal["plain", "markdown"] | None = None

    @field_validator("id")
    @classmethod
    def _id_is_lower_hex(cls, value: str) -> str:
        # The public API accepts any string id, but this product's ids are always hex
        # (Message-ID bytes or the documented fallback), so anything else is a bug upstream.
        if not _ID_RE.match(value):
            raise ValueError("comment id must be lowercase hex")
        return value

    @field_validator("user_properties", mode="before")
    @classmethod
    def _no_booleans(cls, value: object) -> object:
        # pydantic would coerce True to 1; a boolean is not a valid property value in the public API.
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, bool):
                    raise ValueError(f"user property {key!r} must be a string or a number, not a boolean")
        return value

    @field_validator("user_properties")
    @classmethod
    def _property_keys_are_typed(cls, value: dict[str, UserPropertyValue]) -> dict[str, UserPropertyValue]:
        for key, item in value.items():
            if not _PROPERTY_KEY_RE.match(key):
                raise ValueError(f"user property key {key!r} must start with 'string:' or 'number:'")
            if key.startswith("string:"):
                if not isinstance(item, str):
                    raise ValueError(f"user property {key!r} must be a string")
                if len(item) > MAX_TEXT_CHARS:
                    raise ValueError(f"user property {key!r} is longer than {MAX_TEXT_CHARS} characters")
            elif isinstance(item, bool) or not isinstance(item, (int, float)):
                raise ValueError(f"user property {key!r} must be a number")
        return value

    def to_api(self) -> dict:
        """The JSON-ready dict of the public API (``from`` key, no nulls, ISO-8601 'Z' times)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def message(self) -> Message:
        return self.messages[0]


# A comment in the public API's JSON form, as ``Comment.to_api()`` returns it. The transform stages
# comments in this form and the loaders take it as is: it was validated when it was made, and
# validating it again (model_validate_json, then model_dump) cost the main process more than the
# SQLite writes it feeds (docs/performance.md).
ApiComment = dict[str, Any]


def api_form(comment: Union[Comment, ApiComment]) -> ApiComment:
    """``comment.to_api()`` for a model; an ``ApiComment`` is returned as is."""
    return comment.to_api() if isinstance(comment, Comment) else comment


def message_id_to_comment_id(message_id: str) -> str:
    """DESIGN 1.7: lowercase hex of the UTF-8 bytes of the Message-ID as sent, brackets kept, ends stripped."""
    return message_id.strip().encode("utf-8", "surrogateescape").hex()
