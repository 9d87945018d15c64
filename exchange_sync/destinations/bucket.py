"""Raw emails into a Re:infer / Communications Mining bucket, as the hosted Exchange integration
loads them (for teams that let the platform do the cleaning).

``PUT <url>/api/_private/buckets/<owner>/<bucket>/emails`` with ``{"emails": [...]}``; each email is
the platform's ``EmailNew`` (``reinfer/cli``: ``api/src/models/email_new.rs``,
``email_metadata_new.rs``, ``attachment.rs``; docs/destinations.md has the field by field mapping):

* ``id``: the comment id (lowercase hex of the Message-ID, or the transform's documented fallback),
  so the copies of one email in several mailboxes are one email, holding the metadata of the copy
  sent last, as the hosted product documents for comments;
* ``mailbox``, ``timestamp`` (received time), ``mime_content`` (the raw MIME from staging, base64);
* ``metadata``: ``folder`` (path segments), ``received_at``, ``conversation_id``,
  ``conversation_topic``, ``has_attachments``, ``importance``, ``sensitivity``, ``categories``,
  ``size``; ``is_read`` is left out: the sync never reads the read flag (it is not in the MIME);
* ``attachments``: the comment's attachment entries (name, size, content_type, inline, and the
  content reference where attachment sync stored one).

Batches of at most ``max_emails`` and ``max_bytes`` of JSON (a 413 halves the batch); retries,
quota and token errors as in ``reinfer_http``. The PUT replaces an email by id, so a replayed page
never duplicates. The endpoint answers no counts: new / updated / unchanged (and so usage units)
come from a local ledger of what was sent (``exsync_bucket_ledger``: per id the comment's text
fingerprint and the hash of the email sent; never the mail), updated after the platform accepted
each batch.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from exchange_sync.comment import ApiComment
from exchange_sync.config import IntegrationConfig
from exchange_sync.destinations.base import commit_after_load
from exchange_sync.destinations.reinfer_http import ReinferError, ReinferHttp, api_message
from exchange_sync.staging import Staging
from exchange_sync.store import FolderState, StateStore, SyncCounts, UsageKey, textpolicy
from exchange_sync.store import buckets as bucket_store

DEFAULT_MAX_EMAILS = 256
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
ROWS_AT_ONCE = 16  # staged rows materialised at a time: a page of large mail is never in memory whole
_ATTACHMENT_FIELDS = ("name", "size", "content_type", "content_hash", "inline", "attachment_reference")
# EWS values of Importance / Sensitivity, from the MIME headers Exchange writes for them (RFC 2156).
_IMPORTANCE = {"high": "High", "normal": "Normal", "low": "Low"}
_PRIORITY = {"1": "High", "2": "High", "3": "Normal", "4": "Low", "5": "Low"}
_SENSITIVITY = {"personal": "Personal", "private": "Private", "company-confidential": "Confidential",
                "confidential": "Confidential", "normal": "Normal"}


class _TooLarge(Exception):
    pass


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _header_metadata(raw: bytes) -> dict[str, Any]:
    """Importance, sensitivity, categories and the conversation topic from the MIME headers."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    headers = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(head, headersonly=True)

    def value(name: str) -> str | None:
        found = headers.get(name)
        return " ".join(str(found).split()) if found is not None else None

    importance = _IMPORTANCE.get((value("Importance") or "").lower()) \
        or _PRIORITY.get((value("X-Priority") or "").strip()[:1]) or "Normal"
    sensitivity = _SENSITIVITY.get((value("Sensitivity") or "").lower(), "Normal")
    keywords = value("Keywords")  # Exchange writes an item's categories here
    out: dict[str, Any] = {"importance": importance, "sensitivity": sensitivity,
                           "categories": [k.strip() for k in keywords.split(",") if k.strip()] if keywords else []}
    topic = value("Thread-Topic")
    if topic:
        out["conversation_topic"] = topic
    return out


def email_of(row: dict[str, Any], comment: dict[str, Any]) -> dict[str, Any]:
    """The bucket email of a staged row (STAGED_SCHEMA) and the comment the transform made of it."""
    raw: bytes = row["mime_content"]
    received = _iso(row["datetime_received"])
    attachments = [{k: a[k] for k in _ATTACHMENT_FIELDS if a.get(k) is not None} for a in comment.get("attachments") or []]
    metadata: dict[str, Any] = {
        "folder": [part for part in (row.get("folder_path") or "").split("/") if part],
        "received_at": received,
        "has_attachments": any(not a.get("inline") for a in attachments),
        **_header_metadata(raw),
    }
    if row.get("conversation_id"):
        metadata["conversation_id"] = row["conversation_id"]
    if row.get("size") is not None:
        metadata["size"] = int(row["size"])
    return {"id": comment["id"], "mailbox": row["mailbox"], "timestamp": received,
            "mime_content": base64.b64encode(raw).decode("ascii"), "metadata": metadata,
            "attachments": attachments}


