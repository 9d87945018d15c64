"""Helpers shared by the source's end-to-end tests (imported by name: tests have no packages)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

from exchange_sync.config import EwsConnection, TlsConfig

PASSWORD = "Sv3-s3cret!pw"
IMP_PASSWORD = "1mp-s3cret!pw"
CORPUS = Path(os.environ.get("EXCHANGE_SYNC_CORPUS") or Path(__file__).resolve().parents[3] / "shared" / "corpus"
              / "real-world-emails")
BASE = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)


def make_eml(i: int, *, crlf: bool = True, extra: bytes = b"") -> bytes:
    nl = b"\r\n" if crlf else b"\n"
    date = format_datetime(BASE + timedelta(hours=i)).encode()
    lines = [
        b"From: Ann Example <ann@acme.example>",
        b"To: ap@example.com",
        f"Subject: Invoice {4400 + i} =?utf-8?q?f=C3=A4llig?=".encode(),
        b"Date: " + date,
        f"Message-ID: <inv-{i}@acme.example>".encode(),
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        f"Hello, invoice {4400 + i} is overdue. Gr\u00fc\u00dfe".encode(),
    ]
    return nl.join(lines) + nl + extra


def files_by_folder(root: Path) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for p in sorted(root.rglob("*.eml")):
        rel = p.parent.relative_to(root).as_posix()
        out.setdefault("Inbox" if rel == "." else rel, []).append(p.read_bytes())
    return out


def connection(srv, *, username: str | None = "svc@example.com", access_type="delegate", auth="ntlm",
               tls: TlsConfig | None = None,
               **kw) -> EwsConnection:
    return EwsConnection(
        server_url=srv.url,
        auth=auth,
        username=username,
        password={"env": "EXCHANGE_SYNC_TEST_UNUSED"},
        access_type=access_type,
        exchange_version=kw.pop("exchange_version", "Exchange2016"),
        tls=tls if tls is not None else TlsConfig(ca_bundle=srv.ca_file),
        **{"max_backoff_s": 5.0, "retry_attempts": 4, "timeout_s": 20.0, **kw},
    )


