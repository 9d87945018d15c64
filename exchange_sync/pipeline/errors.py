"""Integration errors as records: which errors a run met, under which kind, and what was done.

The hosted integration records each error with a kind and an action (its public CLI's model,
``reinfer/cli`` ``IntegrationErrorDetails.kind`` / ``ErrorAction.kind``). Kinds here are the hosted
product's names where it has one: ``invalid_exchange_credentials``, ``mailbox_not_found``,
``mailbox_access_denied``, ``comment_quota_hit`` (our failure reasons already use those names). A
failure the hosted product has no kind for keeps our reason code as its kind (``server_unavailable``,
``tls_error``, ``destination_unauthorized``, ``folder_not_found``, ``unexpected_error``, ...).

Actions: ``mailbox_disabled`` (the failure streak reached ``disable_after_failures`` in this run),
``integration_disabled`` (the integration's deployments were paused: bad credentials or the
destination's quota), ``none`` (reported only: skipped this run, or no deployment to pause).

An integration-wide failure is one record without a mailbox, however many mailboxes it stopped.
Prefect-free; the flow calls ``run_errors`` and stores the result (``store.errors``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from exchange_sync.pipeline.mailbox import MailboxReport
from exchange_sync.store.errors import IntegrationError

QUOTA_REASON = "comment_quota_hit"
# Integration-wide reasons that stop the integration (its deployments are paused): every later poll
# would fail the same way (and bad credentials could lock the service account out).
PAUSING_REASONS = ("invalid_exchange_credentials", QUOTA_REASON)
# Skips that are not errors: another writer (the watcher) held the mailbox.
NOT_ERRORS = frozenset({"busy"})
HOSTED_KINDS = frozenset({"invalid_exchange_credentials", "mailbox_not_found", "mailbox_access_denied", QUOTA_REASON})


def destination_reason(error: str | None) -> str | None:
    """The integration-wide reason of a destination's error text (``Type: message``), if it has one."""
    error = error or ""
    if error.startswith("ReinferQuotaError"):
        return QUOTA_REASON
    return None


def pause_reason(credentials_failed: bool, wide_reasons: Iterable[str]) -> str | None:
    """Why the integration must stop now (None: it keeps its schedule)."""
    if credentials_failed:
        return "invalid_exchange_credentials"
    return QUOTA_REASON if QUOTA_REASON in set(wide_reasons) else None


def kind_of(reason: str) -> str:
    return reason  # our reason codes use the hosted kinds' names where one exists (see module docstring)


def run_errors(
    mailboxes: Iterable[MailboxReport],
    *,
    integration_reason: Callable[[MailboxReport], str | None],
    disabled_now: set[str],
    paused: bool,
    at: datetime,
) -> list[IntegrationError]:
    """The errors of a run's mailbox results. ``integration_reason`` tells integration-wide failures
    apart; ``disabled_now``: mailboxes this run disabled; ``paused``: the deployments were paused."""
    errors: list[IntegrationError] = []
    wide_seen: set[str] = set()
    for result in mailboxes:
        if result.status in ("ok", "disabled") or result.reason in NOT_ERRORS:
            continue  # a mailbox disabled earlier was not tried: no new error
        wide = integration_reason(result)
        if wide is not None:
            if wide in wide_seen:
                continue
            wide_seen.add(wide)
            action = "integration_disabled" if paused and wide in PAUSING_REASONS else "none"
            errors.append(IntegrationError(kind=kind_of(wide), mailbox=None, action=action, reason=wide,
                                           message=f"{result.mailbox}: {result.error or wide}", occurred_at=at))
            continue
        reason = result.reason or "unexpected_error"
        action = "mailbox_disabled" if result.mailbox in disabled_now else "none"
        errors.append(IntegrationError(kind=kind_of(reason), mailbox=result.mailbox, action=action, reason=reason,
                                       message=result.error or reason, occurred_at=at))
    return errors
