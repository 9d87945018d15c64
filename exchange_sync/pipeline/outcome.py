"""What a run's outcome means for the integration: the policy after the mailboxes ran (Prefect-free).

The flow (``flows.sync_integration``) only orchestrates: it runs the mailboxes as tasks, hands each
result here (``RunOutcome.add``) and acts on what this module decides:

- **integration-wide failures** (``INTEGRATION_WIDE_REASONS``: server unreachable, TLS, credentials, a
  secret or the state database missing, the destination refusing its token or down, the destination's
  quota) never count toward disabling a mailbox; the run fails with the reason, at integration level
  (``IntegrationFailed``). A failure is integration-wide by its reason code, or by the *type* of the
  exception behind it (``failure_reason``: the exception's ``reason`` attribute, else its class by
  ``isinstance``), never by the text of its class name;
- **failure streaks**: every other failure of a mailbox that was tried feeds its streak
  (``store.state.record_mailbox_outcome``); at ``disable_after_failures`` same-reason failures the
  mailbox is disabled (``RunOutcome.record_streaks``). A mailbox skipped as ``busy`` (another writer
  held it) or already disabled was not tried: never counted;
- **pausing**: bad Exchange credentials or the destination's quota stop the integration (its
  deployments are paused by the flow, ``RunOutcome.pause_reason``): every later poll would fail the
  same way, and bad credentials could lock the service account out;
- **errors as records** (``run_errors``): which errors a run met, under which kind, and what was done;
  listed by ``exchange-sync errors``, the latest shown by the flow as a table artifact;
- housekeeping after the run: the filtered counts for ``exchange-sync usage`` and pruning staging.

Kinds of error records are the hosted product's names where it has one (its public CLI's model,
``reinfer/cli`` ``IntegrationErrorDetails.kind`` / ``ErrorAction.kind``): ``invalid_exchange_credentials``,
``mailbox_not_found``, ``mailbox_access_denied``, ``comment_quota_hit`` (our reason codes already use
those names). A failure the hosted product has no kind for keeps our reason code as its kind
(``server_unavailable``, ``tls_error``, ``destination_unauthorized``, ``unexpected_error``, ...). Actions:
``mailbox_disabled`` (the streak reached the threshold in this run), ``integration_disabled`` (the
integration's deployments were paused), ``none`` (reported only). An integration-wide failure is one
record without a mailbox, however many mailboxes it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from exchange_sync.store.state import INTEGRATION_WIDE_REASONS

if TYPE_CHECKING:
    from exchange_sync.config import IntegrationConfig
    from exchange_sync.pipeline.mailbox import MailboxReport
    from exchange_sync.pipeline.report import RunReport
    from exchange_sync.store import StateStore
    from exchange_sync.store.database import Database
    from exchange_sync.store.errors import IntegrationError

log = logging.getLogger("exchange_sync.pipeline")

CREDENTIALS_REASON = "invalid_exchange_credentials"
QUOTA_REASON = "comment_quota_hit"
SERVER_LIMIT_MISSING = "server_limit_missing"
# Failures about the whole integration (every mailbox would fail the same way): never a mailbox's.
WIDE_REASONS = INTEGRATION_WIDE_REASONS | {QUOTA_REASON}
# Integration-wide reasons that stop the integration (its deployments are paused).
PAUSING_REASONS = (CREDENTIALS_REASON, QUOTA_REASON)
# Skips that are not errors: another writer (the watcher) held the mailbox.
NOT_ERRORS = frozenset({"busy"})
HOSTED_KINDS = frozenset({CREDENTIALS_REASON, "mailbox_not_found", "mailbox_access_denied", QUOTA_REASON})


class RunFailed(RuntimeError):
    """The run failed; the message starts with the reason(s)."""


class IntegrationFailed(RunFailed):
    """The integration as a whole could not run (``reason`` in ``INTEGRATION_WIDE_REASONS``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class CredentialsError(RuntimeError):
    """``invalid_exchange_credentials``: the whole integration stops, whatever the mailbox."""

    reason = CREDENTIALS_REASON


def failure_reason(exc: BaseException) -> str | None:
    """The integration-wide reason of an exception, if it is one: its ``reason`` attribute (sources,
    destinations and secret references give their errors one) when that is integration-wide.
    ``None``: a failure of the mailbox it happened in."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) and reason in WIDE_REASONS else None


def integration_reason(result: MailboxReport) -> str | None:
    """The integration-wide reason of a mailbox's failure, if it is one: its reason, or the reason of the
    exception behind an ``unexpected_error`` (``MailboxReport.cause_reason``, see ``failure_reason``)."""
    if result.status != "failed":
        return None
    if result.reason in WIDE_REASONS:
        return result.reason
    return result.cause_reason


def pause_reason(credentials_failed: bool, wide_reasons: Iterable[str]) -> str | None:
    """Why the integration must stop now (None: it keeps its schedule)."""
    if credentials_failed:
        return CREDENTIALS_REASON
    return QUOTA_REASON if QUOTA_REASON in set(wide_reasons) else None


def watch_pause_reason(error: str | None) -> str | None:
    """Why a watch that stopped with ``error`` (``<reason>: <message>``) must pause its integration:
    bad credentials, as for polls (every restart would fail the same way). None: it is restarted."""
    reason = (error or "").split(":", 1)[0]
    return reason if reason == CREDENTIALS_REASON else None


def kind_of(reason: str) -> str:
    return reason  # our reason codes use the hosted kinds' names where one exists (see module docstring)


def run_errors(
    mailboxes: Iterable[MailboxReport],
    *,
    disabled_now: set[str],
    paused: bool,
    at: datetime,
) -> list[IntegrationError]:
    """The errors of a run's mailbox results (integration-wide failures by ``integration_reason``, one record
    each); ``disabled_now``: mailboxes this run disabled; ``paused``: the deployments were paused."""
    from exchange_sync.store.errors import IntegrationError

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


@dataclass
class RunOutcome:
    """One run's mailbox results and what follows from them (the policy of the module docstring)."""

    config: IntegrationConfig
    report: RunReport
    credentials_error: BaseException | None = None
    paused: list[str] = field(default_factory=list)

    def add(self, result: MailboxReport) -> None:
        self.report.mailboxes.append(result)

    def add_exception(self, mailbox: str, exc: BaseException) -> MailboxReport:
        """A mailbox whose task raised (rather than reported): bad credentials stop the integration;
        anything else is the mailbox's failure unless its type says it is integration-wide."""
        from exchange_sync.sources import InvalidCredentials

        if isinstance(exc, InvalidCredentials):
            self.credentials_error = exc
            result = _failed(mailbox, exc.reason, str(exc))
        else:
            result = _failed(mailbox, "unexpected_error", f"{type(exc).__name__}: {exc}")
            result.cause_reason = failure_reason(exc)
        self.add(result)
        return result

    @property
    def wide_reasons(self) -> list[str]:
        return sorted({r for r in map(integration_reason, self.report.failed) if r is not None})

    @property
    def failed(self) -> bool:
        return self.credentials_error is not None or bool(self.report.failed)

    @property
    def status(self) -> str:
        """The run's status in the state database."""
        return "failed" if self.failed else "completed"

    def record_streaks(self, state: StateStore) -> list[str]:
        """Feed each tried mailbox's outcome into its failure streak; disable at the threshold. Returns
        the mailboxes disabled now (each with a note to the operator)."""
        config, disabled = self.config, []
        for result in self.report.mailboxes:
            if result.status == "disabled" or result.reason in NOT_ERRORS or integration_reason(result):
                continue  # not tried (disabled, or another writer syncing it) / integration-wide: never counted
            failure = None if result.status == "ok" else (result.reason or "unexpected_error")
            health = state.record_mailbox_outcome(config.name, result.mailbox, failure, config.disable_after_failures)
            if health.disabled:
                disabled.append(result.mailbox)
                self.report.notes.append(
                    f"mailbox {result.mailbox} disabled: {health.disabled_reason} "
                    f"(re-enable with `exchange-sync enable {config.name} --mailbox {result.mailbox}`)")
                state.set_mailbox_status(config.name, result.mailbox, "disabled", reason=health.disabled_reason,
                                         error_count_delta=0)
        if self.wide_reasons:
            self.report.notes.append(f"integration-wide failure ({', '.join(self.wide_reasons)}): no mailbox's "
                                     "failure streak was counted; the next run after the cause is fixed syncs "
                                     "everything")
        return disabled

    def pause_reason(self) -> str | None:
        """Why the integration's deployments must be paused now (None: they keep their schedule)."""
        return pause_reason(self.credentials_error is not None, self.wide_reasons)

    def note_paused(self, reason: str, paused: list[str]) -> None:
        self.paused = list(paused)
        if paused:
            fix = "fix the credentials" if reason == CREDENTIALS_REASON else "raise the destination's quota"
            self.report.notes.append(f"{reason}: deployments {', '.join(paused)} paused; {fix}, "
                                     f"then `exchange-sync start {self.config.name}`")

    def record_errors(self, state: StateStore, run_id: int, disabled_before: Iterable[str],
                      logger: logging.Logger | logging.LoggerAdapter = log) -> list[dict]:
        """Store this run's integration errors; returns the latest errors as table rows when there were
        any. Never raises: the record of errors must not fail (or hide) the run's outcome."""
        from exchange_sync.store.errors import list_errors, record_errors

        name = self.config.name
        try:
            disabled_now = {h.mailbox for h in state.mailbox_health(name) if h.disabled} - set(disabled_before)
            errors = run_errors(self.report.mailboxes, disabled_now=disabled_now, paused=bool(self.paused),
                                at=datetime.now(timezone.utc))
            record_errors(state, name, errors, run_id=run_id)
            return [e.row() for e in list_errors(state, name, limit=20)] if errors else []
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not record the run's errors (%s: %s)", type(exc).__name__, exc)
            return []

    def failure(self) -> Exception | None:
        """The exception the run ends with (None: it completed)."""
        if self.credentials_error is not None:
            return CredentialsError(f"{CREDENTIALS_REASON}: {self.credentials_error}")
        failed = self.report.failed
        if not failed:
            return None
        wide = [(m, integration_reason(m)) for m in failed]
        wide = [(m, reason) for m, reason in wide if reason is not None]
        if wide:
            first, reason = wide[0]
            return IntegrationFailed(reason, f"{first.error} ({len(wide)} mailbox(es) not synced; an "
                                             "integration-wide failure, not counted toward disabling any mailbox)")
        return RunFailed("; ".join(f"{m.mailbox}: {m.reason}: {m.error}" for m in failed))


