"""SyncFolderItems of the next page is asked for while the current page is fetched: same pages,
no extra request, and a failed look-ahead is simply asked again in order."""

from __future__ import annotations

from collections import Counter


def _pages(session, folder, page_size: int):
    return [(tuple(r.item_id for r in p.changes), p.sync_state, p.last_page)
            for p in session.sync_pages(folder, None, page_size=page_size)]


def test_look_ahead_gives_the_same_pages_with_no_extra_request(srv, make_source):
    src = make_source()
    session = src.open_mailbox("ap@example.com")
    inbox = next(f for f in session.mail_folders() if f.path == "Inbox")
    seq = srv.last_seq()
    pages = _pages(session, inbox, 2)
    ops = Counter(e["operation"] for e in srv.log(seq))
    assert len(pages) >= 3 and pages[-1][2]
    assert ops["SyncFolderItems"] == len(pages)  # every look-ahead answer was used
    assert not src._ahead  # nothing left over

    # A fresh source without look-ahead state gives identical pages and states.
    again = make_source().open_mailbox("ap@example.com")
    assert _pages(again, inbox, 2) == pages


def test_one_page_per_call_uses_the_look_ahead_of_the_call_before(srv, make_source):
    """The pipeline takes one page per extract step from a new generator: the second step must be
    answered by the look-ahead the first one started."""
    src = make_source()
    inbox = next(f for f in src.open_mailbox("ap@example.com").mail_folders() if f.path == "Inbox")
    first = next(iter(src.open_mailbox("ap@example.com").sync_pages(inbox, None, page_size=2)))
    assert not first.last_page
    key = ("ap@example.com", inbox.folder_id, first.sync_state, 2)
    assert key in src._ahead
    src._ahead[key].result()  # answered in the background
    seq = srv.last_seq()
    second = next(iter(src.open_mailbox("ap@example.com").sync_pages(inbox, first.sync_state, page_size=2)))
    assert second.changes and second.sync_state != first.sync_state
    # The second step starts the look-ahead for the third page; wait for it, then the only
    # SyncFolderItems since is that one: the second page had no request of its own.
    third = src._ahead.get(("ap@example.com", inbox.folder_id, second.sync_state, 2))
    assert (third is None) == second.last_page
    if third is not None:
        third.result()
    asked = [e for e in srv.log(seq) if e["operation"] == "SyncFolderItems"]
    assert len(asked) == (0 if second.last_page else 1)


def test_a_failed_look_ahead_is_asked_again(srv, make_source):
    src = make_source(max_backoff_s=1, retry_attempts=1)
    session = src.open_mailbox("ap@example.com")
    inbox = next(f for f in session.mail_folders() if f.path == "Inbox")
    clean = _pages(make_source().open_mailbox("ap@example.com"), inbox, 2)
    first = next(iter(session.sync_pages(inbox, None, page_size=2)))
    key = ("ap@example.com", inbox.folder_id, first.sync_state, 2)
    future = src._ahead.pop(key)
    future.result()
    from concurrent.futures import Future

    failed: Future = Future()
    failed.set_exception(RuntimeError("look-ahead failed"))
    src._ahead[key] = failed
    rest = [(tuple(r.item_id for r in p.changes), p.sync_state, p.last_page)
            for p in session.sync_pages(inbox, first.sync_state, page_size=2)]
    assert [(tuple(r.item_id for r in first.changes), first.sync_state, first.last_page), *rest] == clean
