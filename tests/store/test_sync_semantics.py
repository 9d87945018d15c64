"""Sync semantics of the store: every count category, both text policies, duplicates, replays."""

from __future__ import annotations

from datetime import timedelta

from exchange_sync.comment import Comment
from exchange_sync.store import SqlStore, SyncCounts
from tests.support.comments import comment_id, make_comment


def _edited(comment: Comment, **changes: object) -> Comment:
    data = comment.to_api()
    for key, value in changes.items():
        if key in ("subject", "body", "signature"):
            data["messages"][0][key] = {"text": value}
        elif key in ("to", "cc", "language"):
            data["messages"][0][key] = value
        elif key.startswith("prop:"):
            data["user_properties"][key[5:]] = value
        else:
            data[key] = value
    return Comment.model_validate(data)


def test_new_then_replay_is_unchanged_and_free(store: SqlStore) -> None:
    batch = [make_comment(i) for i in range(5)]
    first = store.sync_comments(batch)
    assert first == SyncCounts(new=5)
    assert first.units == 5
    again = store.sync_comments(batch)
    assert again == SyncCounts(unchanged=5)
    assert again.units == 0
    assert store.count_comments() == 5
    assert store.get_comment(comment_id(3)) == batch[3]


def test_replace_policy_text_change_is_billed_and_replaces_text(store: SqlStore) -> None:
    original = make_comment(1)
    store.sync_comments([original], freeze_text=False)
    edited = _edited(original, subject="Invoice 1 PAID", **{"prop:string:Folder": "Archive"})
    counts = store.sync_comments([edited], freeze_text=False)
    assert counts == SyncCounts(updated=1, updated_text_changed=1)
    assert counts.units == 1
    stored = store.get_comment(original.id)
    assert stored is not None
    assert stored.message.subject is not None and stored.message.subject.text == "Invoice 1 PAID"
    assert stored.user_properties["string:Folder"] == "Archive"


def test_replace_policy_properties_only(store: SqlStore) -> None:
    original = make_comment(1)
    store.sync_comments([original], freeze_text=False)
    moved = _edited(original, **{"prop:string:Folder": "Inbox/Suppliers"})
    counts = store.sync_comments([moved], freeze_text=False)
    assert counts == SyncCounts(updated=1, updated_properties_only=1)
    assert counts.units == 0
    assert store.get_comment(original.id) == moved


def test_signature_change_is_a_text_change(store: SqlStore) -> None:
    original = make_comment(1)
    store.sync_comments([original], freeze_text=False)
    counts = store.sync_comments([_edited(original, signature="Ann S.")], freeze_text=False)
    assert counts.updated_text_changed == 1


def test_freeze_policy_keeps_text_and_takes_metadata(store: SqlStore) -> None:
    original = make_comment(1, attachments=[])
    store.sync_comments([original])
    later = original.timestamp + timedelta(seconds=7)
    edited = _edited(
        original,
        subject="EDITED subject",
        body="EDITED body",
        signature="EDITED sig",
        language="de",
        to=["someone@else.com"],
        thread_id="abcd",
        timestamp=later.isoformat(),
        attachments=[{"name": "a.pdf", "size": 3, "content_type": "application/pdf"}],
        **{"prop:string:Folder": "Inbox/Suppliers", "prop:number:Attachments": 1},
    )
    counts = store.sync_comments([edited], freeze_text=True)
    assert counts == SyncCounts(updated=1, updated_properties_only=1)
    assert counts.units == 0
    stored = store.get_comment(original.id)
    assert stored is not None
    # Frozen: subject, body, signature, language and timestamp of the first sync.
    assert stored.message.subject == original.message.subject
    assert stored.message.body == original.message.body
    assert stored.message.signature == original.message.signature
    assert stored.message.language == "en"
    assert stored.timestamp == original.timestamp
    # Metadata: from the copy synced last.
    assert stored.message.to == ["someone@else.com"]
    assert stored.thread_id == "abcd"
    assert stored.user_properties["string:Folder"] == "Inbox/Suppliers"
    assert stored.user_properties["number:Attachments"] == 1
    assert [a.name for a in stored.attachments] == ["a.pdf"]


def test_freeze_policy_text_only_edit_is_unchanged(store: SqlStore) -> None:
    original = make_comment(1)
    store.sync_comments([original])
    counts = store.sync_comments([_edited(original, subject="edited", body="edited")])
    assert counts == SyncCounts(unchanged=1)
    assert store.get_comment(original.id) == original


