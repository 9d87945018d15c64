"""The whole pipeline against each Exchange version the product supports: the test server validates
every request against that version's schema (as real Exchange does) and, in the test suite, every
response too (tests/conftest.py fails a test on any violation).

A run and a backfill through the real flow and a real Prefect API; the move/edit run and the no-change
poll through the same pipeline without Prefect (``run_plain``: same pipeline and requests, no flow-run overhead)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ews_testserver.testing import date_n, make_mime

from tests.support.performance import run_plain

from .conftest import all_comments, make_config

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

# Exchange2016 is the test server's default: every other pipeline test runs against it. Exchange2019
# has the 2016 schema and differs in its build only, which tests/source/test_server_versions.py covers.
PROFILES = ["Exchange2010_SP2", "Exchange2013", "Online"]


@pytest.mark.parametrize("profile", PROFILES)
def test_run_move_edit_poll_and_backfill(ews, sync, tmp_path, profile):
    srv = ews(["ap@example.com=generate:10", "cc@example.com=generate:4"], exchange_version=profile)
    for n in range(3):
        srv.add_message("ap@example.com", make_mime(f"profile {n}", f"<profile-{n}@x>", date=date_n(n)))
    data = make_config(srv, tmp_path, ["ap@example.com", "cc@example.com"])  # no exchange_version: probed
    first, code = sync(data)
    assert code == 0 and all(m["status"] == "ok" for m in first["mailboxes"]), first
    comments = all_comments(data)
    moved_id, edited_id = "<profile-0@x>".encode().hex(), "<profile-1@x>".encode().hex()
    assert {moved_id, edited_id} <= set(comments)

    srv.move("ap@example.com", "<profile-0@x>", "Archive")
    srv.edit("ap@example.com", "<profile-1@x>", subject="edited subject", body="edited body")
    second = run_plain(data)
    assert all(r.status == "ok" for r in second), [r.error for r in second]
    after = all_comments(data)
    assert set(after) == set(comments)  # nothing new, nothing lost
    assert after[moved_id].user_properties["string:Folder"] == "Archive"
    assert after[edited_id].to_api()["messages"][0]["subject"]["text"] == "profile 1"  # text frozen

    seq = srv.last_seq()
    third = run_plain(data)
    assert all(r.status == "ok" and r.counts.new == 0 for r in third)
    assert {e["operation"] for e in srv.log(seq)} == {"SyncFolderItems"}

    seq = srv.last_seq()
    start, end = datetime(2024, 3, 1, tzinfo=timezone.utc), datetime(2024, 3, 1, 0, 5, tzinfo=timezone.utc)
    backfill, code = sync(data, mode="backfill", start=start, end=end, mailboxes=["ap@example.com"])
    assert code == 0 and backfill["items"] == 3, backfill  # the three messages received 2024-03-01 00:00-00:02
    assert backfill["totals"]["new"] == 0
    assert set(all_comments(data)) == set(comments)
    assert not any(e["write"] for e in srv.log(seq)) and not any(e.get("response_code", "NoError") not in
                                                                ("NoError", None) for e in srv.log(seq))
