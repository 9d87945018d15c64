"""The watch flows: real-time sync of an integration (``exchange_sync.watch.run_watch``) until the
flow run is cancelled (issue #16).

Thin: the form's values become the file's configuration (the same forms as the poll deployments,
``exchange_sync.forms``, ``config_from_form``), then ``run_watch`` runs in a thread while the
flow's main thread waits. Cancelling the run (the UI's Cancel, ``exchange-sync stop NAME``) makes the
worker send SIGTERM, which Prefect turns into an exception in the main thread: the flow then sets
the watch's stop event, lets the syncs in flight finish their current page (committed) and the
subscriptions end, writes the summary, and lets Prefect mark the run Cancelled. The worker kills the
process 30 s after the SIGTERM (Prefect's grace period): the flow waits at most ``STOP_GRACE_S``.

``exchange-sync deploy`` creates ``<name>-watch`` for an integration with ``watch.enabled``; its
schedule only makes sure a watcher runs (ticks while one runs are cancelled: concurrency limit 1,
``CANCEL_NEW``); the scheduled poll stays as the safety net (``exchange_sync.deploy.spec``).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from exchange_sync.config import IntegrationConfig
from exchange_sync.forms import (
    DEFAULT_AUTHORITY,
    DEFAULT_GRAPH_URL,
    DestinationForm,
    GraphCertificateForm,
    MailboxForm,
    SecretRefForm,
    TlsForm,
    config_from_form,
)
from flows.watch_report import artifact_key, live_rows, summary_rows, summary_sentences

STOP_GRACE_S = 25.0  # below the worker's 30 s between SIGTERM and SIGKILL
FIRST_REPORT_S, REPORT_EVERY_S = 10.0, 60.0  # the live table artifact: soon after start, then every minute


class WatchFailed(RuntimeError):
    """The watch stopped on an integration-wide failure (message: ``<reason>: <message>``)."""


def _run_name() -> str:
    from prefect.runtime import flow_run

    name = (flow_run.parameters or {}).get("integration") or "integration"
    return f"watch-{name}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"


class _ToRunLog(logging.Handler):
    """The watch's own log lines (mode changes, fallbacks, resubscribes) into the flow run's log; the
    watch's threads have no Prefect run context, the run logger carries the run's id."""

    def __init__(self, run_logger) -> None:
        super().__init__(logging.INFO)
        self.run_logger = run_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.run_logger.log(record.levelno, record.getMessage())
        except Exception:  # noqa: BLE001 - a log line must never stop the watch
            pass


def _report(config: IntegrationConfig, summary, logger) -> None:
    for line in summary_sentences(summary):
        logger.info(line)
    try:
        create_table_artifact(key=artifact_key(config.name), table=summary_rows(summary),
                              description=f"watch of {config.name}, stopped by {summary.stopped_by}: one row per "
                                          "mailbox (how it was watched, events, syncs, items)")
    except Exception:  # noqa: BLE001 - e.g. the API going away with the worker: the log has the figures
        logger.warning("could not write the watch summary artifact")


def _live(config: IntegrationConfig, mailboxes: list[str], logger) -> None:
    """The table artifact while the watch runs: how each mailbox is watched, last event, sync, lag."""
    try:
        create_table_artifact(key=artifact_key(config.name), table=live_rows(config, mailboxes),
                              description=f"watch of {config.name}, running (as of "
                                          f"{datetime.now(timezone.utc):%H:%M:%S} UTC): one row per mailbox")
    except Exception:  # noqa: BLE001 - watching matters more than showing it
        logger.debug("could not update the watch artifact", exc_info=True)


def _watch(config: IntegrationConfig, only_mailboxes: list[str], duration_s: float) -> dict:
    from exchange_sync.watch import run_watch

    logger = get_run_logger()
    stop, done = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["summary"] = run_watch(config, stop=stop, duration_s=duration_s or None,
                                           mailboxes=list(only_mailboxes) or None)
        except BaseException as exc:  # noqa: BLE001 - handed to the flow's thread
            outcome["error"] = exc
        finally:
            done.set()

    forward = _ToRunLog(logger)
    watch_log = logging.getLogger("exchange_sync.watch")
    watch_log.addHandler(forward)
    if watch_log.getEffectiveLevel() > logging.INFO:
        watch_log.setLevel(logging.INFO)
    thread = threading.Thread(target=target, name=f"watch-{config.name}", daemon=True)
    logger.info("Watching the mailboxes of %s until this run is cancelled%s.", config.name,
                f" or {duration_s:g} s have passed" if duration_s else "")
    thread.start()
    next_report = time.monotonic() + FIRST_REPORT_S
    # Waits on an Event, not on Thread.join: a join interrupted by the SIGTERM exception marks the
    # thread as stopped while it still runs (CPython 3.11), and every later join returns at once.
    try:
        while not done.wait(1.0):
            if time.monotonic() >= next_report:
                _live(config, only_mailboxes, logger)
                next_report = time.monotonic() + REPORT_EVERY_S
    except BaseException:
        # Cancellation (Prefect's TerminationSignal on SIGTERM) or a crash of the flow's thread: stop
        # the watch gracefully, report, and let Prefect record the run as it decides (Cancelled).
        stop.set()
        logger.info("Cancelled: stopping the watch of %s after the pages in flight.", config.name)
        done.wait(STOP_GRACE_S)
        if "summary" in outcome:
            _report(config, outcome["summary"], logger)
            logger.info("Watch of %s stopped.", config.name)
        elif not done.is_set():
            logger.warning("The watch of %s did not stop within %.0f s.", config.name, STOP_GRACE_S)
        else:
            error = outcome.get("error")
            logger.warning("The watch of %s stopped with %s: %s", config.name, type(error).__name__, error,
                           exc_info=error)
        raise
    finally:
        watch_log.removeHandler(forward)
    if "error" in outcome:
        raise outcome["error"]
    summary = outcome["summary"]
    _report(config, summary, logger)
    if summary.error:
        from exchange_sync.pipeline.outcome import watch_pause_reason

        reason = watch_pause_reason(summary.error)
        if reason is not None:
            from tasks.deployments import pause_current_integration

            pause_current_integration(config.name, reason)
        raise WatchFailed(summary.error)
    return {**summary.model_dump(mode="json"), "totals": summary.totals}


@flow(name="exchange-sync", flow_run_name=_run_name, validate_parameters=True, log_prints=False)
def watch_ews(
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
    only_mailboxes: list[str] = [],  # noqa: B006
    duration_s: float = 0,
) -> dict:
    """Watch an EWS integration's mailboxes (streaming, else pull notifications, else polling) until
    the run is cancelled; new mail is synced within seconds."""
    config = config_from_form("ews", integration=integration, server_url=server_url, auth=auth, username=username,
                              password=password, access_type=access_type, tls=tls, mailboxes=mailboxes,
                              destination=destination, advanced=advanced)
    return _watch(config, only_mailboxes, duration_s)


@flow(name="exchange-sync", flow_run_name=_run_name, validate_parameters=True, log_prints=False)
def watch_graph(
    integration: str,
    tenant_id: str,
    client_id: str,
    mailboxes: list[MailboxForm],
    client_secret: SecretRefForm = SecretRefForm(),
    certificate: GraphCertificateForm = GraphCertificateForm(),
    graph_url: str = DEFAULT_GRAPH_URL,
    authority: str = DEFAULT_AUTHORITY,
    tls: TlsForm = TlsForm(),
    destination: DestinationForm = DestinationForm(),
    advanced: dict[str, Any] = {},  # noqa: B006
    only_mailboxes: list[str] = [],  # noqa: B006
    duration_s: float = 0,
) -> dict:
    """Watch a Microsoft Graph integration's mailboxes (budgeted delta polling, ``watch.graph_interval_s``)
    until the run is cancelled."""
    config = config_from_form("graph", integration=integration, tenant_id=tenant_id, client_id=client_id,
                              client_secret=client_secret, certificate=certificate, graph_url=graph_url,
                              authority=authority, tls=tls, mailboxes=mailboxes, destination=destination,
                              advanced=advanced)
    return _watch(config, only_mailboxes, duration_s)
