"""Integration configuration: one pydantic model = the flow's parameters = a YAML file.

Everything is validated before any network call; a bad value fails with a message that names
the field (``connection.access_type: ...``). Secrets are never literals: a secret field holds a
*reference* (an environment variable name or a Prefect Secret block name) that is resolved at run
time, so the configuration itself can be logged, stored as flow-run parameters and shown in the UI.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TlsVersion = Literal["1.0", "1.1", "1.2", "1.3"]

DEFAULT_STORE_URL = "sqlite:///./.exchange-sync/comments.db"
DEFAULT_STATE_URL = "sqlite:///./.exchange-sync/state.db"
DEFAULT_STAGING_URL = "./.exchange-sync/staging"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field(s)."""


class SecretResolutionError(RuntimeError):
    """A secret reference could not be resolved (the message names the reference, never a value)."""

    reason = "secret_unavailable"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Model):
    """Where a secret lives: ``{env: NAME}`` or ``{secret_block: NAME}`` (exactly one)."""

    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    secret_block: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")

    @model_validator(mode="before")
    @classmethod
    def _no_literals(cls, value: Any) -> Any:
        if isinstance(value, (str, bytes, int, float)):
            raise ValueError(
                "literal secrets are not allowed here: use {env: VARIABLE_NAME} or {secret_block: BLOCK_NAME}"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> "SecretRef":
        if (self.env is None) == (self.secret_block is None):
            raise ValueError("give exactly one of 'env' or 'secret_block'")
        return self

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"Prefect Secret block {self.secret_block!r}"

    def resolve(self) -> SecretStr:
        """The secret's value, wrapped so that repr/str/logging never show it."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise SecretResolutionError(f"{self.describe()} is not set or empty")
            return SecretStr(value)
        try:
            from prefect.blocks.system import Secret
        except ImportError as exc:  # pragma: no cover - prefect is a hard dependency
            raise SecretResolutionError(f"cannot load {self.describe()}: prefect is not installed") from exc
        try:
            block = Secret.load(self.secret_block)
        except Exception as exc:
            # The block name is safe to show; the underlying error is not (it might quote a value).
            raise SecretResolutionError(f"cannot load {self.describe()}: {type(exc).__name__}") from None
        value = block.get()
        if not isinstance(value, str) or not value:
            raise SecretResolutionError(f"{self.describe()} does not hold a non-empty string")
        return SecretStr(value)


class DatabaseUrl(str):
    """A database URL without its password (what the configuration, Prefect's parameters and the UI
    show), carrying the reference of the password next to it (``password_ref``). The store engine
    resolves the reference when it connects (``exchange_sync.store.engine``), so every
    ``SqlStore(config.state.url)`` gets the password without it ever being part of the text."""

    password_ref: "SecretRef | None" = None

    def __new__(cls, value: str, password_ref: "SecretRef | None" = None) -> "DatabaseUrl":
        obj = super().__new__(cls, value)
        obj.password_ref = password_ref
        return obj

    def __reduce__(self):  # pickling (Dask workers, Prefect's parameter copies) keeps the reference
        return (DatabaseUrl, (str(self), self.password_ref))


def _check_database_url(value: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        url = make_url(value)
    except Exception:  # noqa: BLE001 - sqlalchemy's ArgumentError: not a URL
        raise ValueError("not a database URL: use sqlite:///path/file.db or postgresql+psycopg://user@host/db") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {url.get_backend_name()!r}: use sqlite:/// or postgresql+psycopg://")
    if url.password is not None:
        # Never in the text: the configuration is the flow's parameters, stored and shown by Prefect.
        raise ValueError("a password in the database URL is not allowed: remove it from the URL and add "
                         "password: {env: VARIABLE_NAME} or password: {secret_block: BLOCK_NAME}")
    return value


def _is_loopback_url(value: str) -> bool:
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(value).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_cleartext(url: str, allowed: bool, what: str) -> None:
    if url.lower().startswith("http://") and not allowed and not _is_loopback_url(url):
        raise ValueError(f"{what} over plain http:// would cross the network unencrypted: use https://, or set "
                         "allow_insecure_http: true if you accept that")


class TlsConfig(_Model):
    verify: bool = True
    ca_bundle: Path | None = None
    ciphers: str | None = Field(
        default=None,
        description="OpenSSL cipher string. Restricts TLS <= 1.2 suites only; set max_version: '1.2' to enforce it.",
    )
    min_version: TlsVersion | None = None
    max_version: TlsVersion | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "TlsConfig":
        if self.min_version and self.max_version and float(self.min_version) > float(self.max_version):
            raise ValueError(f"min_version {self.min_version} is above max_version {self.max_version}")
        if self.ca_bundle is not None and not self.verify:
            raise ValueError("ca_bundle is set but verify is false: the bundle would be ignored")
        return self


class EwsConnection(_Model):
    kind: Literal["ews"] = "ews"
    server_url: str = Field(description="EWS endpoint, e.g. https://mail.acme.com/EWS/Exchange.asmx")
    auth: Literal["ntlm", "basic", "oauth2"] = "ntlm"
    username: str | None = None
    password: SecretRef | None = None
    # Required on purpose: exchangelib silently defaults to impersonation when credentials are
    # given through Configuration, which fails (or worse, works with too many rights) surprisingly.
    access_type: Literal["delegate", "impersonation"]
    exchange_version: str | None = Field(
        default=None, description="e.g. Exchange2016; guessed from the server when absent"
    )
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretRef | None = None
    authority: str = "https://login.microsoftonline.com"
    tls: TlsConfig = TlsConfig()
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    # Fault handling of the extractor (exchange_sync.source): a server back-off (ErrorServerBusy
    # BackOffMilliseconds, 503 Retry-After) longer than max_backoff_s, or more than max_backoff_s of
    # waiting in total for one request, fails with server_unavailable instead of waiting (exchangelib
    # alone would wait up to an hour). retry_attempts bounds our retries of idempotent reads after
    # dropped connections, timeouts and ErrorExceededConnectionCount.
    max_backoff_s: float = Field(default=300.0, gt=0, le=3600)
    retry_attempts: int = Field(default=5, ge=1, le=20)
    # http:// to anything but a loopback address sends the credentials (Basic: the password itself)
    # and the mail in clear: refused unless written out.
    allow_insecure_http: bool = False

    @field_validator("server_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL, e.g. https://mail.acme.com/EWS/Exchange.asmx")
        return value

    @model_validator(mode="after")
    def _auth_fields(self) -> "EwsConnection":
        if self.auth in ("ntlm", "basic"):
            missing = [f for f in ("username", "password") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"auth {self.auth} needs {' and '.join(missing)}")
        else:
            missing = [f for f in ("tenant_id", "client_id", "client_secret") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"auth oauth2 needs {', '.join(missing)}")
        _check_cleartext(self.server_url, self.allow_insecure_http, f"auth {self.auth}")
        return self

    @property
    def host(self) -> str:
        """The server's host[:port] (what messages name; never a userinfo part)."""
        return _host(self.server_url)

    @property
    def server_key(self) -> str:
        """A stable, readable name for the server (used for per-server concurrency limits)."""
        return "ews-" + re.sub(r"[^a-z0-9]+", "-", self.host.lower()).strip("-")


class GraphCertificate(_Model):
    """An app certificate for OAuth2 client credentials: the private key (PEM) and the certificate's
    SHA-1 thumbprint as shown in the app registration. The key comes from a file or a secret reference."""

    thumbprint: str = Field(pattern=r"^[0-9A-Fa-f:]{40,59}$")
    path: Path | None = Field(default=None, description="PEM file holding the private key")
    private_key: SecretRef | None = Field(default=None, description="a secret holding the PEM private key")

    @model_validator(mode="after")
    def _one_key(self) -> "GraphCertificate":
        if (self.path is None) == (self.private_key is None):
            raise ValueError("give exactly one of 'path' or 'private_key'")
        return self


class GraphConnection(_Model):
    """Exchange Online through Microsoft Graph (OAuth2 client credentials, per-folder delta queries)."""

    kind: Literal["graph"] = "graph"
    tenant_id: str = Field(min_length=1)
    client_id: str = Field(min_length=1)
    client_secret: SecretRef | None = None
    certificate: GraphCertificate | None = None
    graph_url: str = "https://graph.microsoft.com/v1.0"
    authority: str = "https://login.microsoftonline.com"
    tls: TlsConfig = TlsConfig()
    timeout_s: float = Field(default=120.0, gt=0, le=3600)
    # As for EWS: a Retry-After longer than max_backoff_s, or more than max_backoff_s of waiting in total
    # for one call, fails with server_unavailable; retry_attempts bounds retries after dropped connections.
    max_backoff_s: float = Field(default=300.0, gt=0, le=3600)
    retry_attempts: int = Field(default=5, ge=1, le=20)

    @field_validator("graph_url", "authority")
    @classmethod
    def _https(cls, value: str) -> str:
        if not re.match(r"^https://[^/\s]+", value):
            raise ValueError("must be an https URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _credential(self) -> "GraphConnection":
        if (self.client_secret is None) == (self.certificate is None):
            raise ValueError("give exactly one of client_secret or certificate")
        return self

    @property
    def host(self) -> str:
        return _host(self.graph_url)

    @property
    def server_key(self) -> str:
        """A stable, readable name for the Graph endpoint + tenant (per-server concurrency limits)."""
        return "graph-" + re.sub(r"[^a-z0-9]+", "-", f"{self.host}-{self.tenant_id}".lower()).strip("-")


def _host(url: str) -> str:
    return re.sub(r"^https?://", "", url).split("/")[0].rsplit("@", 1)[-1]


Connection = Annotated[EwsConnection | GraphConnection, Field(discriminator="kind")]


class AttachmentsConfig(_Model):
    """Attachment content, opt-in per mailbox (docs/destinations.md, "Attachment content"): file
    attachments are taken from the MIME already fetched and stored content-addressed (sha256) next to
    staging; the comment's attachment entries then carry the reference. Off: nothing is stored and
    comments are exactly as without this block."""

    sync: bool = False
    max_bytes: int = Field(default=25 * 1024 * 1024, ge=1, le=150 * 1024 * 1024,
                           description="per attachment; larger ones are listed but not stored")
    content_types: list[str] = Field(
        default_factory=lambda: ["*/*"],
        description="allow-list of media types, wildcards like image/* or */*")
    include_inline: bool = Field(default=False, description="also store inline parts (cid: images of an HTML body)")
    item_attachments: Literal["eml", "skip"] = Field(
        default="eml", description="attached messages (message/rfc822): stored as .eml, or skipped")

    @field_validator("content_types", mode="before")
    @classmethod
    def _types(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError("expected a list, e.g. [application/pdf, image/*] (a single string is not a list)")
        if not isinstance(value, (list, tuple)):
            return value
        out: list[str] = []
        for entry in value:
            item = str(entry).strip().lower()
            if not re.match(r"^(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$", item) or item.startswith("*/") and item != "*/*":
                raise ValueError(f"{entry!r} is not a media type pattern (type/subtype, type/* or */*)")
            if item not in out:
                out.append(item)
        return out


class MailboxConfig(_Model):
    email: str
    enabled: bool = True
    start_timestamp: datetime | None = None
    folder_allowlist: list[str] | None = Field(
        default=None, description="folder paths to sync (with their sub-folders); all mail folders when absent"
    )
    folder_denylist: list[str] = Field(default_factory=list, description="folder paths to skip (with sub-folders)")
    participant_allowlist: list[str] = Field(
        default_factory=list,
        description="only mail with one of these addresses in From, Sender, To or Cc (case-insensitive); "
        "with participant_domain_allowlist: either list admits",
    )
    participant_denylist: list[str] = Field(
        default_factory=list,
        description="never mail with one of these addresses in From, Sender, To or Cc; wins over the allowlists",
    )
    participant_domain_allowlist: list[str] = Field(
        default_factory=list,
        description="only mail with a participant in one of these domains or their subdomains",
    )
    participant_domain_denylist: list[str] = Field(
        default_factory=list,
        description="never mail with a participant in one of these domains or their subdomains; wins over the allowlists",
    )
    attachments: AttachmentsConfig = Field(
        default_factory=AttachmentsConfig,
        description="attachment content: {sync: true, max_bytes, content_types, include_inline, item_attachments}",
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if not _EMAIL_RE.match(value):
            raise ValueError(f"{value!r} is not an email address")
        return value.lower()

    @field_validator("start_timestamp")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            # A naive time in a config is ambiguous across worker time zones: read it as UTC, as documented.
            value = value.replace(tzinfo=timezone.utc)
        return value

    @field_validator("folder_allowlist", "folder_denylist")
    @classmethod
    def _paths(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return [normalise_folder_path(p) for p in value]

    @field_validator("participant_allowlist", "participant_denylist", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        from exchange_sync.pipeline.filters import normalise_address

        return _normalised_list(value, normalise_address)

    @field_validator("participant_domain_allowlist", "participant_domain_denylist", mode="before")
    @classmethod
    def _domains(cls, value: Any) -> Any:
        from exchange_sync.pipeline.filters import normalise_domain

        return _normalised_list(value, normalise_domain)


def _normalised_list(value: Any, normalise: Any) -> Any:
    """A list of strings, each normalised, duplicates dropped (order kept); null = empty."""
    if value is None:
        return []
    if isinstance(value, str):
        raise ValueError("expected a list, e.g. [a@acme.com] (a single string is not a list)")
    if not isinstance(value, (list, tuple)):
        return value  # pydantic reports the type
    out: list[str] = []
    for entry in value:
        item = normalise(entry)
        if item not in out:
            out.append(item)
    return out


def normalise_folder_path(path: str) -> str:
    parts = [p.strip() for p in path.replace("\\", "/").split("/") if p.strip()]
    if not parts:
        raise ValueError("empty folder path")
    return "/".join(parts)


_SOURCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class _DatabaseConfig(_Model):
    """``url`` without a password, and the password as a secret reference (PostgreSQL)."""

    url: str = DEFAULT_STATE_URL
    password: SecretRef | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_database_url(value)

    @model_validator(mode="after")
    def _attach_password(self) -> "_DatabaseConfig":
        if self.password is not None and not self.url.startswith("postgresql"):
            raise ValueError("password applies to PostgreSQL URLs only")
        object.__setattr__(self, "url", DatabaseUrl(str(self.url), self.password))
        return self


class StoreDestination(_DatabaseConfig):
    kind: Literal["store"] = "store"
    url: str = DEFAULT_STORE_URL
    # Comments live under "<project>/<source>", the key the comments API serves them at
    # (/api/v1/sources/<project>/<source>/...), as in the public API.
    project: str = Field(default="exchange-sync", pattern=_SOURCE_NAME)
    source: str = Field(default="mail", pattern=_SOURCE_NAME)

    @property
    def source_key(self) -> str:
        return f"{self.project}/{self.source}"


class ReinferDestination(_Model):
    kind: Literal["reinfer"] = "reinfer"
    url: str = Field(description="API base URL, e.g. https://cloud.uipath.com/org/tenant/reinfer_")
    project: str
    source: str
    token: SecretRef
    verify_tls: bool = True
    ca_bundle: Path | None = None
    allow_insecure_http: bool = False

    @model_validator(mode="after")
    def _cleartext(self) -> "ReinferDestination":
        _check_cleartext(self.url, self.allow_insecure_http, "the Re:infer API token")
        return self


class ReinferBucketDestination(_Model):
    """Raw emails and their metadata into a Re:infer bucket, as the hosted integration loads them
    (``PUT /api/_private/buckets/<owner>/<bucket>/emails``; docs/destinations.md)."""

    kind: Literal["reinfer_bucket"] = "reinfer_bucket"
    url: str = Field(description="API base URL, e.g. https://cloud.uipath.com/org/tenant/reinfer_")
    owner: str = Field(pattern=r"^[A-Za-z0-9_-]{1,256}$", description="the bucket's owner (project)")
    bucket: str = Field(pattern=r"^[A-Za-z0-9_-]{1,256}$", description="the bucket's name")
    token: SecretRef
    verify_tls: bool = True
    ca_bundle: Path | None = None
    allow_insecure_http: bool = False

    @model_validator(mode="after")
    def _cleartext(self) -> "ReinferBucketDestination":
        _check_cleartext(self.url, self.allow_insecure_http, "the Re:infer API token")
        return self


DestinationConfig = Annotated[StoreDestination | ReinferDestination | ReinferBucketDestination,
                             Field(discriminator="kind")]


class StagingConfig(_Model):
    url: str = DEFAULT_STAGING_URL
    # Staged batches (raw MIME) are kept this many days for `exchange-sync replay`, then removed at
    # the end of a run; None keeps them forever (staging then grows with every synced message).
    keep_days: float | None = Field(default=7, ge=0)


class StateConfig(_DatabaseConfig):
    url: str = DEFAULT_STATE_URL


class ConcurrencyConfig(_Model):
    mailboxes: int = Field(default=4, ge=1, le=64, description="mailboxes synced in parallel")
    connections_per_server: int = Field(
        default=4, ge=1, le=27, description="HTTP connections to one Exchange server (EWS default budget is 27)"
    )


class TaskRunnerConfig(_Model):
    """Where mailbox syncs run: threads in the flow's process (default) or a Dask cluster (scale-out)."""

    kind: Literal["threads", "dask"] = "threads"
    address: str | None = Field(
        default=None, description="Dask scheduler address (tcp://host:8786); needs the 'dask' extra"
    )

    @model_validator(mode="after")
    def _address(self) -> "TaskRunnerConfig":
        if self.kind == "dask" and not self.address:
            raise ValueError("kind dask needs the scheduler address (address: tcp://host:8786)")
        return self


class WatchConfig(_Model):
    """``exchange-sync watch``: real-time sync (docs/watch.md). Events are hints that trigger the same
    folder sync as scheduled runs; these settings only say how changes are noticed."""

    enabled: bool = Field(default=False, description="exchange-sync deploy creates a <name>-watch deployment "
                          "next to the scheduled poll (docs/operations.md)")
    # auto: streaming notifications, else pull notifications, else polling (per mailbox, reported).
    mode: Literal["auto", "streaming", "pull", "poll"] = "auto"
    poll_interval_s: float = Field(default=60, ge=1, le=86400, description="fallback polling interval")
    graph_interval_s: float = Field(default=30, ge=1, le=3600, description="Graph delta polling interval")
    graph_requests_per_minute: int = Field(
        default=30, ge=1, le=10000, description="Graph requests one mailbox's polling may send per minute")
    debounce_s: float = Field(default=0.5, ge=0, le=60, description="events coalesced into one sync this long")
    connection_timeout_min: int = Field(default=30, ge=1, le=30, description="GetStreamingEvents ConnectionTimeout")
    mailboxes_per_connection: int = Field(default=200, ge=1, le=200, description="subscriptions per streaming connection")
    pull_interval_s: float = Field(default=10, ge=1, le=3600, description="GetEvents cadence of pull subscriptions")
    resubscribe_max_backoff_s: float = Field(default=300, ge=1, le=3600)
    lease_ttl_s: float = Field(default=60, ge=5, le=3600, description="a mailbox lease expires this long after "
                               "its holder stopped renewing it (crash)")
    lease_wait_s: float = Field(default=30, ge=0, le=3600, description="how long a scheduled run waits for a "
                                "mailbox another writer syncs before skipping it as busy")


class IntegrationConfig(_Model):
    name: str
    connection: Connection
    mailboxes: list[MailboxConfig] = Field(min_length=1)
    destination: DestinationConfig = StoreDestination()
    staging: StagingConfig = StagingConfig()
    state: StateConfig = StateConfig()
    batch_size: int = Field(default=512, ge=1, le=512, description="SyncFolderItems MaxChangesReturned")
    fetch_chunk_size: int = Field(default=64, ge=1, le=512, description="items per GetItem request")
    concurrency: ConcurrencyConfig = ConcurrencyConfig()
    # Performance (docs/performance.md). Folder lists are cached in the checkpoint database and
    # rediscovered after this many minutes (0 = every run), or at once when a cached folder is gone.
    folder_refresh_minutes: float = Field(default=60, ge=0, le=7 * 24 * 60)
    # Processes that transform staged pages while the mailbox threads extract and load the next
    # ones; 0 transforms in the mailbox's own thread. None = automatic (CPUs - 1, at least 2, at most 4; 0 on 1 CPU).
    transform_workers: int | None = Field(default=None, ge=0, le=64)
    task_runner: TaskRunnerConfig = TaskRunnerConfig()
    # A mailbox that fails for the same reason this many runs in a row is disabled (skipped by
    # later runs until `exchange-sync enable`); 0 never disables. Credentials errors are not
    # counted here: they concern the whole integration (its deployment is paused instead).
    disable_after_failures: int = Field(default=3, ge=0, le=1000)
    watch: WatchConfig = WatchConfig()
    # Where `exchange-sync api` serves this integration's comments (its page at "/"); the run's report
    # artifact in Prefect then links the comments of this run's source.
    comments_page_url: str | None = Field(
        default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="Base URL of the comments page (exchange-sync api), e.g. https://sync.acme.com:8000")

    @model_validator(mode="before")
    @classmethod
    def _default_kinds(cls, data: Any) -> Any:
        # `kind` may be omitted where there is a default (ews, store); the discriminated unions need it.
        if isinstance(data, dict):
            data = dict(data)
            for key, default in (("connection", "ews"), ("destination", "store")):
                if isinstance(data.get(key), dict) and "kind" not in data[key]:
                    data[key] = {**data[key], "kind": default}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("must be lowercase letters, digits, '-' or '_' (at most 63), starting with a letter or digit")
        return value

    @field_validator("mailboxes")
    @classmethod
    def _unique(cls, value: list[MailboxConfig]) -> list[MailboxConfig]:
        seen: set[str] = set()
        for mb in value:
            if mb.email in seen:
                raise ValueError(f"mailbox {mb.email} is listed twice")
            seen.add(mb.email)
        return value

    @property
    def enabled_mailboxes(self) -> list[MailboxConfig]:
        return [m for m in self.mailboxes if m.enabled]


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the field path (``mailboxes.0.email: ...``)."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in ("ews", "graph", "store", "reinfer", "reinfer_bucket")))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc or '<config>'}: {msg}")
    return "\n".join(lines)


def parse_config(data: Any) -> IntegrationConfig:
    try:
        return IntegrationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("invalid configuration:\n" + format_validation_error(exc)) from None


def load_config(path: str | Path) -> IntegrationConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}, line {line}): save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping")
    return parse_config(data)


def secret_refs(config: IntegrationConfig) -> list[tuple[str, SecretRef]]:
    """Every secret reference of a configuration, with its field path."""
    found: list[tuple[str, SecretRef]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, SecretRef):
            found.append((path, value))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), f"{path}.{name}" if path else name)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, f"{path}.{index}")

    walk(config, "")
    return found


