"""The Prefect flow: one run syncs one integration (an Exchange server + its mailboxes).

Incremental mode pages through each folder's changes since the stored watermark; backfill mode
reads a received-time window with FindItem and never reads or moves a watermark. Mailboxes run
in parallel on a bounded thread pool (Prefect's default pool is unbounded), or on a Dask cluster
(``task_runner: {kind: dask, address: ...}``).

Around the mailbox work:
- each mailbox sync holds one slot of its Exchange server's global concurrency limit
  (``exchange_sync.deploy.limits``: why per mailbox, and when the limit must exist);
- mailboxes disabled after ``disable_after_failures`` same-reason failures are skipped and reported
  as ``disabled``; each run's outcome feeds the failure streaks;
- ``invalid_exchange_credentials`` or the destination's quota (``comment_quota_hit``) under a
  deployment pauses the integration's deployments;
- every run records its errors with kind, mailbox, action and time (``pipeline.errors``; listed by
  ``exchange-sync errors``, the latest shown as the ``<name>-errors`` table artifact);
- integration-wide failures (``store.state.INTEGRATION_WIDE_REASONS``: server unreachable, TLS,
  credentials, a secret or the state database missing, the destination refusing its token) never
  count toward disabling a mailbox: the run fails with the reason, at integration level;
- a run whose process died (kill -9) stays ``running`` in the state database; the next run on the
  same host marks it ``crashed``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NONE
from prefect.task_runners import ThreadPoolTaskRunner

from exchange_sync.processes import is_gone, process_start
from exchange_sync.config import IntegrationConfig, MailboxConfig
from exchange_sync.deploy.form import DestinationForm, MailboxForm, SecretRefForm, TlsForm, form_to_config
from exchange_sync.deploy.limits import ensure_server_limit, running_under_deployment, server_slot, slot_mode
from exchange_sync.deploy.names import server_label
from exchange_sync.memory import tune_arrow_pool, tune_malloc
from exchange_sync.pipeline import mailbox as plain_mailbox
from exchange_sync.pipeline.errors import destination_reason, pause_reason, run_errors
from exchange_sync.pipeline.mailbox import MailboxReport
from exchange_sync.pipeline.report import RunReport, comments_page_link, render_markdown
from exchange_sync.pipeline.runtime import Runtime
from exchange_sync.store.state import INTEGRATION_WIDE_REASONS
from tasks.pipeline import PREFECT_STEPS

Mode = Literal["incremental", "backfill"]


SERVER_LIMIT_MISSING = "server_limit_missing"


class CredentialsError(RuntimeError):
    """``invalid_exchange_credentials``: the whole integration stops, whatever the mailbox."""

    reason = "invalid_exchange_credentials"


class RunFailed(RuntimeError):
    pass


class IntegrationFailed(RunFailed):
    """The integration as a whole could not run (``reason`` in ``INTEGRATION_WIDE_REASONS``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def _integration_reason(result: MailboxReport) -> str | None:
    """The integration-wide reason of a mailbox's failure, if it is one."""
    if result.status != "failed":
        return None
    if result.reason in INTEGRATION_WIDE_REASONS:
        return result.reason
    error = result.error or ""
    # Raised through the mailbox code as unexpected errors, but about the whole integration:
    if destination_reason(error) is not None:
        return destination_reason(error)
    if error.startswith("ReinferAuthError"):
        return "destination_unauthorized"
    if error.startswith("ReinferError") and "still failing after" in error:
        return "destination_unavailable"  # 429/5xx/connection errors through every retry: the API is down
    if error.startswith("SecretResolutionError"):
        return "secret_unavailable"
    if error.startswith("StateUnavailable"):
        return "state_unavailable"
    return None


def _run_owner() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid())}


def _owner_is_dead(owner: dict) -> bool:
    pid = owner.get("pid")
    return isinstance(pid, int) and is_gone(owner.get("host"), pid, owner.get("start"))


def _preflight(config: IntegrationConfig) -> None:
    """Secrets resolve before any mailbox is tried: a missing password fails the run at integration
    level (``secret_unavailable``), never as a failure of each mailbox."""
    from exchange_sync.config import SecretResolutionError, secret_refs

    for path, ref in secret_refs(config):
        try:
            ref.resolve()
        except SecretResolutionError as exc:
            raise IntegrationFailed("secret_unavailable", f"{path}: {exc}") from None


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters or {}
    config = params.get("config") or {}
    name = config.get("name") if isinstance(config, dict) else getattr(config, "name", "integration")
    if not config:
        name = params.get("integration") or "integration"
    mode = params.get("mode", "incremental")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    prefix = "backfill" if mode == "backfill" else "sync"
    return f"{prefix}-{name}-{stamp}"


