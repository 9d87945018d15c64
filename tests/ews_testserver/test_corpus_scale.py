"""Real-world mail round-trips byte-identical; a 20,000-message mailbox syncs page by page (the
100,000-entry change log is paged exactly in test_units; bench/ runs the large mailboxes)."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

import pytest
from exchangelib.folders import Messages
from exchangelib.services import SyncFolderItems
from exchangelib.fields import FieldPath

from testserver_core.loaders import looks_like_mail
from ews_testserver.testing import exchangelib_account, running_server

CORPUS = Path(os.environ.get("EXCHANGE_SYNC_CORPUS")
              or Path(__file__).resolve().parents[3] / "shared" / "corpus" / "real-world-emails")


def _corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and looks_like_mail(p))


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"real-world corpus not found at {CORPUS}")
def test_real_world_corpus_round_trips_byte_identical() -> None:
    files = _corpus_files()
    assert files
    expected = Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in files)
    expected_folders = Counter(p.parent.relative_to(CORPUS).as_posix() for p in files)
    with running_server(mailboxes=[f"user@example.com={CORPUS}"]) as srv:
        acc = exchangelib_account(srv, "user@example.com", "secret", "user@example.com")
        got: Counter[str] = Counter()
        per_folder: Counter[str] = Counter()
        prefix = acc.msg_folder_root.absolute + "/"
        for folder in acc.msg_folder_root.walk():
            if not isinstance(folder, Messages) or not folder.total_count:
                continue
            ids = [(i.id, i.changekey) for _c, i in folder.sync_items(only_fields=["message_id"], max_changes_returned=512)]
            assert len(ids) == folder.total_count
            for item in acc.fetch(ids=ids, only_fields=["mime_content", "subject", "datetime_received"], chunk_size=20):
                assert not isinstance(item, Exception), item
                got[hashlib.sha256(item.mime_content).hexdigest()] += 1
                per_folder[folder.absolute[len(prefix):]] += 1
    assert got == expected
    assert per_folder == expected_folders  # sub-folders became folders by path


@pytest.mark.slow
def test_20k_generated_mailbox_syncs_page_by_page() -> None:
    with running_server(mailboxes=["user@example.com=generate:20000"]) as srv:
        counts = {f["path"]: f["count"] for f in srv.mailboxes()[0]["folders"]}
        assert sum(counts.values()) == 20_000
        acc = exchangelib_account(srv, "user@example.com", "secret", "user@example.com")
        folder = acc.inbox
        svc = SyncFolderItems(account=acc)
        fields = {FieldPath(field=folder.get_item_field_by_fieldname(f)) for f in ("message_id", "datetime_received")}
        state, seen, pages = None, set(), 0
        while True:
            changes = list(svc.call(folder=folder, shape="IdOnly", additional_fields=fields, sync_state=state,
                                    ignore=None, max_changes_returned=512, sync_scope=None))
            assert len(changes) <= 512
            seen.update(item.id for _c, item in changes)
            state, pages = svc.sync_state, pages + 1
            if svc.includes_last_item_in_range:
                break
        assert len(seen) == counts["Inbox"]
        assert pages == -(-counts["Inbox"] // 512)
