"""Attachment content through Microsoft Graph: the bytes come from the message's MIME ($value) as
staged, exactly as for EWS (nothing is fetched twice)."""

from __future__ import annotations

from tests.support.attachments import CONTENT_TYPES, MAX_BYTES, attachment_mail

from .conftest import all_comments, graph_config, hexid


def test_graph_mailbox_stores_attachment_content(graph, sync, tmp_path):
    mail = attachment_mail("<graph-att@acme.example>")
    srv = graph(["ap@example.com=generate:0"])
    srv.add_message("ap@example.com", mail.mime, "Inbox")
    options = {"sync": True, "max_bytes": MAX_BYTES, "content_types": CONTENT_TYPES, "include_inline": True}
    data = graph_config(srv, tmp_path, [{"email": "ap@example.com", "attachments": options}], transform_workers=0)
    summary, code = sync(data)
    assert code == 0, summary
    entries = {a.name: a for a in all_comments(data)[hexid("<graph-att@acme.example>")].attachments}
    root = tmp_path / "staging" / "_attachments"
    for name, original in (("invoice 4411.pdf", mail.pdf), ("scan.png", mail.image)):  # inline stored on request
        ref = entries[name].attachment_reference
        assert ref == mail.sha(original) and (root / ref[:2] / ref).read_bytes() == original, name
    assert entries["archive.zip"].attachment_reference is None
