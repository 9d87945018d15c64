"""The Re:infer destination against our own API over HTTP: same comments and counts as the
embedded store, frozen text, batching, retries (429 storm, 500 mid-batch), bad tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from exchange_sync.comment import Comment
from exchange_sync.destinations.reinfer import ReinferClient
from exchange_sync.destinations.reinfer_http import ReinferAuthError, ReinferError, retry_after_seconds
from exchange_sync.store import SqlStore, SyncCounts
from tests.support.api import ApiUnderTest, running_api
from tests.support.comments import make_comment
from tests.support.faults import FaultInjector, FaultRule

PROJECT, SOURCE = "acme", "emails"
KEY = f"{PROJECT}/{SOURCE}"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqlStore]:
    with SqlStore(f"sqlite:///{tmp_path / 'state' / 'state.db'}") as store:
        yield store


@pytest.fixture
def direct(tmp_path: Path) -> Iterator[SqlStore]:
    with SqlStore(f"sqlite:///{tmp_path / 'direct' / 'comments.db'}") as store:
        yield store


def _remote(api: ApiUnderTest, ledger: SqlStore, **kwargs: object) -> ReinferClient:
    options: dict[str, object] = {"backoff_base": 0.001, "backoff_max": 0.01}
    options.update(kwargs)
    token = options.pop("token", api.token)
    return ReinferClient(api.url, PROJECT, SOURCE, str(token), ledger=ledger, **options)  # type: ignore[arg-type]


def _edit(comment: Comment, **changes: str) -> Comment:
    data = comment.to_api()
    for key, value in changes.items():
        data["messages"][0][key] = {"text": value}
    return Comment.model_validate(data)


def _steps() -> list[list[Comment]]:
    first = [make_comment(i) for i in range(12)]
    return [
        first,
        first,  # replay
        [make_comment(i, folder="Archive") for i in range(4)],  # moves
        # A CC'd copy in another mailbox, received a few seconds later: metadata of the last copy.
        [make_comment(5, mailbox="support@acme.com", timestamp=first[5].timestamp + timedelta(seconds=4))],
        [_edit(first[6], subject="EDITED", body="EDITED"), _edit(make_comment(7, folder="Sent"), body="EDITED")],
        [make_comment(20), make_comment(20, folder="Later"), make_comment(21)],  # duplicate id in a batch
    ]


def _all(store: SqlStore, source: str) -> list[dict]:
    comments, after = store.list_comments(source, limit=1000)
    assert after is None
    return [c.to_api() for c in comments]


def test_same_comments_and_counts_as_the_store(api: ApiUnderTest, ledger: SqlStore, direct: SqlStore) -> None:
    remote = _remote(api, ledger, max_comments=5)
    for step in _steps():
        assert remote.sync(step) == direct.sync_comments(step)
    assert _all(api.store, KEY) == _all(direct, "default")
    stored = api.store.get_comment(make_comment(6).id, source=KEY)
    assert stored is not None and stored.message.subject is not None
    assert stored.message.subject.text == "Invoice 6 overdue"  # frozen


def test_lost_ledger_still_keeps_text_frozen(api: ApiUnderTest, direct: SqlStore, tmp_path: Path) -> None:
    first = [make_comment(i) for i in range(3)]
    with SqlStore(f"sqlite:///{tmp_path / 'a.db'}") as ledger_a:
        assert _remote(api, ledger_a).sync(first) == SyncCounts(new=3)
    edited = [_edit(make_comment(i, folder="Moved"), body="EDITED") for i in range(3)]
    with SqlStore(f"sqlite:///{tmp_path / 'b.db'}") as fresh_ledger:
        counts = _remote(api, fresh_ledger).sync(edited)
    assert counts == SyncCounts(updated=3, updated_properties_only=3)
    for comment in api.store.list_comments(KEY)[0]:
        assert comment.message.body.text.startswith("Please pay invoice")
        assert comment.user_properties["string:Folder"] == "Moved"


def test_ledger_avoids_rereading_known_comments(db_url: str, ledger: SqlStore) -> None:
    faults = FaultInjector.__new__(FaultInjector)

    def wrap(app):  # no faults: only record the requests
        FaultInjector.__init__(faults, app, [])
        return faults

    with running_api(db_url, wrap=wrap) as api:
        remote = _remote(api, ledger, max_comments=4)
        batch = [make_comment(i) for i in range(10)]
        remote.sync(batch)
        gets = [r for r in faults.requests if r[0] == "GET"]
        posts = [r for r in faults.requests if r[0] == "POST"]
        assert len(gets) == 10 and len(posts) == 3  # first sight: one lookup each; 4+4+2
        faults.requests.clear()
        assert remote.sync([make_comment(i, folder="Moved") for i in range(10)]) == SyncCounts(
            updated=10, updated_properties_only=10
        )
        assert [r[0] for r in faults.requests] == ["POST"] * 3  # known ids: no GET at all


def test_byte_budget_splits_batches(db_url: str, ledger: SqlStore) -> None:
    faults = FaultInjector.__new__(FaultInjector)

    def wrap(app):
        FaultInjector.__init__(faults, app, [])
        return faults

    with running_api(db_url, wrap=wrap) as api:
        # Room for two comments per request (the body is {"comments": [...]} as json.dumps writes it).
        one = len(json.dumps(make_comment(1).to_api(), ensure_ascii=False).encode())
        remote = _remote(api, ledger, max_bytes=one * 2 + 30)
        assert remote.sync([make_comment(i) for i in range(6)]) == SyncCounts(new=6)
        assert sum(1 for r in faults.requests if r[0] == "POST") == 3


def test_429_storm_loses_nothing(db_url: str, ledger: SqlStore, direct: SqlStore) -> None:
    rules = [
        FaultRule("POST", "/sync", 429, times=7, retry_after="0"),
        FaultRule("GET", "", 429, times=5, retry_after="0"),
        FaultRule("POST", "/sync", 503, times=2, skip=1),
        FaultRule("POST", "/sync", 409, times=1, skip=2),
    ]
    with running_api(db_url, wrap=lambda app: FaultInjector(app, rules)) as api:
        remote = _remote(api, ledger, max_comments=3, max_attempts=10)
        for step in _steps():
            assert remote.sync(step) == direct.sync_comments(step)
        assert _all(api.store, KEY) == _all(direct, "default")
    assert all(rule.fired == rule.times for rule in rules)


def test_500_after_write_mid_batch_loses_nothing(db_url: str, ledger: SqlStore, direct: SqlStore) -> None:
    # The 2nd POST is applied by the server but answered 500: the retry sees it as unchanged.
    rules = [FaultRule("POST", "/sync", 500, times=1, skip=1, after=True)]
    batch = [make_comment(i) for i in range(20)]
    with running_api(db_url, wrap=lambda app: FaultInjector(app, rules)) as api:
        counts = _remote(api, ledger, max_comments=5).sync(batch)
        direct.sync_comments(batch)
        assert _all(api.store, KEY) == _all(direct, "default")
    assert rules[0].fired == 1
    assert counts == SyncCounts(new=15, unchanged=5)


def test_500_before_write_mid_batch_counts_exactly(db_url: str, ledger: SqlStore) -> None:
    rules = [FaultRule("POST", "/sync", 500, times=3, skip=2)]
    with running_api(db_url, wrap=lambda app: FaultInjector(app, rules)) as api:
        counts = _remote(api, ledger, max_comments=5).sync([make_comment(i) for i in range(20)])
        assert counts == SyncCounts(new=20)
        assert api.store.count_comments(KEY) == 20


def test_retries_give_up_with_a_clear_error(db_url: str, ledger: SqlStore) -> None:
    rules = [FaultRule("POST", "/sync", 503, times=100)]
    with running_api(db_url, wrap=lambda app: FaultInjector(app, rules)) as api:
        with pytest.raises(ReinferError, match="still failing after 3 attempts: HTTP 503"):
            _remote(api, ledger, max_attempts=3).sync([make_comment(1)])
        assert ledger.ledger_get(f"reinfer:{api.url}/{KEY}", [make_comment(1).id]) == {}


def test_wrong_token_is_a_clear_error_and_writes_nothing(api: ApiUnderTest, ledger: SqlStore) -> None:
    wrong = "definitely-not-the-token"
    remote = _remote(api, ledger, token=wrong)
    with pytest.raises(ReinferAuthError) as raised:
        remote.sync([make_comment(i) for i in range(5)])
    message = str(raised.value)
    assert "rejected the API token" in message and "HTTP 401" in message
    assert wrong not in message and wrong not in repr(remote)
    assert api.store.count_comments(KEY) == 0
    assert ledger.ledger_get(remote.ledger_key, [make_comment(i).id for i in range(5)]) == {}
    # Known ids skip the GET, so the POST must fail the same way.
    good = _remote(api, ledger)
    good.sync([make_comment(1)])
    with pytest.raises(ReinferAuthError):
        _remote(api, ledger, token=wrong).sync([make_comment(1, folder="X")])
    assert api.store.get_comment(make_comment(1).id, source=KEY) == make_comment(1)


def test_replace_policy_passes_text_through(api: ApiUnderTest, ledger: SqlStore) -> None:
    remote = _remote(api, ledger)
    remote.sync([make_comment(1)])
    counts = remote.sync([_edit(make_comment(1), body="new")], freeze_text=False)
    assert counts == SyncCounts(updated=1, updated_text_changed=1)
    assert counts.units == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [("0", 0.0), ("2.5", 2.5), ("-3", 0.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    assert retry_after_seconds(header) == expected