def _artifact_key(name: str, suffix: str) -> str:
    # Artifact keys: lowercase letters, digits and dashes only.
    return "".join(c if c.isalnum() else "-" for c in f"{name}-{suffix}".lower())


class _ArtifactProgress:
    """The run's progress artifact, moved per page: items done / items known so far (the pipeline
    reports the items of the folders it is about to sync, then each page it loads). Chains to the
    sink installed before (the CLI's progress bar)."""

    def __init__(self, artifact_id, mailboxes: int, chained) -> None:
        self.artifact_id, self.mailboxes, self.chained = artifact_id, mailboxes, chained
        self.known = self.done = self.mailboxes_done = 0
        self.lock = threading.Lock()

    def expect(self, items: int) -> None:
        if self.chained is not None:
            self.chained.expect(items)
        with self.lock:
            self.known += items
            self._update()

    def advance(self, items: int) -> None:
        if self.chained is not None:
            self.chained.advance(items)
        with self.lock:
            self.done += items
            self._update()

    def mailbox_done(self) -> None:
        with self.lock:
            self.mailboxes_done += 1
            self._update()

    def _update(self) -> None:
        known = max(self.known, self.done)
        if self.mailboxes_done >= self.mailboxes:
            percent = 100.0
        elif known:
            # Never ahead of the mailboxes: a mailbox not listed yet may bring more items.
            percent = min(100.0 * self.done / known, 100.0 * (self.mailboxes_done + 1) / max(self.mailboxes, 1))
        else:
            percent = 100.0 * self.mailboxes_done / max(self.mailboxes, 1)
        try:
            update_progress_artifact(self.artifact_id, round(percent, 1),
                                     description=f"{self.done} of {known} items known so far; "
                                                 f"{self.mailboxes_done} of {self.mailboxes} mailboxes done")
        except Exception:  # noqa: BLE001 - progress is for watching: never fail a sync over it
            logging.getLogger("exchange_sync").debug("progress artifact update failed", exc_info=True)


def _human_counts(result: MailboxReport) -> str:
    c = result.counts
    parts = [f"{c.new} new", f"{c.updated} updated", f"{c.unchanged} unchanged"]
    extra = [(result.deletes, "deleted"), (result.rejected, "rejected"), (result.missing, "missing on the server"),
             (result.skipped_before_start, "before the start time"), (result.filtered, "filtered out")]
    parts += [f"{n} {what}" for n, what in extra if n]
    return f"{result.items} items in {len(result.folders)} folders: " + ", ".join(parts)


def _check_window(mode: Mode, start: datetime | None, end: datetime | None) -> None:
    if mode == "incremental" and (start or end):
        raise ValueError("start/end apply to backfill runs only (mode='backfill')")
    if start and end and start >= end:
        raise ValueError(f"start {start.isoformat()} must be before end {end.isoformat()}")


def _as_state(result: MailboxReport):
    """A failed mailbox is a *Failed* task run in the UI (red, with the reason), a skipped one a
    *Skipped* one; the report is the state's data either way, and the flow decides the run's outcome."""
    if result.status == "failed":
        from prefect.states import Failed

        return Failed(message=f"mailbox {result.mailbox} failed ({result.reason}): {result.error}", data=result)
    if result.status == "skipped":  # e.g. mailbox_not_found: a state named Skipped, with the reason
        from prefect.states import Completed

        return Completed(name="Skipped", message=f"mailbox {result.mailbox} skipped ({result.reason}): "
                                                 f"{result.error}", data=result)
    return result


@task(name="sync-mailbox", cache_policy=NONE, task_run_name="sync-mailbox {mailbox.email}")
def sync_mailbox(rt: Runtime, mailbox: MailboxConfig, mode: str, start: datetime | None, end: datetime | None,
                 limit_mode: str) -> MailboxReport:
    """One mailbox on the flow's shared Runtime (threads), inside its server slot."""
    with server_slot(rt.config.connection.server_key, limit_mode):
        return _as_state(plain_mailbox.sync_mailbox(rt, mailbox, steps=PREFECT_STEPS, mode=mode, start=start,
                                                    end=end))


