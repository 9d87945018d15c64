"""Fixtures for the source's end-to-end tests: the project's EWS test server over real sockets (HTTPS + NTLM)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from .source_support import CORPUS, IMP_PASSWORD, PASSWORD, connection, make_eml

from exchange_sync.sources.ews import EwsSource

ews_testing = pytest.importorskip("ews_testserver.testing", reason="the EWS test server (ews_testserver) is missing")


@pytest.fixture(scope="session")
def eml_root(tmp_path_factory) -> Path:
    """Inbox: 6 messages (one with LF line ends, one with a binary attachment); Inbox/Suppliers: 3;
    Archive: the real-world corpus when present, else 2 messages."""
    root = tmp_path_factory.mktemp("mail")
    for i in range(6):
        extra = b""
        if i == 4:
            extra = b"\r\n" + bytes(range(256)).hex().encode() + b"\r\n"
        (root / f"m{i}.eml").write_bytes(make_eml(i, crlf=(i != 3), extra=extra))
    sup = root / "Inbox" / "Suppliers"
    sup.mkdir(parents=True)
    for i in range(6, 9):
        (sup / f"m{i}.eml").write_bytes(make_eml(i))
    arch = root / "Archive"
    arch.mkdir()
    corpus_files = sorted(p for p in CORPUS.rglob("*.eml")) if CORPUS.is_dir() else []
    if corpus_files:
        for n, p in enumerate(corpus_files):
            (arch / f"c{n:03d}.eml").write_bytes(p.read_bytes())
    else:
        for i in range(9, 11):
            (arch / f"m{i}.eml").write_bytes(make_eml(i))
    return root


@pytest.fixture(scope="module")
def srv(eml_root) -> Iterator[object]:
    with ews_testing.running_server(
        accounts=[f"svc@example.com:{PASSWORD}", f"imp@example.com:{IMP_PASSWORD}:impersonation"],
        mailboxes=[f"ap@example.com={eml_root}", "other@example.com=generate:12", "mover@example.com=generate:8"],
        grants=["svc@example.com=ap@example.com", "svc@example.com=mover@example.com"],
        tls=True,
    ) as server:
        yield server


@pytest.fixture
def make_source(srv) -> Iterator[Callable[..., EwsSource]]:
    made: list[EwsSource] = []

    def factory(password: str = PASSWORD, *, max_connections: int = 4, fetch_chunk_size: int = 4,
                **kw) -> EwsSource:
        src = EwsSource(connection(srv, **kw), SecretStr(password), max_connections=max_connections,
                        fetch_chunk_size=fetch_chunk_size)
        made.append(src)
        return src

    yield factory
    for s in made:
        s.close()
    srv.clear_faults()