def test_freeze_then_replace_on_same_store(store: SqlStore) -> None:
    """One store, two policies: the public endpoint may still replace frozen text."""
    original = make_comment(1)
    store.sync_comments([original])
    edited = _edited(original, body="new body")
    assert store.sync_comments([edited], freeze_text=True) == SyncCounts(unchanged=1)
    assert store.sync_comments([edited], freeze_text=False) == SyncCounts(updated=1, updated_text_changed=1)
    assert store.get_comment(original.id) == edited


def test_all_categories_in_one_batch(store: SqlStore) -> None:
    a, b, c = make_comment(1), make_comment(2), make_comment(3)
    store.sync_comments([a, b, c], freeze_text=False)
    batch = [
        a,  # unchanged
        _edited(b, **{"prop:string:Folder": "Archive"}),  # properties only
        _edited(c, body="changed"),  # text changed
        make_comment(4),  # new
    ]
    counts = store.sync_comments(batch, freeze_text=False)
    assert counts == SyncCounts(new=1, updated=2, updated_properties_only=1, updated_text_changed=1, unchanged=1)
    assert counts.units == 2


def test_duplicate_ids_in_a_batch_last_wins_counted_once(store: SqlStore) -> None:
    first = make_comment(1, folder="Inbox")
    last = make_comment(1, folder="Archive")
    counts = store.sync_comments([first, make_comment(2), last])
    assert counts == SyncCounts(new=2)
    stored = store.get_comment(first.id)
    assert stored is not None and stored.user_properties["string:Folder"] == "Archive"
    # Existing id twice: one outcome, computed against the last occurrence.
    counts = store.sync_comments([make_comment(1, folder="X"), make_comment(1, folder="Archive")])
    assert counts == SyncCounts(unchanged=1)


def test_cc_copy_in_two_mailboxes_is_one_comment_billed_once_last_metadata_wins(store: SqlStore) -> None:
    in_ap = make_comment(7, mailbox="ap@acme.com", folder="Inbox")
    in_support = make_comment(7, mailbox="support@acme.com", folder="Inbox/Escalations")
    total = store.sync_comments([in_ap]) + store.sync_comments([in_support])
    assert total == SyncCounts(new=1, updated=1, updated_properties_only=1)
    assert total.units == 1
    stored = store.get_comment(in_ap.id)
    assert stored is not None
    assert stored.user_properties["string:Mailbox"] == "support@acme.com"
    assert store.count_comments(mailbox="support@acme.com") == 1
    assert store.count_comments(mailbox="ap@acme.com") == 0


def test_sources_are_separate(store: SqlStore) -> None:
    comment = make_comment(1)
    assert store.sync_comments([comment], source="p/a") == SyncCounts(new=1)
    assert store.sync_comments([comment], source="p/b") == SyncCounts(new=1)
    assert store.get_comment(comment.id, source="default") is None
    assert store.list_sources() == ["p/a", "p/b"]


def test_whole_float_property_equals_int_after_round_trip(store: SqlStore) -> None:
    comment = make_comment(1, extra_properties={"number:Score": 2.0})
    store.sync_comments([comment])
    assert store.sync_comments([make_comment(1, extra_properties={"number:Score": 2})]) == SyncCounts(unchanged=1)
    assert store.sync_comments([make_comment(1, extra_properties={"number:Score": 2.5})]).updated_properties_only == 1


def test_counts_add_and_units() -> None:
    total = sum([SyncCounts(new=1, unchanged=2), SyncCounts(updated=1, updated_text_changed=1)], SyncCounts())
    assert total == SyncCounts(new=1, updated=1, updated_text_changed=1, unchanged=2)
    assert total.units == 2
    assert sum([SyncCounts(new=3)]) == SyncCounts(new=3)


def test_api_form_comments_load_like_models(store: SqlStore) -> None:
    # The pipeline loads the transform's staged API JSON without re-validating it; a batch in that
    # form must count and store exactly as the same batch of models (duplicates: the last wins).
    batch = [make_comment(i) for i in range(4)]
    api = [c.to_api() for c in batch] + [_edited(batch[1], **{"prop:string:Folder": "Later"}).to_api()]
    assert store.sync_comments(api, freeze_text=False) == SyncCounts(new=4)
    assert store.get_comment(batch[0].id) == batch[0]
    assert store.get_comment(batch[1].id).user_properties["string:Folder"] == "Later"
    assert store.sync_comments(batch[2:]) == SyncCounts(unchanged=2)