def _failed(mailbox: str, reason: str, error: str) -> MailboxReport:
    from exchange_sync.pipeline.mailbox import MailboxReport

    return MailboxReport(mailbox=mailbox, status="failed", reason=reason, error=error)


def record_filtered(checkpoints: Database, report: RunReport,
                    logger: logging.Logger | logging.LoggerAdapter = log) -> None:
    """Items the participant filters left out, for `exchange-sync usage` (never billed). Never raises."""
    from exchange_sync.store.usage_filtered import add_filtered

    try:
        add_filtered(checkpoints, report.integration, report.started_at.date(),
                     {m.mailbox: m.filtered for m in report.mailboxes})
    except Exception as exc:  # noqa: BLE001 - a count shown beside usage must not fail the run
        logger.warning("could not record the filtered counts (%s: %s)", type(exc).__name__, exc)


def prune_staging(staging: Any, config: IntegrationConfig,
                  logger: logging.Logger | logging.LoggerAdapter = log) -> int:
    """Remove staged batches older than ``staging.keep_days``; returns how many. Never raises."""
    keep = config.staging.keep_days
    if keep is None:
        return 0
    try:
        removed = staging.prune(config.name, datetime.now(timezone.utc) - timedelta(days=keep))
    except Exception as exc:  # noqa: BLE001 - housekeeping must not fail a run that synced
        logger.warning("could not prune staging (%s: %s); staged batches are kept", type(exc).__name__, exc)
        return 0
    if removed:
        logger.info("removed %d staged batches older than %s days", removed, keep)
    return removed