@task(name="sync-mailbox-remote", cache_policy=NONE, task_run_name="sync-mailbox {mailbox.email}")
def sync_mailbox_remote(config: IntegrationConfig, mailbox: MailboxConfig, mode: str, start: datetime | None,
                        end: datetime | None, limit_mode: str) -> MailboxReport:
    """One mailbox on a Dask worker: a Runtime holds live connections and locks and cannot be
    shipped, so each remote task opens its own (secrets are resolved there, at run time)."""
    rt = Runtime.open(config)
    try:
        with server_slot(config.connection.server_key, limit_mode):
            return _as_state(plain_mailbox.sync_mailbox(rt, mailbox, steps=PREFECT_STEPS, mode=mode, start=start,
                                                        end=end))
    finally:
        rt.close()


def _task_runner(config: IntegrationConfig, workers: int):
    if config.task_runner.kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise RuntimeError("task_runner kind dask needs the 'dask' extra: pip install 'exchange-sync[dask]'") from None
        return DaskTaskRunner(address=config.task_runner.address), True
    return ThreadPoolTaskRunner(max_workers=workers), False


def _record_outcomes(rt: Runtime, config: IntegrationConfig, report: RunReport) -> None:
    """Feed each tried mailbox's outcome into its failure streak; disable at the threshold."""
    for result in report.mailboxes:
        if result.status == "disabled" or result.reason == "busy" or _integration_reason(result) is not None:
            continue  # not tried (disabled, or another writer syncing it) / integration-wide: never counted
        failure = None if result.status == "ok" else (result.reason or "unexpected_error")
        before = result.status
        health = rt.state.record_mailbox_outcome(config.name, result.mailbox, failure,
                                                 config.disable_after_failures)
        if health.disabled and before != "disabled":
            report.notes.append(f"mailbox {result.mailbox} disabled: {health.disabled_reason} "
                                f"(re-enable with `exchange-sync enable {config.name} --mailbox {result.mailbox}`)")
            rt.state.set_mailbox_status(config.name, result.mailbox, "disabled", reason=health.disabled_reason,
                                        error_count_delta=0)


def _record_errors(rt: Runtime, config: IntegrationConfig, run_id: int, report: RunReport, disabled_before,
                   paused: list[str], logger) -> list[dict]:
    """Store this run's integration errors; returns the latest errors as table rows when there were any."""
    from exchange_sync.store.errors import list_errors, record_errors

    try:
        disabled_now = {h.mailbox for h in rt.state.mailbox_health(config.name) if h.disabled} - set(disabled_before)
        errors = run_errors(report.mailboxes, integration_reason=_integration_reason, disabled_now=disabled_now,
                            paused=bool(paused), at=datetime.now(timezone.utc))
        record_errors(rt.state, config.name, errors, run_id=run_id)
        return [e.row() for e in list_errors(rt.state, config.name, limit=20)] if errors else []
    except Exception as exc:  # noqa: BLE001 - the record of errors must not fail (or hide) the run's outcome
        logger.warning("could not record the run's errors (%s: %s)", type(exc).__name__, exc)
        return []


def _record_filtered(rt: Runtime, config: IntegrationConfig, report: RunReport, logger) -> None:
    """Items the participant filters left out, for `exchange-sync usage` (never billed)."""
    from exchange_sync.store.usage_filtered import add_filtered

    try:
        add_filtered(rt.checkpoints, config.name, report.started_at.date(),
                     {m.mailbox: m.filtered for m in report.mailboxes})
    except Exception as exc:  # noqa: BLE001 - a count shown beside usage must not fail the run
        logger.warning("could not record the filtered counts (%s: %s)", type(exc).__name__, exc)


def _prune_staging(rt: Runtime, logger) -> None:
    keep = rt.config.staging.keep_days
    if keep is None:
        return
    try:
        removed = rt.staging.prune(rt.config.name, datetime.now(timezone.utc) - timedelta(days=keep))
    except Exception as exc:  # noqa: BLE001 - housekeeping must not fail a run that synced
        logger.warning("could not prune staging (%s: %s); staged batches are kept", type(exc).__name__, exc)
        return
    if removed:
        logger.info("removed %d staged batches older than %s days", removed, keep)


@flow(name="exchange-sync", flow_run_name=_run_name, validate_parameters=True, log_prints=False)
def sync_integration(
    config: IntegrationConfig,
    mode: Mode = "incremental",
    start: datetime | None = None,
    end: datetime | None = None,
    mailboxes: list[str] | None = None,
) -> dict:
    """Sync an integration's mailboxes once. ``mailboxes`` restricts the run to some of them."""
    return _sync(config, mode, start, end, mailboxes)


