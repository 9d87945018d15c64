"""An integration's configuration as flow parameters the Prefect UI renders as a form, and back.

Prefect-free; below the flows (which build their configuration from their parameters at run time
with ``config_from_form``) and the deployment code (``exchange_sync.deploy`` renders the parameters
from the YAML file with ``form_parameters`` and reads them back with ``config_from_parameters``).

- ``forms.ews``: the form models shared by both kinds (secret references, TLS, mailboxes,
  destination), the EWS connection's fields, the titles of every parameter (``PARAMETERS``);
- ``forms.graph``: the Microsoft Graph connection's fields (tenant, app, certificate, endpoints).

Prefect derives each deployment's form from its flow's signature, so the flows keep their parameters
explicit and hand the form's part of them to ``config_from_form``.
"""

from __future__ import annotations

from typing import Any, Literal

from exchange_sync.config import ConfigError, IntegrationConfig
from exchange_sync.forms.ews import (
    PARAMETERS,
    DestinationForm,
    MailboxForm,
    SecretRefForm,
    TlsForm,
    config_from_parameters,
    config_parameter,
    form_parameters,
    form_to_config,
)
from exchange_sync.forms.graph import (
    DEFAULT_AUTHORITY,
    DEFAULT_GRAPH_URL,
    GraphCertificateForm,
    graph_form_to_config,
)

FormKind = Literal["ews", "graph"]

_BUILDERS = {"ews": form_to_config, "graph": graph_form_to_config}


def config_from_form(kind: FormKind, **params: Any) -> IntegrationConfig:
    """A form flow's parameters (the connection's fields, ``mailboxes``, ``destination``, ``advanced``;
    not the run options) as the integration's configuration, validated as a file is. Invalid values
    raise ``ConfigError("the run's parameters are not a valid configuration: ...")``, naming the field."""
    try:
        build = _BUILDERS[kind]
    except KeyError:
        raise ValueError(f"no form of kind {kind!r} (one of {', '.join(_BUILDERS)})") from None
    try:
        return build(**params)
    except ConfigError as exc:
        raise ConfigError(f"the run's parameters are not a valid configuration: {exc}") from None


__all__ = ["DEFAULT_AUTHORITY", "DEFAULT_GRAPH_URL", "PARAMETERS", "DestinationForm", "FormKind",
           "GraphCertificateForm", "MailboxForm", "SecretRefForm", "TlsForm", "config_from_form",
           "config_from_parameters", "config_parameter", "form_parameters"]
