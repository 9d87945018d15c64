"""Which record a mailbox result becomes (pipeline.outcome, pure): the hosted kinds, one record per
integration-wide failure, and each action (mailbox_disabled, integration_disabled, none)."""

from __future__ import annotations

from datetime import datetime, timezone

from exchange_sync.pipeline.outcome import pause_reason, run_errors
from exchange_sync.pipeline.mailbox import MailboxReport

AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)


def test_kinds_and_actions():
    results = [
        MailboxReport("ok@acme.com"),
        MailboxReport("gone@acme.com", status="skipped", reason="mailbox_not_found", error="not found"),
        MailboxReport("denied@acme.com", status="skipped", reason="mailbox_access_denied", error="denied"),
        MailboxReport("old@acme.com", status="disabled", reason="disabled"),
        MailboxReport("busy@acme.com", status="skipped", reason="busy"),
        MailboxReport("a@acme.com", status="failed", reason="comment_quota_hit", error="ReinferQuotaError: quota"),
        MailboxReport("b@acme.com", status="failed", reason="comment_quota_hit", error="ReinferQuotaError: quota"),
    ]
    errors = run_errors(results, disabled_now={"denied@acme.com"}, paused=True, at=AT)
    assert [(e.kind, e.mailbox, e.action) for e in errors] == [
        ("mailbox_not_found", "gone@acme.com", "none"),
        ("mailbox_access_denied", "denied@acme.com", "mailbox_disabled"),
        ("comment_quota_hit", None, "integration_disabled"),  # one record for the integration
    ]
    unpaused = run_errors(results[-1:], disabled_now=set(), paused=False, at=AT)
    assert [e.action for e in unpaused] == ["none"]  # no deployment was paused (a CLI run)
    assert pause_reason(True, []) == "invalid_exchange_credentials"
    assert pause_reason(False, ["comment_quota_hit"]) == "comment_quota_hit"
    assert pause_reason(False, ["server_unavailable"]) is None
