"""Attachment content to a Re:infer / Communications Mining source, as the platform's CLI uploads it.

``reinfer/cli`` (``api/src/lib.rs`` / ``apis/attachments_api.rs``, ``upload_comment_attachment``):
``PUT <url>/api/_private/sources/id:<source_id>/comments/<comment_id>/attachments/<index>`` with a
multipart/form-data body holding one ``file`` part, answering ``{"status": "ok", "content_hash": ...}``.
The source id comes from ``GET <url>/api/v1/sources/<project>/<source>`` (``source.id``), asked once.

What is sent: after a page's comments were synced, each attachment entry that carries an
``attachment_reference`` (stored by attachment sync: the sha256 of the bytes in our store), once per
(comment id, index, sha256). A ledger (``exsync_destination_ledger`` under the key
``reinfer-attachments:<url>/<project>/<source>``, per ``comment_id#index`` the sha256 sent) makes a
re-run send nothing twice, and a different file at the same index (the email was edited) send again.
The entry is recorded after the platform accepted that one upload, so a crash costs at most one
upload again.

The body is streamed from the store (``MultipartFile``: the part's head, the file read 1 MiB at a
time, the closing boundary, with an exact ``Content-Length``); a retry opens the file again. Retries,
quota and token errors as every other call (``reinfer_http``). An answer whose ``content_hash`` is a
sha256 must equal ours (the bytes arrived as stored). A 413 (the platform refuses the file's size) is
logged and skipped (not recorded, so it is tried again on a later run); any other refusal fails the run.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from exchange_sync.attachments.store import CHUNK_BYTES, AttachmentStore, is_sha256, upload_key
from exchange_sync.destinations.reinfer_http import ReinferError, ReinferHttp, api_message
from exchange_sync.store import LedgerEntry, StateStore

log = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _header_value(text: str) -> str:
    """A quoted-string for a multipart header: printable ASCII, no quote or backslash."""
    return "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in text)[:200] or "attachment"


class MultipartFile:
    """A multipart/form-data body with one ``file`` part, read from the store as it is sent.

    requests streams an object with ``read`` and ``__len__`` (``Content-Length`` = its length)."""

    def __init__(self, store: AttachmentStore, sha256: str, size: int, *, name: str, content_type: str,
                 boundary: str) -> None:
        self.boundary = boundary
        self._head = (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                      f"filename=\"{_header_value(name)}\"\r\nContent-Type: {_header_value(content_type)}\r\n\r\n"
                      ).encode("ascii")
        self._tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")
        self._length = len(self._head) + size + len(self._tail)
        self._size = size
        self._file = store.open(sha256)
        self._pending = self._head
        self._sent_file = 0
        self._done = False

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def __iter__(self):
        while chunk := self.read(CHUNK_BYTES):
            yield chunk

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = CHUNK_BYTES
        out = bytearray()
        while len(out) < size and not self._done:
            if self._pending:
                take = self._pending[: size - len(out)]
                out += take
                self._pending = self._pending[len(take):]
                continue
            if self._file is not None:
                chunk = self._file.read(min(size - len(out), CHUNK_BYTES))
                if chunk:
                    self._sent_file += len(chunk)
                    out += chunk
                    continue
                if self._sent_file != self._size:
                    raise ReinferError(f"stored attachment changed size while it was sent ({self._sent_file} of "
                                       f"{self._size} bytes)")
                self._file.close()
                self._file = None
                self._pending = self._tail
                continue
            self._done = True
        return bytes(out)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class UploadCounts:
    uploaded: int = 0
    already: int = 0  # in the ledger with the same sha256: nothing sent
    skipped: int = 0  # refused for size (413), tried again on a later run


def wanted_uploads(comments: Sequence[dict[str, Any]]) -> dict[str, tuple[str, int, str]]:
    """``upload_key`` -> (comment id, index, sha256) of the stored attachments of ``comments``
    (the last occurrence of a comment id wins, as in a sync)."""
    latest = {c["id"]: c for c in comments}
    out: dict[str, tuple[str, int, str]] = {}
    for comment_id, comment in latest.items():
        for index, entry in enumerate(comment.get("attachments") or []):
            reference = entry.get("attachment_reference")
            if isinstance(reference, str) and is_sha256(reference):
                out[upload_key(comment_id, index)] = (comment_id, index, reference)
    return out


class AttachmentUploads:
    """Uploads of one destination (``http``: its session, retries and errors; ``ledger``: the state DB)."""

    def __init__(self, http: ReinferHttp, project: str, source: str, ledger: StateStore) -> None:
        self.http, self.project, self.source, self.ledger = http, project, source, ledger
        self.ledger_key = f"reinfer-attachments:{http.base_url}/{project}/{source}"
        self._source_id: str | None = None

    def source_id(self) -> str:
        if self._source_id is None:
            url = f"{self.http.base_url}/api/v1/sources/{quote(self.project, safe='')}/{quote(self.source, safe='')}"
            response = self.http._request("GET", url)
            if response.status_code != 200:
                raise ReinferError(f"looking up source {self.project}/{self.source} for attachment uploads: "
                                   f"HTTP {response.status_code}: {api_message(response)}")
            try:
                found = response.json()["source"]["id"]
            except (ValueError, KeyError, TypeError):
                found = None
            if not isinstance(found, str) or not found:
                raise ReinferError(f"looking up source {self.project}/{self.source}: the answer has no source.id")
            self._source_id = found
        return self._source_id

    def upload(self, comments: Sequence[dict[str, Any]], store: AttachmentStore) -> UploadCounts:
        counts = UploadCounts()
        wanted = wanted_uploads(comments)
        if not wanted:
            return counts
        sent = self.ledger.ledger_get(self.ledger_key, list(wanted))
        for key, (comment_id, index, sha256) in wanted.items():
            was = sent.get(key)
            if was is not None and was.text_hash == sha256:
                counts.already += 1
                continue
            if self._upload_one(comment_id, index, sha256, store):
                self.ledger.ledger_put(self.ledger_key, [LedgerEntry(id=key, text_hash=sha256,
                                                                     timestamp=_now())])
                counts.uploaded += 1
            else:
                counts.skipped += 1
        return counts

    def _upload_one(self, comment_id: str, index: int, sha256: str, store: AttachmentStore) -> bool:
        info = store.info(sha256)
        if info is None:
            raise ReinferError(f"attachment {index} of comment {comment_id} refers to {sha256}, which is not in "
                               f"the attachment store {store.url}")
        url = (f"{self.http.base_url}/api/_private/sources/id:{quote(self.source_id(), safe='')}/comments/"
               f"{quote(comment_id, safe='')}/attachments/{index}")
        boundary = f"exsync-{uuid.uuid4().hex}"

        def body() -> MultipartFile:  # a fresh stream per attempt (a retry reads the file again)
            return MultipartFile(store, sha256, info.size, name=info.name, content_type=info.content_type,
                                 boundary=boundary)

        response = self.http._request("PUT", url, body=body,
                                      headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        if response.status_code == 413:
            log.warning("attachment %d of comment %s (%d bytes) refused for size by %s (HTTP 413); not uploaded",
                        index, comment_id, info.size, self.http.target)
            return False
        if response.status_code != 200:
            raise ReinferError(f"upload of attachment {index} of comment {comment_id} to {self.http.target}: "
                               f"HTTP {response.status_code}: {api_message(response)}")
        try:
            answered = response.json().get("content_hash")
        except (ValueError, AttributeError):
            answered = None
        if isinstance(answered, str) and _SHA256.match(answered) and answered != sha256:
            raise ReinferError(f"upload of attachment {index} of comment {comment_id}: the platform received "
                               f"content {answered}, not the stored {sha256}")
        return True


def _now() -> datetime:
    return datetime.now(timezone.utc)
