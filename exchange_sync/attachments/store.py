"""Content-addressed attachment store: ``<root>/<sha256[:2]>/<sha256>`` plus a ``.json`` sidecar
(content type and first file name seen), on a local folder or any fsspec URL.

By default the root is ``<staging.url>/_attachments`` (``attachments_url``): integration names start
with a letter or digit, so it never collides with a staged batch, and ``Staging.prune`` only removes
batch files, so stored attachments outlive ``staging.keep_days``.

Writes are atomic (a temporary name renamed into place) and idempotent (an existing hash is never
written again); the bytes are written in chunks of ``CHUNK_BYTES`` from a ``memoryview`` and hashed
on the way, so the stored file is checked against its name without a second copy in memory.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import fsspec

CHUNK_BYTES = 1024 * 1024
ATTACHMENTS_DIR = "_attachments"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def is_sha256(value: str) -> bool:
    """64 lowercase hex digits: the only names the store reads or writes (no path traversal)."""
    return bool(_SHA256_RE.match(value))


def upload_key(comment_id: str, index: int) -> str:
    """A ledger id for (comment, attachment index) that fits the ledger's 1024 characters."""
    if len(comment_id) > 1000:
        comment_id = "sha256:" + hashlib.sha256(comment_id.encode("utf-8")).hexdigest()
    return f"{comment_id}#{index}"


def attachments_url(staging_url: str) -> str:
    return staging_url.rstrip("/") + "/" + ATTACHMENTS_DIR


@dataclass(frozen=True)
class StoredInfo:
    sha256: str
    size: int
    content_type: str
    name: str


class AttachmentStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.fs, root = fsspec.core.url_to_fs(url)
        self.root = root.rstrip("/")

    def _path(self, sha256: str) -> str:
        if not is_sha256(sha256):
            raise ValueError("not a sha256 hex digest")
        return f"{self.root}/{sha256[:2]}/{sha256}"

    def exists(self, sha256: str) -> bool:
        return self.fs.exists(self._path(sha256))

    def put(self, sha256: str, data: bytes | memoryview, *, content_type: str, name: str) -> bool:
        """Store ``data`` under its hash; False when it was already there (nothing written)."""
        path = self._path(sha256)
        if self.fs.exists(path):
            return False
        directory = path.rsplit("/", 1)[0]
        self.fs.makedirs(directory, exist_ok=True)
        view = memoryview(data)
        chunks = (view[offset:offset + CHUNK_BYTES] for offset in range(0, len(view), CHUNK_BYTES))
        tmp = self._write_tmp(directory, chunks, sha256)  # checked against its name before anything is visible
        try:
            # The sidecar before the data: a data file that exists always has its metadata.
            meta = json.dumps({"content_type": content_type, "name": name, "size": len(view)}).encode()
            self.fs.mv(self._write_tmp(directory, iter([memoryview(meta)]), None), f"{path}.json")
            self.fs.mv(tmp, path)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
        return True

    def put_stream(self, fileobj: BinaryIO, *, content_type: str, name: str) -> tuple[StoredInfo, bool]:
        """Store what ``fileobj`` holds, read ``CHUNK_BYTES`` at a time and hashed on the way (for
        uploads, whose hash is not known in advance); returns what is stored and whether it was new."""
        self.fs.makedirs(self.root, exist_ok=True)

        def chunks() -> Iterator[memoryview]:
            while chunk := fileobj.read(CHUNK_BYTES):
                yield memoryview(chunk)

        digest = hashlib.sha256()
        size = 0

        def hashed() -> Iterator[memoryview]:
            nonlocal size
            for chunk in chunks():
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        tmp = self._write_tmp(self.root, hashed(), None)
        sha256 = digest.hexdigest()
        path = self._path(sha256)
        try:
            if self.fs.exists(path):
                return StoredInfo(sha256, size, content_type, name), False
            directory = path.rsplit("/", 1)[0]
            self.fs.makedirs(directory, exist_ok=True)
            meta = json.dumps({"content_type": content_type, "name": name, "size": size}).encode()
            self.fs.mv(self._write_tmp(directory, iter([memoryview(meta)]), None), f"{path}.json")
            self.fs.mv(tmp, path)
        finally:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
        return StoredInfo(sha256, size, content_type, name), True

    def _write_tmp(self, directory: str, chunks: Iterator[memoryview], sha256: str | None) -> str:
        tmp = f"{directory}/.{uuid.uuid4().hex}.tmp"
        digest = hashlib.sha256()
        try:
            with self.fs.open(tmp, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    fh.write(chunk)
            if sha256 is not None and digest.hexdigest() != sha256:
                raise ValueError("attachment bytes do not match their sha256")
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise
        return tmp

    def info(self, sha256: str) -> StoredInfo | None:
        """What is stored under ``sha256`` (None: unknown or not a hash)."""
        if not is_sha256(sha256):
            return None
        path = self._path(sha256)
        try:
            with self.fs.open(f"{path}.json", "rb") as fh:
                meta: dict[str, Any] = json.loads(fh.read())
            size = int(self.fs.size(path))
        except (FileNotFoundError, ValueError, OSError):
            return None
        return StoredInfo(sha256, size, str(meta.get("content_type") or "application/octet-stream"),
                          str(meta.get("name") or sha256))

    def open(self, sha256: str):
        """The stored file, open for reading (binary)."""
        return self.fs.open(self._path(sha256), "rb")

    def iter_bytes(self, sha256: str) -> Iterator[bytes]:
        """The stored bytes, ``CHUNK_BYTES`` at a time (never the whole file in memory)."""
        with self.fs.open(self._path(sha256), "rb") as fh:
            while chunk := fh.read(CHUNK_BYTES):
                yield chunk
