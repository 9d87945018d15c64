"""Every message of the real-world corpus becomes a comment or a counted rejection with a reason."""

from __future__ import annotations

from collections import Counter

from exchange_sync.comment import Comment
from exchange_sync.transform import Rejection, email_to_comment


def test_every_corpus_message_becomes_a_comment_or_a_reasoned_rejection(corpus):
    comments = 0
    reasons: Counter[str] = Counter()
    for path in corpus:
        outcome = email_to_comment(path.read_bytes())
        if isinstance(outcome, Rejection):
            assert outcome.reason, path
            reasons[outcome.reason] += 1
        else:
            assert isinstance(outcome, Comment), path
            # The API form must serialise and re-validate.
            assert Comment.model_validate(outcome.to_api()) == outcome
            comments += 1
    assert comments + sum(reasons.values()) == len(corpus)
    assert comments >= 100, (comments, reasons)
    # The only rejection expected is the empty file of the corpus.
    assert set(reasons) <= {"empty MIME content"}, reasons


def test_corpus_charsets_are_decoded(corpus):
    by_name = {p.name: p for p in corpus}
    texts = {
        "japanese_shift_jis.eml": "あいうえお",
        "ks_c_5601-1987.eml": "스티해",
        "japanese_iso_2022.eml": "すみません",
        "raw_email10.eml": None,  # signature holds the French line
    }
    for name, expected in texts.items():
        comment = email_to_comment(by_name[name].read_bytes())
        assert isinstance(comment, Comment)
        full = comment.message.body.text + (comment.message.signature.text if comment.message.signature else "")
        assert "\ufffd" not in full, name
        if expected:
            assert expected in full, name
    bell = email_to_comment(by_name["raw_email10.eml"].read_bytes())
    assert "Envoyé par le service" in bell.message.signature.text


def test_corpus_bounces_are_flagged(corpus):
    by_name = {p.name: p for p in corpus}
    for name in ("multi_address_bounce1.eml", "report_530.eml", "multipart_report_multiple_status.eml"):
        comment = email_to_comment(by_name[name].read_bytes())
        assert comment.user_properties.get("string:Bounce") == "true", name


def test_corpus_encoded_subjects_and_obsolete_syntax(corpus):
    by_name = {p.name: p for p in corpus}
    partially = email_to_comment(by_name["raw_email_with_partially_quoted_subject.eml"].read_bytes())
    assert partially.message.subject.text == 'Re: Test: "漢字" mid "漢字" tail'
    obsolete = email_to_comment(by_name["example13.eml"].read_bytes())
    assert obsolete.message.from_ == "John Doe (comment) <jdoe@machine.example>"
    assert "say hello" in obsolete.message.body.text