def check_runnable(config: IntegrationConfig) -> None:
    """What can be known wrong on this machine before a run starts (``ConfigError``, exit status 2):
    secrets from unset environment variables, an unreadable CA bundle, a cipher string OpenSSL
    refuses. (Secret blocks are resolved by the run: they need the Prefect server.)"""
    import ssl

    problems = []
    for path, ref in secret_refs(config):
        if ref.env is not None and not os.environ.get(ref.env):
            problems.append(f"{path}: environment variable {ref.env} is not set or empty")
    tls_configs = [("connection.tls", config.connection.tls)]
    for where, tls in tls_configs:
        if tls.ca_bundle is not None:
            try:
                ssl.create_default_context(cafile=str(tls.ca_bundle))
            except (OSError, ssl.SSLError) as exc:
                reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
                problems.append(f"{where}.ca_bundle: cannot load {str(tls.ca_bundle)!r}: {reason}")
        if tls.ciphers:
            try:
                ssl.create_default_context().set_ciphers(tls.ciphers)
            except ssl.SSLError:
                problems.append(f"{where}.ciphers: OpenSSL accepts no cipher in {tls.ciphers!r}")
    destination = config.destination
    if isinstance(destination, (ReinferDestination, ReinferBucketDestination)) and destination.ca_bundle is not None:
        if not destination.ca_bundle.is_file():
            problems.append(f"destination.ca_bundle: no such file {str(destination.ca_bundle)!r}")
    if problems:
        raise ConfigError("; ".join(problems))
