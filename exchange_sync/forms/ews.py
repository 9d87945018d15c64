"""The EWS integration's parameters as a form the Prefect UI renders field by field (and the form
models shared with the Graph form, ``forms.graph``). Prefect-free: the flows build their configuration
from it at run time (``exchange_sync.forms.config_from_form``), ``exchange-sync deploy`` renders it.

Prefect 3.9.1's UI renders a parameter schema as form fields as long as it meets plain objects,
arrays, enums and scalars; a ``oneOf``/``discriminator`` union (``IntegrationConfig.connection`` and
``.destination``) is shown as one raw JSON value. So an EWS integration is deployed with the flow
``flows.sync_integration:sync_ews``, whose parameters are union-free:

- the connection as top-level parameters (``server_url``, ``auth``, ``username``, ``password``,
  ``access_type``, ``tls``): Prefect replaces a nested parameter whole when a run overrides it, so a
  run that changes only the server URL sends only ``server_url``;
- ``mailboxes``: a list of mailbox forms (email, enabled, start time, folder lists);
- ``destination``: one object for both kinds (``kind`` picks which fields apply);
- ``advanced``: every other setting of the YAML file, as in the file (JSON);
- the run options (``mode``, ``start``, ``end``, ``only_mailboxes``).

The YAML file stays the source of truth: ``exchange-sync deploy`` renders these parameters from it
(``form_parameters``) and the flow turns them back into the same ``IntegrationConfig``
(``form_to_config``, through ``config_from_form``), validated as a file is. Optional values are empty strings/lists rather than
``null`` so that the schema has no ``anyOf`` (the UI renders those poorly as well).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from exchange_sync.config import ConfigError, IntegrationConfig, parse_config

TlsVersionChoice = Literal["default", "1.0", "1.1", "1.2", "1.3"]


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecretRefForm(_Form):
    """Where a secret lives: fill in exactly one of the two (never the secret itself)."""

    model_config = ConfigDict(extra="forbid", title="Secret reference")
    secret_block: str = Field("", title="Prefect Secret block",
                              description="Name of the Prefect Secret block holding the value (Blocks page).")
    env: str = Field("", title="Environment variable",
                     description="Name of an environment variable of the worker holding the value.")


class TlsForm(_Form):
    model_config = ConfigDict(extra="forbid", title="TLS")
    verify: bool = Field(True, title="Verify the server certificate",
                         description="Check the Exchange server's certificate (turn off only for a test server).")
    ca_bundle: str = Field("", title="CA bundle",
                           description="PEM file of the CA that signed the server certificate, on the worker; "
                                       "empty: the system CAs.")
    ciphers: str = Field("", title="Cipher suites",
                         description="OpenSSL cipher string (restricts TLS <= 1.2 suites); empty: OpenSSL's default.")
    min_version: TlsVersionChoice = Field("default", title="Minimum TLS version",
                                          description="Lowest TLS version accepted; default: OpenSSL's.")
    max_version: TlsVersionChoice = Field("default", title="Maximum TLS version",
                                          description="Highest TLS version offered; default: OpenSSL's.")


class MailboxForm(_Form):
    model_config = ConfigDict(extra="forbid", title="Mailbox")
    email: str = Field(title="Email address", description="SMTP address of the mailbox to sync.")
    enabled: bool = Field(True, title="Enabled", description="Off: the mailbox is skipped.")
    start_timestamp: str = Field("", title="Start time",
                                 description="Sync mail received from this time on (ISO 8601, e.g. "
                                             "2024-01-01T00:00:00Z; UTC when no offset); empty: all mail.")
    folder_allowlist: list[str] = Field(default_factory=list, title="Folders to sync",
                                        description="Folder paths to sync, with their sub-folders (e.g. Inbox, "
                                                    "Inbox/Invoices); empty: every mail folder.")
    folder_denylist: list[str] = Field(default_factory=list, title="Folders to skip",
                                       description="Folder paths to skip, with their sub-folders (e.g. Junk Email).")
    extra: dict[str, Any] = Field(default_factory=dict, title="Other mailbox settings",
                                  description="Any other setting of this mailbox, as written in the YAML file.")


class DestinationForm(_Form):
    model_config = ConfigDict(extra="forbid", title="Destination")
    kind: Literal["store", "reinfer", "reinfer_bucket"] = Field(
        "store", title="Kind", description="store: the embedded comment store (SQLite or PostgreSQL); reinfer: "
                                           "a Re:infer / Communications Mining source (comments); reinfer_bucket: "
                                           "a Re:infer bucket (raw emails).")
    url: str = Field("", title="URL",
                     description="store: database URL without password (sqlite:///path.db, "
                                 "postgresql+psycopg://user@host/db), empty: the default SQLite file; "
                                 "reinfer: the API base URL.")
    project: str = Field("", title="Project", description="Project the comments go to (store default: exchange-sync).")
    source: str = Field("", title="Source", description="Source the comments go to (store default: mail).")
    owner: str = Field("", title="Bucket owner", description="reinfer_bucket: the bucket's owner (project).")
    bucket: str = Field("", title="Bucket", description="reinfer_bucket: the bucket's name.")
    password: SecretRefForm = Field(default_factory=SecretRefForm, title="Database password",
                                    description="store with PostgreSQL: where the database password lives.")
    token: SecretRefForm = Field(default_factory=SecretRefForm, title="API token",
                                 description="reinfer, reinfer_bucket: where the API token lives.")
    verify_tls: bool = Field(True, title="Verify TLS",
                             description="reinfer, reinfer_bucket: check the API's certificate.")
    ca_bundle: str = Field("", title="CA bundle",
                           description="reinfer, reinfer_bucket: PEM file of the API's CA; empty: system CAs.")
    allow_insecure_http: bool = Field(False, title="Allow plain http://",
                                      description="reinfer, reinfer_bucket: accept sending the token over "
                                                  "unencrypted http://.")


# Titles and descriptions of the flow's top-level parameters (Prefect titles them with the bare
# parameter name and takes no description from the signature): patched into the registered schema.
PARAMETERS: dict[str, tuple[str, str]] = {
    "integration": ("Integration name", "Name of the integration (its deployments, state and artifacts are keyed by it)."),
    "server_url": ("Exchange server URL", "EWS endpoint, e.g. https://mail.acme.com/EWS/Exchange.asmx."),
    "auth": ("Authentication", "ntlm or basic (username + password), or oauth2 (tenant_id, client_id and "
                               "client_secret under Other settings -> connection)."),
    "username": ("Username", "Service account, e.g. ACME\\svc-sync or svc-sync@acme.com (ntlm/basic)."),
    "password": ("Password", "Where the service account's password lives: a Prefect Secret block or an "
                             "environment variable of the worker (never the password itself)."),
    "access_type": ("Access type", "delegate: the account has rights on each mailbox; impersonation: the "
                                   "account has the ApplicationImpersonation role."),
    "tls": ("TLS", "How the connection to the Exchange server is secured."),
    "mailboxes": ("Mailboxes", "The mailboxes to sync. A custom run may list only some of them."),
    "destination": ("Destination", "Where the comments go."),
    "advanced": ("Other settings", "Every other setting of the configuration file (staging, state, concurrency, "
                                   "batch sizes, connection timeouts...), as written in the YAML file."),
    "mode": ("Mode", "incremental: changes since the last run; backfill: mail received between Start and End "
                     "(never moves the watermarks)."),
    "start": ("Backfill start", "Backfill runs: start of the received-time window (inclusive)."),
    "end": ("Backfill end", "Backfill runs: end of the received-time window (exclusive); empty: now."),
    "only_mailboxes": ("Only these mailboxes", "Email addresses: restrict this run to these mailboxes of the "
                                               "list above; empty: all enabled mailboxes."),
    "config": ("Configuration", "The whole integration configuration, as in the YAML file."),
    # The Graph form (exchange_sync.forms.graph): Exchange Online through Microsoft Graph.
    "tenant_id": ("Tenant ID", "Directory (tenant) ID of the Microsoft Entra tenant, e.g. "
                               "72f988bf-86f1-41af-91ab-2d7cd011db47."),
    "client_id": ("Application (client) ID", "Client ID of the app registration that has the Mail.Read "
                                             "application permission."),
    "client_secret": ("Client secret", "Where the app's client secret lives: a Prefect Secret block or an "
                                       "environment variable of the worker (never the secret itself). Leave "
                                       "empty when a certificate is used."),
    "certificate": ("Certificate", "Instead of a client secret: the app certificate's thumbprint and where "
                                   "its private key is. Leave the thumbprint empty when a client secret is used."),
    "graph_url": ("Graph endpoint", "Microsoft Graph base URL (national clouds have their own)."),
    "authority": ("Sign-in authority", "Microsoft Entra sign-in endpoint the token is requested from."),
    "duration_s": ("Stop after (seconds)", "Watch runs: stop after this many seconds; 0: until cancelled."),
}


def _ref_form(ref: dict | None) -> dict:
    ref = ref or {}
    return SecretRefForm(secret_block=ref.get("secret_block") or "", env=ref.get("env") or "").model_dump()


def _ref(form: SecretRefForm | dict) -> dict | None:
    form = SecretRefForm.model_validate(form)
    out = {k: v for k, v in form.model_dump().items() if v}
    return out or None


# Shared by the EWS and the Graph forms: TLS, mailboxes and the destination, both ways.

def tls_form(tls: dict | None) -> dict:
    tls = tls or {}
    return TlsForm(verify=tls.get("verify", True), ca_bundle=tls.get("ca_bundle") or "",
                   ciphers=tls.get("ciphers") or "", min_version=tls.get("min_version") or "default",
                   max_version=tls.get("max_version") or "default").model_dump()


def tls_data(tls: Any) -> dict[str, Any]:
    form = TlsForm.model_validate(tls)
    data: dict[str, Any] = {"verify": form.verify}
    for key in ("ca_bundle", "ciphers"):
        if getattr(form, key):
            data[key] = getattr(form, key)
    for key in ("min_version", "max_version"):
        if getattr(form, key) != "default":
            data[key] = getattr(form, key)
    return data


def mailbox_forms(mailboxes: list[dict]) -> list[dict]:
    out = []
    for m in mailboxes:
        m = dict(m)
        out.append(MailboxForm(
            email=m.pop("email"), enabled=m.pop("enabled", True),
            start_timestamp=(m.pop("start_timestamp", None) or "").replace("+00:00", "Z"),
            folder_allowlist=m.pop("folder_allowlist", None) or [],
            folder_denylist=m.pop("folder_denylist", None) or [],
            extra=m,
        ).model_dump())
    return out


def mailboxes_data(mailboxes: list) -> list[dict[str, Any]]:
    boxes = []
    for m in mailboxes:
        form = MailboxForm.model_validate(m)
        box: dict[str, Any] = {**form.extra, "email": form.email, "enabled": form.enabled,
                               "folder_denylist": form.folder_denylist}
        if form.start_timestamp:
            box["start_timestamp"] = form.start_timestamp
        if form.folder_allowlist:
            box["folder_allowlist"] = form.folder_allowlist
        boxes.append(box)
    return boxes


def destination_form(dest: dict) -> tuple[dict, dict]:
    """(the destination form, the fields the form does not know: kept under ``advanced``)."""
    dest = dict(dest)
    form = DestinationForm(
        kind=dest.pop("kind"), url=dest.pop("url", "") or "", project=dest.pop("project", "") or "",
        source=dest.pop("source", "") or "", owner=dest.pop("owner", "") or "", bucket=dest.pop("bucket", "") or "",
        password=_ref_form(dest.pop("password", None)),
        token=_ref_form(dest.pop("token", None)), verify_tls=dest.pop("verify_tls", True),
        ca_bundle=dest.pop("ca_bundle", None) or "", allow_insecure_http=dest.pop("allow_insecure_http", False),
    ).model_dump()
    return form, dest


def destination_data(destination: Any, base: dict | None) -> dict[str, Any]:
    form = DestinationForm.model_validate(destination)
    dest: dict[str, Any] = dict(base or {})
    dest["kind"] = form.kind
    # Only the fields of the chosen kind: the form keeps the others (e.g. project/source when the kind
    # is switched to a bucket) and the configuration refuses fields its kind does not have.
    keys = {"store": ("url", "project", "source"), "reinfer": ("url", "project", "source", "ca_bundle"),
            "reinfer_bucket": ("url", "owner", "bucket", "ca_bundle")}[form.kind]
    for key in keys:
        if getattr(form, key):
            dest[key] = getattr(form, key)
    if form.kind == "store":
        if _ref(form.password):
            dest["password"] = _ref(form.password)
    else:
        if _ref(form.token):
            dest["token"] = _ref(form.token)
        dest["verify_tls"] = form.verify_tls
        dest["allow_insecure_http"] = form.allow_insecure_http
    return dest


def common_parameters(full: dict[str, Any]) -> dict[str, Any]:
    """Mailboxes, destination and ``advanced`` from a configuration's JSON (``full`` minus its
    connection, consumed); unknown destination fields stay under ``advanced`` rather than being lost."""
    params: dict[str, Any] = {"mailboxes": mailbox_forms(full.pop("mailboxes"))}
    params["destination"], leftover = destination_form(full.pop("destination"))
    if leftover:
        full["destination"] = leftover
    params["advanced"] = full
    return params


def config_parameter(config: IntegrationConfig) -> dict[str, Any]:
    """The configuration as a JSON parameter: only what differs from the defaults, so the UI shows
    what the file says and a later default change reaches deployed integrations."""
    data = config.model_dump(mode="json", exclude_defaults=True, exclude_none=True) | {"name": config.name}
    # The union discriminators must be explicit: the server validates parameters against the JSON
    # schema, where {url: ...} alone matches several destination kinds (oneOf fails). Where the
    # data goes is worth showing in the UI anyway, defaults included.
    data["connection"] = {"kind": config.connection.kind, **data.get("connection", {})}
    for key in ("destination", "staging", "state"):
        data[key] = getattr(config, key).model_dump(mode="json", exclude_none=True)
    return data


def form_parameters(config: IntegrationConfig) -> dict[str, Any]:
    """The configuration as the form flow's parameters (JSON): EWS here, Graph in ``forms.graph``."""
    if config.connection.kind == "graph":
        from exchange_sync.forms.graph import graph_form_parameters

        return graph_form_parameters(config)
    full = config_parameter(config)
    conn = dict(full.pop("connection"))
    conn.pop("kind", None)
    params: dict[str, Any] = {
        "integration": full.pop("name"),
        "server_url": conn.pop("server_url"),
        "auth": conn.pop("auth", "ntlm"),
        "username": conn.pop("username", None) or "",
        "password": _ref_form(conn.pop("password", None)),
        "access_type": conn.pop("access_type"),
        "tls": tls_form(conn.pop("tls", None)),
    }
    if conn:
        full["connection"] = conn
    params.update(common_parameters(full))
    return params