@flow(name="exchange-sync", flow_run_name=_run_name, validate_parameters=True, log_prints=False)
def sync_ews(
    integration: str,
    server_url: str,
    access_type: Literal["delegate", "impersonation"],
    mailboxes: list[MailboxForm],
    auth: Literal["ntlm", "basic", "oauth2"] = "ntlm",
    username: str = "",
    password: SecretRefForm = SecretRefForm(),
    tls: TlsForm = TlsForm(),
    destination: DestinationForm = DestinationForm(),
    advanced: dict[str, Any] = {},  # noqa: B006 - Prefect copies parameters; never mutated
    mode: Mode = "incremental",
    start: datetime | None = None,
    end: datetime | None = None,
    only_mailboxes: list[str] = [],  # noqa: B006
) -> dict:
    """Sync an EWS integration's mailboxes once; the parameters are the configuration file's, as a
    form (``exchange_sync.deploy.form``). Any of them may be changed for one run."""
    from exchange_sync.config import ConfigError

    try:
        config = form_to_config(integration, server_url, auth, username, password, access_type, tls, mailboxes,
                                destination, advanced)
    except ConfigError as exc:
        raise ConfigError(f"the run's parameters are not a valid configuration: {exc}") from None
    return _sync(config, mode, start, end, only_mailboxes or None)


