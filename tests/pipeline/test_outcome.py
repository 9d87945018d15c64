"""The run's outcome policy (pipeline.outcome) without Prefect: failure streaks disable a mailbox,
bad credentials and the destination's quota pause the integration, ``busy`` never counts,
integration-wide failures count toward nothing, and exceptions are classified by type or by their
``reason`` attribute, never by the name of their class. A real SQLite state store, no mocks."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from exchange_sync.config import SecretResolutionError, parse_config
from exchange_sync.destinations.reinfer_http import ReinferAuthError, ReinferError, ReinferQuotaError, ReinferUnavailable
from exchange_sync.pipeline.mailbox import MailboxReport
from exchange_sync.pipeline.outcome import (
    CredentialsError,
    IntegrationFailed,
    RunFailed,
    RunOutcome,
    failure_reason,
    integration_reason,
    watch_pause_reason,
)
from exchange_sync.pipeline.report import RunReport
from exchange_sync.sources import InvalidCredentials, ServerUnavailable
from exchange_sync.store import SqlStore
from exchange_sync.store.errors import list_errors


def _config(tmp_path: Path, disable_after: int = 2):
    return parse_config({
        "name": "acme",
        "connection": {"kind": "ews", "server_url": "https://mail.acme.com/EWS/Exchange.asmx", "auth": "ntlm",
                       "username": "svc", "password": {"env": "UNUSED_PW"}, "access_type": "delegate"},
        "mailboxes": [{"email": "ap@acme.com"}, {"email": "ar@acme.com"}],
        "destination": {"kind": "store", "url": f"sqlite:///{tmp_path / 'comments.db'}"},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
        "staging": {"url": str(tmp_path / "staging")},
        "disable_after_failures": disable_after,
    })


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return SqlStore(f"sqlite:///{tmp_path / 'state.db'}")


def _run(config, state: SqlStore, *results: MailboxReport) -> RunOutcome:
    """One run's policy as the flow applies it: results in, streaks and errors recorded."""
    outcome = RunOutcome(config, RunReport(integration=config.name, mode="incremental",
                                           started_at=datetime.now(timezone.utc)))
    disabled_before = [h.mailbox for h in state.mailbox_health(config.name) if h.disabled]
    for result in results:
        outcome.add(result)
    outcome.record_streaks(state)
    run_id = state.start_run(config.name, "incremental")
    outcome.record_errors(state, run_id, disabled_before)
    return outcome


def _denied(mailbox: str = "ar@acme.com") -> MailboxReport:
    return MailboxReport(mailbox, status="skipped", reason="mailbox_access_denied", error="no grant")


def _health(state: SqlStore) -> dict:
    return {h.mailbox: h for h in state.mailbox_health("acme")}


def test_a_failure_streak_disables_the_mailbox_after_n_runs(tmp_path, store):
    config = _config(tmp_path, disable_after=3)
    for run in range(1, 4):
        outcome = _run(config, store, MailboxReport("ap@acme.com"), _denied())
        assert _health(store)["ar@acme.com"].consecutive_failures == run
        assert _health(store)["ar@acme.com"].disabled == (run == 3)
    assert _health(store)["ar@acme.com"].disabled_reason == "mailbox_access_denied: failed 3 runs in a row"
    assert not _health(store)["ap@acme.com"].disabled
    assert any(n.startswith("mailbox ar@acme.com disabled") and "exchange-sync enable acme --mailbox ar@acme.com"
               in n for n in outcome.report.notes)
    assert {s.mailbox: s.status for s in store.mailbox_statuses("acme")}["ar@acme.com"] == "disabled"
    latest = list_errors(store, "acme", limit=1)[0]
    assert (latest.kind, latest.mailbox, latest.action) == ("mailbox_access_denied", "ar@acme.com", "mailbox_disabled")
    assert outcome.failure() is None and outcome.status == "completed"  # a skipped mailbox does not fail the run


def test_a_success_or_another_reason_restarts_the_streak(tmp_path, store):
    config = _config(tmp_path, disable_after=2)
    _run(config, store, _denied())
    _run(config, store, MailboxReport("ar@acme.com"))
    _run(config, store, _denied())
    _run(config, store, MailboxReport("ar@acme.com", status="skipped", reason="mailbox_not_found", error="gone"))
    assert not _health(store)["ar@acme.com"].disabled
    assert _health(store)["ar@acme.com"].consecutive_failures == 1


def test_busy_never_counts_and_is_no_error(tmp_path, store):
    config = _config(tmp_path, disable_after=1)
    for _ in range(3):
        outcome = _run(config, store, MailboxReport("ap@acme.com", status="skipped", reason="busy", error="leased"))
    assert "ap@acme.com" not in _health(store)
    assert list_errors(store, "acme") == []
    assert outcome.failure() is None


