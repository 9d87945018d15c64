"""The Graph integration's deployment parameters as a form (``flows.sync_graph:sync_graph``).

The same idea as the EWS form (``exchange_sync.forms.ews``): the connection's fields are top-level
parameters that the Prefect UI renders field by field (tenant, client id, the client secret as a
*reference*, the certificate, endpoints, TLS), mailboxes and destination are the shared forms, and
every other setting of the file is under ``advanced``. No part of the schema is a union of objects;
optional values are empty strings, so a custom run can override one field alone (only the mailboxes,
another tenant) and the run turns the form back into the file's configuration, validated as a file is.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from exchange_sync.config import ConfigError, IntegrationConfig
from exchange_sync.forms.ews import (
    PARAMETERS,
    SecretRefForm,
    _Form,
    _ref,
    _ref_form,
    assemble,
    common_parameters,
    config_parameter,
    tls_data,
    tls_form,
)

DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"


class GraphCertificateForm(_Form):
    """An app certificate instead of a client secret: thumbprint plus where the private key is."""

    model_config = ConfigDict(extra="forbid", title="Certificate")
    thumbprint: str = Field("", title="Thumbprint",
                            description="SHA-1 thumbprint of the certificate as shown in the app registration; "
                                        "empty: no certificate (the client secret is used).")
    path: str = Field("", title="Private key file",
                      description="PEM file of the private key on the worker (or use the reference below).")
    private_key: SecretRefForm = Field(default_factory=SecretRefForm, title="Private key",
                                       description="Where the PEM private key lives: a Prefect Secret block or "
                                                   "an environment variable (instead of a file).")


def graph_form_parameters(config: IntegrationConfig) -> dict[str, Any]:
    """A Graph configuration as the Graph form flow's parameters (JSON)."""
    if config.connection.kind != "graph":
        raise ValueError("not a Graph integration")
    full = config_parameter(config)
    conn = dict(full.pop("connection"))
    conn.pop("kind", None)
    cert = conn.pop("certificate", None) or {}
    params: dict[str, Any] = {
        "integration": full.pop("name"),
        "tenant_id": conn.pop("tenant_id"),
        "client_id": conn.pop("client_id"),
        "client_secret": _ref_form(conn.pop("client_secret", None)),
        "certificate": GraphCertificateForm(thumbprint=cert.get("thumbprint") or "", path=cert.get("path") or "",
                                            private_key=_ref_form(cert.get("private_key"))).model_dump(),
        "graph_url": conn.pop("graph_url", None) or DEFAULT_GRAPH_URL,
        "authority": conn.pop("authority", None) or DEFAULT_AUTHORITY,
        "tls": tls_form(conn.pop("tls", None)),
    }
    if conn:  # timeouts, back-off, retries: as in the file
        full["connection"] = conn
    params.update(common_parameters(full))
    return params


def graph_form_to_config(integration: str, tenant_id: str, client_id: str, client_secret: Any, certificate: Any,
                         graph_url: str, authority: str, tls: Any, mailboxes: list, destination: Any,
                         advanced: dict | None) -> IntegrationConfig:
    """The Graph form's values back into an ``IntegrationConfig`` (``ConfigError`` naming the field)."""
    conn: dict[str, Any] = {"kind": "graph", "tenant_id": tenant_id, "client_id": client_id,
                            "graph_url": graph_url or DEFAULT_GRAPH_URL, "authority": authority or DEFAULT_AUTHORITY,
                            "tls": tls_data(tls)}
    secret = _ref(client_secret)
    if secret:
        conn["client_secret"] = secret
    cert = GraphCertificateForm.model_validate(certificate or {})
    if cert.thumbprint or cert.path or _ref(cert.private_key):
        conn["certificate"] = {"thumbprint": cert.thumbprint, **({"path": cert.path} if cert.path else {}),
                               **({"private_key": _ref(cert.private_key)} if _ref(cert.private_key) else {})}
    return assemble(integration, conn, mailboxes, destination, advanced)


GRAPH_FIELDS = ("integration", "tenant_id", "client_id", "client_secret", "certificate", "graph_url", "authority",
                "tls", "mailboxes", "destination", "advanced")


def graph_config_from_parameters(parameters: dict) -> IntegrationConfig:
    values: dict[str, Any] = {"client_secret": {}, "certificate": {}, "graph_url": "", "authority": "", "tls": {},
                              "destination": {}, "advanced": {}}
    values.update({k: v for k, v in parameters.items() if k in PARAMETERS and k in GRAPH_FIELDS})
    missing = [k for k in ("integration", "tenant_id", "client_id", "mailboxes") if k not in values]
    if missing:
        raise ConfigError(f"parameters lack {', '.join(missing)}")
    return graph_form_to_config(**{k: values[k] for k in GRAPH_FIELDS})