def _sync(config: IntegrationConfig, mode: Mode, start: datetime | None, end: datetime | None,
          mailboxes: list[str] | None) -> dict:
    _check_window(mode, start, end)
    tune_malloc()  # before the pipeline's threads exist: flat peak RSS on large mailboxes
    tune_arrow_pool()
    logger = get_run_logger()
    selected = [m for m in config.enabled_mailboxes if not mailboxes or m.email in {x.lower() for x in mailboxes}]
    if mailboxes:
        unknown = sorted({x.lower() for x in mailboxes} - {m.email for m in config.mailboxes})
        if unknown:
            raise ValueError(f"mailboxes not in the configuration: {', '.join(unknown)}")
    _preflight(config)
    from exchange_sync.store.engine import StateUnavailable

    try:
        rt = Runtime.open(config)
    except StateUnavailable as exc:
        raise IntegrationFailed("state_unavailable", str(exc).removeprefix("state_unavailable: ")) from None
    for stale in rt.state.mark_stale_runs(config.name, _owner_is_dead):
        logger.warning("run %d of %s was left running by a process that is gone: marked crashed", stale, config.name)
    run_id = rt.state.start_run(config.name, mode, owner=_run_owner())
    report = RunReport(integration=config.name, mode=mode, started_at=datetime.now(timezone.utc),
                       page_link=comments_page_link(config))
    disabled = {h.mailbox: h for h in rt.state.mailbox_health(config.name) if h.disabled}
    for m in [m for m in selected if m.email in disabled]:
        report.mailboxes.append(MailboxReport(mailbox=m.email, status="disabled", reason="disabled",
                                              error=disabled[m.email].disabled_reason))
        logger.warning("mailbox %s is disabled (%s): skipped", m.email, disabled[m.email].disabled_reason)
    selected = [m for m in selected if m.email not in disabled]
    limit_mode = slot_mode(config.connection.server_key)
    if limit_mode == "strict" and running_under_deployment():
        if ensure_server_limit(config.connection.server_key, config.concurrency.connections_per_server):
            logger.info("Created the concurrency limit %s (%d slots) for server %s: the first run on it.",
                        config.connection.server_key, config.concurrency.connections_per_server,
                        server_label(config.connection))
    progress_id = create_progress_artifact(0.0, key=_artifact_key(config.name, "progress"),
                                           description=f"{mode} run of {config.name}: items done of items known")
    from exchange_sync.pipeline import progress as run_progress

    previous_sink = run_progress.current()
    sink = _ArtifactProgress(progress_id, len(selected), previous_sink)
    run_progress.install(sink)
    done = 0
    lock = threading.Lock()
    credentials_error: BaseException | None = None
    paused: list[str] = []
    error_rows: list[dict] = []
    try:
        workers = max(1, min(len(selected), config.concurrency.mailboxes))
        task_runner, remote = _task_runner(config, workers)
        with task_runner as runner:
            common = {"mode": mode, "start": start, "end": end, "limit_mode": limit_mode}
            futures = {
                m.email: (runner.submit(sync_mailbox_remote, parameters={"config": config, "mailbox": m, **common})
                          if remote else
                          runner.submit(sync_mailbox, parameters={"rt": rt, "mailbox": m, **common}))
                for m in selected
            }
            for email, future in futures.items():
                try:
                    result: MailboxReport = future.result(raise_on_failure=False)
                    if isinstance(result, BaseException):  # the task raised
                        raise result
                except Exception as exc:  # noqa: BLE001 - classified below
                    from exchange_sync.sources import InvalidCredentials

                    if isinstance(exc, InvalidCredentials):
                        credentials_error = exc
                        result = MailboxReport(mailbox=email, status="failed", reason=exc.reason, error=str(exc))
                    elif type(exc).__name__ == "ConcurrencySlotAcquisitionError":  # a private class in 3.9.1
                        # A deployment without its server limit: a setup error of the integration,
                        # not of this mailbox (never counted towards disabling it).
                        result = MailboxReport(mailbox=email, status="failed", reason=SERVER_LIMIT_MISSING,
                                               error=f"{type(exc).__name__}: {exc} (the server's concurrency limit "
                                                     f"{config.connection.server_key} is missing or inactive: "
                                                     "create or activate it in the UI's Concurrency page)")
                    else:
                        result = MailboxReport(mailbox=email, status="failed", reason="unexpected_error",
                                               error=f"{type(exc).__name__}: {exc}")
                report.mailboxes.append(result)
                with lock:
                    done += 1
                sink.mailbox_done()
                if result.status != "ok":
                    logger.warning("Mailbox %s %s (%s): %s", email, result.status, result.reason, result.error)
                else:
                    logger.info("Mailbox %s synced: %s.", email, _human_counts(result))
        if not selected:
            update_progress_artifact(progress_id, 100.0, description="no mailbox to sync")
        _record_outcomes(rt, config, report)
        wide = sorted({r for r in map(_integration_reason, report.failed) if r is not None})
        if wide:
            report.notes.append(f"integration-wide failure ({', '.join(wide)}): no mailbox's failure streak was "
                                "counted; the next run after the cause is fixed syncs everything")
        stop = pause_reason(credentials_error is not None, wide)
        if stop is not None:
            from exchange_sync.deploy.control import pause_current_integration

            try:
                paused = pause_current_integration(config.name, stop)
            except Exception as exc:  # noqa: BLE001 - the run fails anyway; say why it could not pause
                logger.error("could not pause the deployments of %s: %s", config.name, type(exc).__name__)
                paused = []
            if paused:
                fix = "fix the credentials" if credentials_error is not None else "raise the destination's quota"
                report.notes.append(f"{stop}: deployments {', '.join(paused)} paused; {fix}, "
                                    f"then `exchange-sync start {config.name}`")
    finally:
        run_progress.install(previous_sink)
        report.finished_at = datetime.now(timezone.utc)
        status = "failed" if credentials_error or report.failed else "completed"
        rt.state.finish_run(run_id, status, report.to_dict())
        error_rows = _record_errors(rt, config, run_id, report, disabled, paused, logger)
        _record_filtered(rt, config, report, logger)
        _prune_staging(rt, logger)
        rt.close()
    create_table_artifact(key=_artifact_key(config.name, "run"), table=report.rows(),
                          description=f"{mode} run of {config.name}: one row per mailbox (items, new, "
                                      "updated, status)")
    create_markdown_artifact(key=_artifact_key(config.name, "report"), markdown=render_markdown(report),
                             description=f"{mode} run of {config.name}: {len(report.mailboxes)} mailboxes, "
                                         f"{len(report.failed)} failed")
    if error_rows:
        create_table_artifact(key=_artifact_key(config.name, "errors"), table=error_rows,
                              description=f"latest integration errors of {config.name} (kind, mailbox, action taken)")
    if credentials_error is not None:
        raise CredentialsError(f"invalid_exchange_credentials: {credentials_error}")
    if report.failed:
        wide = [(m, _integration_reason(m)) for m in report.failed]
        wide = [(m, reason) for m, reason in wide if reason is not None]
        if wide:
            first, reason = wide[0]
            raise IntegrationFailed(reason, f"{first.error} ({len(wide)} mailbox(es) not synced; an integration-wide "
                                            "failure, not counted toward disabling any mailbox)")
        raise RunFailed("; ".join(f"{m.mailbox}: {m.reason}: {m.error}" for m in report.failed))
    return report.to_dict()


logging.getLogger("exchangelib").setLevel(logging.WARNING)
