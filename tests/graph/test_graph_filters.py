"""Participant and domain filters over Microsoft Graph through the real flow against the Graph test
server: the delta pages $select the participants (only for a filtered mailbox), filtered mail gets no
``$value`` request and never reaches staging; a delta round started before the filter existed reads
the participants with one ``$batch`` instead."""

from __future__ import annotations

from tests.pipeline.test_participant_filters import FILTERS, MAILBOX, MESSAGES, hexid, mime, staged_message_ids

from .conftest import all_comments, graph_config


def start(graph):
    srv = graph([f"{MAILBOX}="])
    for n, (msgid, sender, cc, _) in enumerate(MESSAGES):
        srv.add_message(MAILBOX, mime(msgid, sender, cc, n), "Inbox")
    return srv


def values(entries) -> list[dict]:
    return [e for e in entries if str(e.get("target", "")).split("?")[0].endswith("/$value")]


def test_graph_filters_select_participants_and_fetch_only_kept_mail(graph, sync, tmp_path):
    srv = start(graph)
    data = graph_config(srv, tmp_path, [{"email": MAILBOX, **FILTERS}],
                        staging={"url": str(tmp_path / "staging"), "keep_days": None})
    mark = srv.last_seq()
    summary, code = sync(data)
    assert code == 0, summary
    assert set(all_comments(data)) == {hexid(m) for m, _, _, keep in MESSAGES if keep}
    assert summary["mailboxes"][0]["filtered"] == 4 and summary["totals"]["units"] == 3
    log = srv.log(mark)
    deltas = [e for e in log if e["operation"] == "messages.delta"]
    assert deltas and "toRecipients" in deltas[0]["target"]
    assert len(values(log)) == 3
    assert not [e for e in log if "$select=from" in str(e.get("target", ""))]  # no separate participants call
    assert staged_message_ids(tmp_path / "staging") == {m for m, _, _, keep in MESSAGES if keep}


def test_graph_unfiltered_mailbox_does_not_select_participants(graph, sync, tmp_path):
    srv = start(graph)
    data = graph_config(srv, tmp_path, [MAILBOX])
    mark = srv.last_seq()
    summary, code = sync(data)
    assert code == 0 and summary["mailboxes"][0]["filtered"] == 0
    deltas = [e for e in srv.log(mark) if e["operation"] == "messages.delta"]
    assert deltas and not any("toRecipients" in e["target"] for e in deltas)


def test_graph_filter_added_later_and_backfill(graph, sync, tmp_path):
    srv = start(graph)
    data = graph_config(srv, tmp_path, [MAILBOX])
    summary, code = sync(data)
    assert code == 0 and len(all_comments(data)) == len(MESSAGES)
    # The filter is configured now: the stored delta link has no participants in its $select.
    data["mailboxes"][0].update(FILTERS)
    srv.add_message(MAILBOX, mime("<g1@x>", "Zed <zed@elsewhere.org>", None, 30), "Inbox")
    srv.add_message(MAILBOX, mime("<g2@x>", "Amy <amy@sales.partner.com>", None, 31), "Inbox")
    mark = srv.last_seq()
    summary, code = sync(data)
    assert code == 0, summary
    assert summary["mailboxes"][0]["filtered"] == 1 and summary["mailboxes"][0]["items"] == 1
    log = srv.log(mark)
    assert len(values(log)) == 1
    assert len([e for e in log if "$select=from" in str(e.get("target", ""))]) == 2
    comments = all_comments(data)
    assert hexid("<g2@x>") in comments and hexid("<g1@x>") not in comments
    # A backfill applies the current filters (and bills nothing for comments already held).
    summary, code = sync(data, mode="backfill")
    assert code == 0, summary
    assert summary["mailboxes"][0]["filtered"] == 5 and summary["totals"]["units"] == 0
