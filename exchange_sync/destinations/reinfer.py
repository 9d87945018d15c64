"""The Re:infer / Communications Mining API as a destination (plain ``requests``; no SDK exists).

Frozen text over an API that always replaces (see docs/destinations.md): the public sync
endpoint replaces a comment's text, but the product must never change subject or body after the
first sync. So before sending, each comment is given the text it was first synced with:

* A local **ledger** (table ``exsync_destination_ledger`` in the state database) records, for every
  comment this destination has loaded, the fingerprint of the text it sent and the timestamp.
* Incoming comment in the ledger with the same text fingerprint: sent as is (with the ledger's
  timestamp). This is the common case (moves, CC copies, replays) and costs no extra request.
* Not in the ledger (first sight, or the ledger was lost), or its text differs from the ledger's
  (the email was edited): ``GET .../comments/<id>``; 404 means new and it is sent as is, otherwise
  the remote comment's frozen fields are kept and only metadata is taken from the new one.
* After the API accepted a batch, the ledger is updated for that batch. A crash in between
  leaves ids out of the ledger, which only costs a GET next time: never a text change.

Counts (and so usage units) are the API's own answer. Retries: 429, 409 and 5xx (and connection
errors) with exponential backoff, honouring ``Retry-After``; a replayed batch is harmless because
sync is idempotent. A 413 splits the batch. 401/403 fail at once with ``ReinferAuthError``, a
refusal for quota with ``ReinferQuotaError`` (``reinfer_http``: shared with the bucket destination).

Attachment content (``upload_attachments``, after a page's sync, for mailboxes with
``attachments.sync``): ``reinfer_attachments``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from exchange_sync.comment import MAX_COMMENTS_PER_SYNC, ApiComment, Comment, api_form
from exchange_sync.attachments import AttachmentStore, attachments_url
from exchange_sync.config import IntegrationConfig
from exchange_sync.destinations.base import commit_after_load
from exchange_sync.destinations.reinfer_attachments import AttachmentUploads, UploadCounts
from exchange_sync.destinations.reinfer_http import ReinferError, ReinferHttp, api_message as _api_message
from exchange_sync.store import FolderState, LedgerEntry, StateStore, SyncCounts, UsageKey
from exchange_sync.store import textpolicy

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
_COMMENT_FIELDS = ("id", "timestamp", "thread_id", "messages", "user_properties", "attachments", "text_format")


class _TooLarge(Exception):
    pass


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class ReinferClient(ReinferHttp):
    """``sync()`` into ``<base_url>/api/v1/sources/<project>/<source>/sync``.

    ``token`` is the API token itself (the caller resolves it from an environment variable or a
    Prefect Secret block); it is only ever put in the ``Authorization`` header.
    """

    def __init__(
        self,
        base_url: str,
        project: str,
        source: str,
        token: str,
        *,
        ledger: StateStore,
        verify: bool | str = True,
        timeout: float = 120.0,
        max_comments: int = MAX_COMMENTS_PER_SYNC,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_attempts: int = 8,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        lookup_workers: int = 8,
    ) -> None:
        if not 1 <= max_comments <= MAX_COMMENTS_PER_SYNC:
            raise ValueError(f"max_comments must be within 1..{MAX_COMMENTS_PER_SYNC}")
        super().__init__(base_url, token, target=f"{project}/{source}", verify=verify, timeout=timeout,
                         max_attempts=max_attempts, backoff_base=backoff_base, backoff_max=backoff_max)
        self.project = project
        self.source = source
        self.ledger = ledger
        self.max_comments = max_comments
        self.max_bytes = max_bytes
        self.lookup_workers = lookup_workers
        self.ledger_key = f"reinfer:{self.base_url}/{project}/{source}"
        self._uploads: AttachmentUploads | None = None

    def __repr__(self) -> str:  # never the token
        return f"ReinferClient({self.base_url!r}, {self.project!r}, {self.source!r})"

    # --- HTTP --------------------------------------------------------------------------------

    def _source_url(self, suffix: str) -> str:
        return f"{self.base_url}/api/v1/sources/{quote(self.project, safe='')}/{quote(self.source, safe='')}{suffix}"

    def get_remote(self, comment_id: str) -> dict[str, Any] | None:
        response = self._request("GET", self._source_url(f"/comments/{quote(comment_id, safe='')}"))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ReinferError(f"GET comment {comment_id}: HTTP {response.status_code}: {_api_message(response)}")
        comment = response.json()["comment"]
        return {key: comment[key] for key in _COMMENT_FIELDS if key in comment}

    def _post(self, batch: list[dict[str, Any]]) -> SyncCounts:
        body = json.dumps({"comments": batch}, ensure_ascii=False).encode("utf-8")
        response = self._request(
            "POST", self._source_url("/sync"), data=body, headers={"Content-Type": "application/json"}
        )
        if response.status_code == 413:
            raise _TooLarge
        if response.status_code != 200:
            raise ReinferError(f"sync of {len(batch)} comments: HTTP {response.status_code}: {_api_message(response)}")
        return SyncCounts.model_validate(response.json())

    # --- frozen text -------------------------------------------------------------------------

    def _with_frozen_text(self, incoming: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        entries = self.ledger.ledger_get(self.ledger_key, list(incoming))
        prepared: dict[str, dict[str, Any]] = {}
        lookups: list[str] = []
        for comment_id, data in incoming.items():
            entry = entries.get(comment_id)
            if entry is not None and textpolicy.text_fingerprint(data) == entry.text_hash:
                prepared[comment_id] = {**data, "timestamp": _iso(entry.timestamp)}
            else:
                lookups.append(comment_id)
        if lookups:
            with ThreadPoolExecutor(max_workers=self.lookup_workers) as pool:
                remotes = dict(zip(lookups, pool.map(self.get_remote, lookups)))
            for comment_id in lookups:
                remote = remotes[comment_id]
                data = incoming[comment_id]
                merged = data if remote is None else textpolicy.freeze_text(remote, data)
                prepared[comment_id] = Comment.model_validate(merged).to_api()
        # Keep the caller's order (last occurrence of each id).
        return {comment_id: prepared[comment_id] for comment_id in incoming}

    # --- batching ----------------------------------------------------------------------------

    def _batches(self, comments: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        batches: list[list[dict[str, Any]]] = []
        current: list[dict[str, Any]] = []
        size = 16  # {"comments":[]}
        for data in comments:
            item = len(json.dumps(data, ensure_ascii=False).encode("utf-8")) + 1
            if current and (len(current) >= self.max_comments or size + item > self.max_bytes):
                batches.append(current)
                current, size = [], 16
            current.append(data)
            size += item
        if current:
            batches.append(current)
        return batches

    def _send(self, batch: list[dict[str, Any]]) -> SyncCounts:
        try:
            counts = self._post(batch)
        except _TooLarge:
            if len(batch) == 1:
                raise ReinferError(f"comment {batch[0]['id']} is larger than the API accepts (HTTP 413)") from None
            half = len(batch) // 2
            return self._send(batch[:half]) + self._send(batch[half:])
        self.ledger.ledger_put(
            self.ledger_key,
            [
                LedgerEntry(
                    id=data["id"],
                    text_hash=textpolicy.text_fingerprint(data),
                    timestamp=datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00")),
                )
                for data in batch
            ],
        )
        return counts

    def sync(self, comments: Sequence[Comment | ApiComment], *, freeze_text: bool = True) -> SyncCounts:
        """Load ``comments``; duplicates of an id in one call: the last wins (as in the store)."""
        incoming: dict[str, dict[str, Any]] = {}
        for comment in comments:
            data = api_form(comment)
            incoming.pop(data["id"], None)
            incoming[data["id"]] = data
        if not incoming:
            return SyncCounts()
        prepared = self._with_frozen_text(incoming) if freeze_text else incoming
        total = SyncCounts()
        for batch in self._batches(list(prepared.values())):
            total = total + self._send(batch)
        return total

    def upload_attachments(self, comments: Sequence[Comment | ApiComment], store: Any) -> UploadCounts:
        """Upload the stored attachments of ``comments`` (already synced), each (comment, index,
        sha256) once: see ``reinfer_attachments``. ``store``: the ``AttachmentStore`` they are in."""
        if self._uploads is None:
            self._uploads = AttachmentUploads(self, self.project, self.source, self.ledger)
        return self._uploads.upload([api_form(c) for c in comments], store)


class ReinferCommentsDestination:
    """The ``reinfer`` kind (``base.Destination``): the page's comments through ``client``, then the stored
    attachment content of the mailboxes in ``upload_for`` (``attachments.sync``): after the comments exist
    on the platform, before the watermark is committed (so a crash in between uploads again, never skips)."""

    def __init__(self, client: ReinferClient, checkpoints: StateStore, attachments: AttachmentStore,
                 upload_for: frozenset[str]) -> None:
        self.client, self.checkpoints, self.attachments, self.upload_for = client, checkpoints, attachments, upload_for

    @classmethod
    def from_config(cls, config: IntegrationConfig, *, state: StateStore,
                    checkpoints: StateStore) -> ReinferCommentsDestination:
        dest = config.destination
        assert dest.kind == "reinfer"
        client = ReinferClient(
            dest.url, dest.project, dest.source, dest.token.resolve().get_secret_value(),
            verify=str(dest.ca_bundle) if dest.ca_bundle else dest.verify_tls,
            ledger=state,  # what was sent, to keep text frozen without re-reading (docs/destinations.md)
        )
        return cls(client, checkpoints, AttachmentStore(attachments_url(config.staging.url)),
                   frozenset(mb.email for mb in config.mailboxes if mb.attachments.sync))

    def load(self, comments: Sequence[ApiComment], *, folder_state: FolderState | None, usage: UsageKey,
             staged_path: str | None) -> SyncCounts:
        counts = self.client.sync(comments, freeze_text=True) if comments else SyncCounts()
        if comments and usage.mailbox in self.upload_for:
            self.client.upload_attachments(comments, self.attachments)
        return commit_after_load(self.checkpoints, counts, folder_state, usage)

    def close(self) -> None:
        """Nothing to release: the client's HTTP sessions are per thread and end with their threads."""
