"""The Prefect flow: one run syncs one integration (an Exchange server + its mailboxes).

Incremental mode pages through each folder's changes since the stored watermark; backfill mode
reads a received-time window with FindItem and never reads or moves a watermark. Mailboxes run
in parallel on a bounded thread pool (Prefect's default pool is unbounded), or on a Dask cluster
(``task_runner: {kind: dask, address: ...}``).

The flow orchestrates (tasks, states, artifacts, logging); what a run's outcome means is decided by
the Prefect-free policy in ``exchange_sync.pipeline.outcome``. Around the mailbox work:
- each mailbox sync holds one slot of its Exchange server's global concurrency limit
  (``tasks.limits``: why per mailbox, and when the limit must exist);
- mailboxes disabled after ``disable_after_failures`` same-reason failures are skipped and reported
  as ``disabled``; each run's outcome feeds the failure streaks;
- ``invalid_exchange_credentials`` or the destination's quota (``comment_quota_hit``) under a
  deployment pauses the integration's deployments (``tasks.deployments``);
- every run records its errors with kind, mailbox, action and time (``pipeline.outcome``; listed by
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
from datetime import datetime, timezone
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
from exchange_sync.forms import DestinationForm, MailboxForm, SecretRefForm, TlsForm, config_from_form
from exchange_sync.memory import tune_arrow_pool, tune_malloc
from exchange_sync.pipeline import mailbox as plain_mailbox
from exchange_sync.pipeline.mailbox import MailboxReport
from exchange_sync.pipeline.outcome import (
    SERVER_LIMIT_MISSING,
    CredentialsError,
    IntegrationFailed,
    RunFailed,
    RunOutcome,
    prune_staging,
    record_filtered,
)
from exchange_sync.pipeline.report import RunReport, comments_page_link, render_markdown
from exchange_sync.pipeline.runtime import Runtime
from tasks.deployments import pause_current_integration
from tasks.limits import ensure_server_limit, running_under_deployment, server_label, server_slot, slot_mode
from tasks.pipeline import PREFECT_STEPS

Mode = Literal["incremental", "backfill"]


# The run's outcome policy (failure streaks, pausing, integration-wide failures, error records) is
# Prefect-free, in exchange_sync.pipeline.outcome; its exceptions are re-exported here for callers.
__all__ = ["CredentialsError", "IntegrationFailed", "RunFailed", "sync_ews", "sync_integration"]


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


def _sync_one(rt: Runtime, mailbox: MailboxConfig, mode: str, start: datetime | None,
              end: datetime | None) -> MailboxReport:
    return plain_mailbox.sync_mailbox(rt, mailbox, steps=PREFECT_STEPS, mode=mode, start=start, end=end)


@task(name="sync-mailbox", cache_policy=NONE, task_run_name="sync-mailbox {mailbox.email}")
def sync_mailbox(rt: Runtime, mailbox: MailboxConfig, mode: str, start: datetime | None, end: datetime | None,
                 limit_mode: str) -> MailboxReport:
    """One mailbox on the flow's shared Runtime (threads), inside its server slot."""
    with server_slot(rt.config.connection.server_key, limit_mode):
        return _as_state(_sync_one(rt, mailbox, mode, start, end))


@task(name="sync-mailbox-remote", cache_policy=NONE, task_run_name="sync-mailbox {mailbox.email}")
def sync_mailbox_remote(config: IntegrationConfig, mailbox: MailboxConfig, mode: str, start: datetime | None,
                        end: datetime | None, limit_mode: str) -> MailboxReport:
    """One mailbox on a Dask worker: a Runtime holds live connections and locks and cannot be
    shipped, so each remote task opens its own (secrets are resolved there, at run time)."""
    rt = Runtime.open(config)
    try:
        with server_slot(config.connection.server_key, limit_mode):
            return _as_state(_sync_one(rt, mailbox, mode, start, end))
    finally:
        rt.close()


try:  # the exception a strict slot raises when the server's limit is missing (private in Prefect 3.9.1)
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError as _SlotError

    _SLOT_ERRORS: tuple[type[BaseException], ...] = (_SlotError,)
except ImportError:  # pragma: no cover - another Prefect: no such class to tell apart
    _SLOT_ERRORS = ()


def _task_runner(config: IntegrationConfig, workers: int):
    if config.task_runner.kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise RuntimeError("task_runner kind dask needs the 'dask' extra: pip install 'exchange-sync[dask]'") from None
        return DaskTaskRunner(address=config.task_runner.address), True
    return ThreadPoolTaskRunner(max_workers=workers), False


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
    form (``exchange_sync.forms``). Any of them may be changed for one run."""
    config = config_from_form("ews", integration=integration, server_url=server_url, auth=auth, username=username,
                              password=password, access_type=access_type, tls=tls, mailboxes=mailboxes,
                              destination=destination, advanced=advanced)
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
    outcome = RunOutcome(config, report)
    disabled = {h.mailbox: h for h in rt.state.mailbox_health(config.name) if h.disabled}
    for m in [m for m in selected if m.email in disabled]:
        outcome.add(MailboxReport(mailbox=m.email, status="disabled", reason="disabled",
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
                    result = future.result(raise_on_failure=False)
                    if isinstance(result, BaseException):  # the task raised
                        raise result
                    outcome.add(result)
                except Exception as exc:  # noqa: BLE001 - classified by the outcome policy
                    if isinstance(exc, _SLOT_ERRORS):
                        # A deployment without its server limit: a setup error of the integration,
                        # not of this mailbox (never counted towards disabling it).
                        result = MailboxReport(mailbox=email, status="failed", reason=SERVER_LIMIT_MISSING,
                                               error=f"{type(exc).__name__}: {exc} (the server's concurrency limit "
                                                     f"{config.connection.server_key} is missing or inactive: "
                                                     "create or activate it in the UI's Concurrency page)")
                        outcome.add(result)
                    else:
                        result = outcome.add_exception(email, exc)
                with lock:
                    done += 1
                sink.mailbox_done()
                if result.status != "ok":
                    logger.warning("Mailbox %s %s (%s): %s", email, result.status, result.reason, result.error)
                else:
                    logger.info("Mailbox %s synced: %s.", email, _human_counts(result))
        if not selected:
            update_progress_artifact(progress_id, 100.0, description="no mailbox to sync")
        outcome.record_streaks(rt.state)
        stop = outcome.pause_reason()
        if stop is not None:
            try:
                paused = pause_current_integration(config.name, stop)
            except Exception as exc:  # noqa: BLE001 - the run fails anyway; say why it could not pause
                logger.error("could not pause the deployments of %s: %s", config.name, type(exc).__name__)
                paused = []
            outcome.note_paused(stop, paused)
    finally:
        run_progress.install(previous_sink)
        report.finished_at = datetime.now(timezone.utc)
        rt.state.finish_run(run_id, outcome.status, report.to_dict())
        error_rows = outcome.record_errors(rt.state, run_id, disabled, logger)
        record_filtered(rt.checkpoints, report, logger)
        prune_staging(rt.staging, config, logger)
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
    failure = outcome.failure()
    if failure is not None:
        raise failure
    return report.to_dict()


logging.getLogger("exchangelib").setLevel(logging.WARNING)
