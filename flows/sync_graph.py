"""The Graph integration's flow with a form for parameters (``exchange_sync.forms.graph``).

Thin: the form's values become the file's configuration, then the same run as every integration
(``flows.sync_integration._sync``). The flow is named ``exchange-sync`` like the others, so an
integration's deployments (poll, shards, backfill, watch) all live under one flow in the UI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow

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
from flows.sync_integration import Mode, _run_name, _sync


@flow(name="exchange-sync", flow_run_name=_run_name, validate_parameters=True, log_prints=False)
def sync_graph(
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
    advanced: dict[str, Any] = {},  # noqa: B006 - Prefect copies parameters; never mutated
    mode: Mode = "incremental",
    start: datetime | None = None,
    end: datetime | None = None,
    only_mailboxes: list[str] = [],  # noqa: B006
) -> dict:
    """Sync a Microsoft Graph (Exchange Online) integration's mailboxes once; any parameter may be
    changed for one run (e.g. only ``mailboxes``)."""
    config = config_from_form("graph", integration=integration, tenant_id=tenant_id, client_id=client_id,
                              client_secret=client_secret, certificate=certificate, graph_url=graph_url,
                              authority=authority, tls=tls, mailboxes=mailboxes, destination=destination,
                              advanced=advanced)
    return _sync(config, mode, start, end, only_mailboxes or None)