class ReinferBucketClient(ReinferHttp):
    """``PUT`` raw emails into ``<base_url>/api/_private/buckets/<owner>/<bucket>/emails``."""

    def __init__(self, base_url: str, owner: str, bucket: str, token: str, *, ledger: StateStore,
                 verify: bool | str = True, timeout: float = 120.0, max_emails: int = DEFAULT_MAX_EMAILS,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_attempts: int = 8, backoff_base: float = 1.0,
                 backoff_max: float = 60.0) -> None:
        super().__init__(base_url, token, target=f"bucket {owner}/{bucket}", verify=verify, timeout=timeout,
                         max_attempts=max_attempts, backoff_base=backoff_base, backoff_max=backoff_max)
        if max_emails < 1:
            raise ValueError("max_emails must be at least 1")
        self.owner, self.bucket = owner, bucket
        self.ledger = ledger
        self.max_emails, self.max_bytes = max_emails, max_bytes
        self.ledger_key = f"bucket:{self.base_url}/{owner}/{bucket}"

    def __repr__(self) -> str:  # never the token
        return f"ReinferBucketClient({self.base_url!r}, {self.owner!r}, {self.bucket!r})"

    @property
    def emails_url(self) -> str:
        return f"{self.base_url}/api/_private/buckets/{quote(self.owner, safe='')}/{quote(self.bucket, safe='')}/emails"

    # --- loading -----------------------------------------------------------------------------

    def load_staged(self, rows: Iterable[dict[str, Any]], comments: Sequence[dict[str, Any]]) -> SyncCounts:
        """Send the staged rows (one page, in order) that the transform made a comment of; an id more
        than once: the last occurrence wins and counts once, as in the sync endpoint."""
        by_item = {(c.get("user_properties") or {}).get("string:Item ID"): c for c in comments}
        by_item.pop(None, None)
        last = {c["id"]: (c.get("user_properties") or {}).get("string:Item ID") for c in comments}
        emails = (email_of(row, by_item[row["item_id"]]) for row in rows
                  if row["item_id"] in by_item and last.get(by_item[row["item_id"]]["id"]) == row["item_id"])
        hashes = {c["id"]: textpolicy.text_fingerprint(c) for c in comments}
        return self.put(emails, hashes)

    def put(self, emails: Iterable[dict[str, Any]], text_hashes: dict[str, str]) -> SyncCounts:
        total = SyncCounts()
        for batch in self._batches(emails):
            total = total + self._send(batch, text_hashes)
        return total

    def _batches(self, emails: Iterable[dict[str, Any]]) -> Iterator[list[tuple[dict[str, Any], bytes]]]:
        current: list[tuple[dict[str, Any], bytes]] = []
        size = 14  # {"emails":[]}
        for data in emails:
            encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            if current and (len(current) >= self.max_emails or size + len(encoded) + 1 > self.max_bytes):
                yield current
                current, size = [], 14
            current.append((data, encoded))
            size += len(encoded) + 1
        if current:
            yield current

    def _put(self, batch: list[tuple[dict[str, Any], bytes]]) -> None:
        body = b'{"emails":[' + b",".join(encoded for _, encoded in batch) + b"]}"
        response = self._request("PUT", self.emails_url, data=body, headers={"Content-Type": "application/json"})
        if response.status_code == 413:
            raise _TooLarge
        if response.status_code != 200:
            raise ReinferError(f"put of {len(batch)} emails into {self.owner}/{self.bucket}: "
                               f"HTTP {response.status_code}: {api_message(response)}")

    def _send(self, batch: list[tuple[dict[str, Any], bytes]], text_hashes: dict[str, str]) -> SyncCounts:
        try:
            self._put(batch)
        except _TooLarge:
            if len(batch) == 1:
                raise ReinferError(f"email {batch[0][0]['id']} is larger than the API accepts (HTTP 413)") from None
            half = len(batch) // 2
            return self._send(batch[:half], text_hashes) + self._send(batch[half:], text_hashes)
        sent = {data["id"]: bucket_store.SentEmail(data["id"], text_hashes.get(data["id"], ""),
                                                   hashlib.sha256(encoded).hexdigest())
                for data, encoded in batch}
        before = bucket_store.ledger_get(self.ledger, self.ledger_key, list(sent))
        counts = SyncCounts()
        for email_id, now in sent.items():
            was = before.get(email_id)
            if was is None:
                counts = counts + SyncCounts(new=1)
            elif was.payload_hash == now.payload_hash:
                counts = counts + SyncCounts(unchanged=1)
            elif was.text_hash != now.text_hash:
                counts = counts + SyncCounts(updated=1, updated_text_changed=1)
            else:
                counts = counts + SyncCounts(updated=1, updated_properties_only=1)
        bucket_store.ledger_put(self.ledger, self.ledger_key, list(sent.values()))
        return counts


class ReinferBucketEmailsDestination:
    """The ``reinfer_bucket`` kind (``base.Destination``): the page's staged raw MIME, one email per comment
    the transform made, then the watermark and usage in the checkpoints database."""

    def __init__(self, client: ReinferBucketClient, checkpoints: StateStore, staging: Staging) -> None:
        self.client, self.checkpoints, self.staging = client, checkpoints, staging

    @classmethod
    def from_config(cls, config: IntegrationConfig, *, state: StateStore,
                    checkpoints: StateStore) -> ReinferBucketEmailsDestination:
        dest = config.destination
        assert dest.kind == "reinfer_bucket"
        client = ReinferBucketClient(dest.url, dest.owner, dest.bucket, dest.token.resolve().get_secret_value(),
                                     verify=str(dest.ca_bundle) if dest.ca_bundle else dest.verify_tls, ledger=state)
        return cls(client, checkpoints, Staging(config.staging.url))

    def load(self, comments: Sequence[ApiComment], *, folder_state: FolderState | None, usage: UsageKey,
             staged_path: str | None) -> SyncCounts:
        counts = SyncCounts()
        if comments:
            if staged_path is None:
                raise ValueError("a bucket destination loads staged batches: no staged batch was given")
            rows = (row for part in self.staging.iter_batch(staged_path, ROWS_AT_ONCE) for row in part.to_pylist())
            counts = self.client.load_staged(rows, comments)
        return commit_after_load(self.checkpoints, counts, folder_state, usage)

    def close(self) -> None:
        """Nothing to release: the client's HTTP sessions are per thread and end with their threads."""