def test_bad_credentials_pause_and_count_toward_nothing(tmp_path, store):
    config = _config(tmp_path, disable_after=1)
    outcome = RunOutcome(config, RunReport(integration="acme", mode="incremental", started_at=datetime.now(timezone.utc)))
    result = outcome.add_exception("ap@acme.com", InvalidCredentials("401 from the server"))
    assert (result.status, result.reason) == ("failed", "invalid_exchange_credentials")
    assert outcome.record_streaks(store) == []
    assert _health(store) == {}
    assert outcome.pause_reason() == "invalid_exchange_credentials"
    outcome.note_paused("invalid_exchange_credentials", ["acme"])
    assert outcome.report.notes[-1] == ("invalid_exchange_credentials: deployments acme paused; fix the credentials, "
                                        "then `exchange-sync start acme`")
    failure = outcome.failure()
    assert isinstance(failure, CredentialsError) and str(failure).startswith("invalid_exchange_credentials: 401")
    outcome.record_errors(store, store.start_run("acme", "incremental"), [])
    [error] = list_errors(store, "acme")
    assert (error.kind, error.mailbox, error.action) == ("invalid_exchange_credentials", None, "integration_disabled")


def test_integration_wide_failures_fail_the_run_at_integration_level(tmp_path, store):
    config = _config(tmp_path, disable_after=1)
    down = [MailboxReport(m, status="failed", reason=ServerUnavailable.reason, error="unreachable")
            for m in ("ap@acme.com", "ar@acme.com")]
    outcome = _run(config, store, *down)
    assert _health(store) == {}  # an outage disables nothing
    assert outcome.pause_reason() is None  # and pauses nothing: the next poll may work
    assert any(n.startswith("integration-wide failure (server_unavailable)") for n in outcome.report.notes)
    failure = outcome.failure()
    assert isinstance(failure, IntegrationFailed) and failure.reason == "server_unavailable"
    assert "2 mailbox(es) not synced" in str(failure)
    [error] = list_errors(store, "acme")
    assert (error.kind, error.mailbox, error.action) == ("server_unavailable", None, "none")


def test_a_mailbox_failure_fails_the_run_as_run_failed(tmp_path, store):
    config = _config(tmp_path)
    outcome = _run(config, store, MailboxReport("ap@acme.com", status="failed", reason="unexpected_error",
                                                error="ValueError: bad page"))
    failure = outcome.failure()
    assert type(failure) is RunFailed and str(failure) == "ap@acme.com: unexpected_error: ValueError: bad page"
    assert _health(store)["ap@acme.com"].consecutive_failures == 1


def test_quota_raised_through_a_step_pauses_and_counts_nothing(tmp_path, store):
    """The mailbox code reports an unexpected exception as text, and the integration-wide reason of the
    exception (``failure_reason``) beside it: that is what tells the destination's quota apart."""
    report = MailboxReport("ap@acme.com", status="failed", reason="unexpected_error",
                           error="ReinferQuotaError: refused for quota")
    assert integration_reason(report) is None  # the text alone classifies nothing
    report.cause_reason = failure_reason(ReinferQuotaError("refused for quota"))
    wide = integration_reason(report)
    assert wide == "comment_quota_hit"
    config = _config(tmp_path, disable_after=1)
    outcome = RunOutcome(config, RunReport(integration="acme", mode="incremental", started_at=datetime.now(timezone.utc)))
    outcome.add(report)
    assert outcome.record_streaks(store) == [] and _health(store) == {}
    assert outcome.pause_reason() == "comment_quota_hit"
    outcome.note_paused("comment_quota_hit", ["acme", "acme-backfill"])
    assert "raise the destination's quota" in outcome.report.notes[-1]
    outcome.record_errors(store, store.start_run("acme", "incremental"), [])
    [error] = list_errors(store, "acme")
    assert (error.kind, error.mailbox, error.action) == ("comment_quota_hit", None, "integration_disabled")


def test_exceptions_are_classified_by_type_not_by_class_name():
    class TokenRefused(ReinferAuthError):  # another name, the same kind of failure
        pass

    ReinferAuthErrorLookalike = type("ReinferAuthError", (RuntimeError,), {})  # the name, not the type

    class Gone(RuntimeError):
        reason = "state_unavailable"

    try:
        raise ValueError("connection refused")
    except ValueError as cause:
        try:
            raise ReinferError("POST /sync still failing after 5 attempts") from cause
        except ReinferError as exc:
            not_retried = exc
    retried_out = ReinferUnavailable("POST /sync still failing after 5 attempts: HTTP 503")
    assert failure_reason(TokenRefused("401")) == "destination_unauthorized"
    assert failure_reason(ReinferAuthErrorLookalike("401")) is None
    assert failure_reason(Gone("db down")) == "state_unavailable"  # by its reason attribute
    assert failure_reason(SecretResolutionError("env X is not set")) == "secret_unavailable"
    assert failure_reason(ReinferQuotaError("quota")) == "comment_quota_hit"
    assert failure_reason(not_retried) is None  # the text says "still failing", the type does not
    assert failure_reason(retried_out) == "destination_unavailable"
    assert failure_reason(RuntimeError("ReinferAuthError: 401")) is None
    assert failure_reason(InvalidCredentials("401")) == "invalid_exchange_credentials"


def test_a_watch_pauses_its_integration_on_bad_credentials_only():
    assert watch_pause_reason("invalid_exchange_credentials: 401 from the server") == "invalid_exchange_credentials"
    assert watch_pause_reason("server_unavailable: timed out") is None
    assert watch_pause_reason(None) is None