def assemble(integration: str, conn: dict[str, Any], mailboxes: list, destination: Any,
             advanced: dict | None) -> IntegrationConfig:
    """A form's values back into an ``IntegrationConfig``: ``conn`` (the form's connection fields)
    over ``advanced.connection`` (the other connection settings of the file)."""
    data = copy.deepcopy(dict(advanced or {}))
    connection = {**dict(data.pop("connection", None) or {}), **conn}
    dest = destination_data(destination, data.pop("destination", None))
    data.update(name=integration, connection=connection, mailboxes=mailboxes_data(mailboxes), destination=dest)
    return parse_config(data)


def form_to_config(integration: str, server_url: str, auth: str, username: str, password: Any, access_type: str,
                   tls: Any, mailboxes: list, destination: Any, advanced: dict | None) -> IntegrationConfig:
    """The EWS form's values back into an ``IntegrationConfig`` (``ConfigError`` naming the field)."""
    conn: dict[str, Any] = {"kind": "ews", "server_url": server_url, "auth": auth, "access_type": access_type,
                            "tls": tls_data(tls)}
    if username:
        conn["username"] = username
    pw = _ref(password)
    if pw:
        conn["password"] = pw
    return assemble(integration, conn, mailboxes, destination, advanced)


__all__ = ["ConfigError", "DestinationForm", "MailboxForm", "SecretRefForm", "TlsForm", "config_parameter",
           "form_parameters", "form_to_config"]


def config_from_parameters(parameters: dict) -> IntegrationConfig:
    """A deployment's (or flow run's) parameters -> its configuration, whichever flow they are for
    (the ``config`` flow, the EWS form, the Graph form; poll, backfill or watch deployments)."""
    parameters = parameters or {}
    if "config" in parameters:
        return parse_config(parameters["config"])
    if "tenant_id" in parameters:
        from exchange_sync.forms.graph import graph_config_from_parameters

        return graph_config_from_parameters(parameters)
    defaults = {"auth": "ntlm", "username": "", "password": {}, "tls": {}, "destination": {}, "advanced": {}}
    values = {**defaults, **{k: v for k, v in parameters.items() if k in PARAMETERS}}
    missing = [k for k in ("integration", "server_url", "access_type", "mailboxes") if k not in values]
    if missing:
        raise ConfigError(f"parameters lack {', '.join(missing)}")
    return form_to_config(values["integration"], values["server_url"], values["auth"], values["username"],
                          values["password"], values["access_type"], values["tls"], values["mailboxes"],
                          values["destination"], values["advanced"])
