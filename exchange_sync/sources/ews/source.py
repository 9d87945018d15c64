"""EwsSource (one per integration/server) and MailboxSession (one per mailbox): the extraction API.

Request counts (no exchange_version configured adds one ConvertId per EwsSource for the version probe):
- ``mail_folders``: 1 GetFolder (msgfolderroot + the well-known ids this server version knows, one
  request; on the first contact with a server, a 2nd GetFolder for the post-2007 ids once its
  ServerVersionInfo is known) + 1 FindFolder Deep per 500 folders.
- ``sync_pages``: exactly 1 SyncFolderItems per page (a no-change poll is one request per folder).
- ``fetch``: ceil(len(refs) / chunk_size) GetItem, up to ``max_connections`` in flight.
- ``find_range``: 1 FindItem per page.
Retries add requests only when the server fails (see retry.py / protocol.py).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import pyarrow as pa
import pybase64
from exchangelib import BASIC, DELEGATE, IMPERSONATION, NTLM, OAUTH2, Account, Configuration, Credentials
from exchangelib import errors as ews_errors
from exchangelib.credentials import OAuth2Credentials
from exchangelib.ewsdatetime import UTC
from exchangelib.version import VERSIONS, Build, Version
from pydantic import SecretStr

from ...config import EwsConnection, IntegrationConfig
from .. import redact
from ..errors import MailboxAccessDenied, ServerRejectedRequest, SourceConfigError, SourceError
from ..folders import WELL_KNOWN_2007, RawFolder, build_folder_infos, select_mail_folders, well_known_for
from ..models import STAGED_SCHEMA, FetchResult, FolderInfo, ItemRef, Participants, SyncPage, size_chunks
from ..tls import build_ssl_context, make_adapter_class, requests_verify, warn_unverified
from .errors import map_exception
from ..base import ServerInfoStore
from .protocol import BoundedFaultTolerance, make_protocol_class, new_protocol
from .retry import call_with_retry
from .version_cache import cached_version, remember_version
from .services import (
    RawFindFolder,
    RawFindItem,
    RawGetFolder,
    RawGetItem,
    RawSyncFolderItems,
    child_text,
    distinguished_folder_elem,
    folder_id_elem,
    parse_ews_datetime,
    t,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

# Cheap per-item fields; never let exchangelib choose (its defaults include MimeContent and bodies).
REF_FIELDS = ("item:DateTimeReceived", "message:InternetMessageId", "item:Size", "item:ConversationId")
FETCH_FIELDS = ("item:MimeContent",) + REF_FIELDS
# Only when the mailbox has a participant filter, before the MIME: SyncFolderItems and FindItem cannot
# return recipient collections (Microsoft: "You cannot get CcRecipients by using a FindItem request. Use a
# GetItem request"; SyncFolderItems "is similar to the FindItem operation"), so one small GetItem per chunk.
PARTICIPANT_FIELDS = ("message:From", "message:Sender", "message:ToRecipients", "message:CcRecipients")
FOLDER_FIELDS = ("folder:DisplayName", "folder:FolderClass", "folder:ParentFolderId", "folder:TotalCount")
FIND_FOLDER_PAGE = 500
# A GetItem answer carries its items' MIME base64-encoded (4/3 of Size) and is parsed whole: requests are
# cut at this many bytes of the sizes SyncFolderItems/FindItem reported, whatever fetch_chunk_size says.
GETITEM_MAX_BYTES = 8 * 1024 * 1024


class _AuthorityOAuth2Credentials(OAuth2Credentials):
    """OAuth2 client credentials with a configurable authority (sovereign clouds, or a test token server)."""

    def __init__(self, *args: Any, authority: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._authority = authority.rstrip("/")

    @property
    def token_url(self) -> str:
        return f"{self._authority}/{self.tenant_id}/oauth2/v2.0/token"


def _version_from_name(name: str) -> Version:
    for build, api_version, _ in VERSIONS:
        if api_version.casefold() == name.casefold():
            return Version(build=build, api_version=api_version)
    known = sorted({v for _, v, _ in VERSIONS})
    raise SourceConfigError(f"connection.exchange_version {name!r} is not one of {', '.join(known)}")


class EwsSource:
    """Connection to one EWS endpoint with one set of credentials. Thread-safe; a context manager.

    ``secret`` is the password (ntlm/basic) or the client secret (oauth2); when None it is resolved from
    ``connection.password`` / ``connection.client_secret``. ``max_connections`` caps the HTTP connections
    (exchangelib sessions) this source opens to the server, across all its mailboxes and threads.
    """

    def __init__(
        self,
        connection: EwsConnection,
        secret: SecretStr | None,
        *,
        max_connections: int = 4,
        fetch_chunk_size: int = 64,
        version_hint: str | None = None,
        build_hint: str | None = None,
    ) -> None:
        if max_connections < 1:
            raise SourceConfigError("max_connections must be >= 1")
        if fetch_chunk_size < 1:
            raise SourceConfigError("fetch_chunk_size must be >= 1")
        self.connection = connection
        self.max_connections = max_connections
        self.fetch_chunk_size = fetch_chunk_size
        self.server = connection.host
        if secret is None:
            ref = connection.client_secret if connection.auth == "oauth2" else connection.password
            if ref is None:
                raise SourceConfigError(f"auth {connection.auth} needs a secret")
            secret = ref.resolve()
        secret_value = secret.get_secret_value()
        redact.protect(self, connection.username, secret_value)

        if connection.auth == "oauth2":
            credentials: Any = _AuthorityOAuth2Credentials(
                client_id=connection.client_id,
                client_secret=secret_value,
                tenant_id=connection.tenant_id,
                authority=connection.authority,
            )
            auth_type = OAUTH2
        else:
            credentials = Credentials(username=connection.username, password=secret_value)
            auth_type = NTLM if connection.auth == "ntlm" else BASIC
        del secret_value

        # A configured exchange_version wins; else a version learnt by an earlier run (``version_hint`` and
        # the build the server reported then, see version_cache) saves exchangelib's ConvertId probe;
        # else exchangelib probes once.
        self.version = _version_from_name(connection.exchange_version) if connection.exchange_version else None
        hinted_build = None
        if self.version is None and version_hint:
            try:
                self.version = _version_from_name(version_hint)
                hinted_build = Build(*(int(p) for p in build_hint.split("."))) if build_hint else None
            except (SourceConfigError, ValueError, TypeError):
                self.version = None  # a hint from another exchangelib version: probe instead
        self.retry_policy = BoundedFaultTolerance(max_wait=connection.max_backoff_s)
        self._config = Configuration(
            credentials=credentials,
            service_endpoint=connection.server_url,
            auth_type=auth_type,
            version=self.version,
            retry_policy=self.retry_policy,
            max_connections=max_connections,
        )
        ctx = build_ssl_context(connection.tls)
        if not connection.tls.verify:
            warn_unverified(self.server, log)
        protocol_cls = make_protocol_class(
            adapter_cls=make_adapter_class(ctx),
            verify=requests_verify(connection.tls),
            timeout_s=connection.timeout_s,
            # First wait of exchangelib's doubling back-off when the server gives no hint.
            retry_wait_s=min(10.0, max(0.5, connection.max_backoff_s / 8)),
        )
        self.protocol = new_protocol(protocol_cls, self._config)
        if hinted_build is not None and self.version is not None:
            # What this server reported to an earlier run (re-probed when the cache entry ages out).
            self.protocol.reported_version = Version(build=hinted_build, api_version=self.version.api_version)
        # exchangelib's probe (no configured or cached version) reads the server's own ServerVersionInfo.
        self._probed = self.version is None
        self._closed = False
        self._lock = threading.Lock()
        # SyncFolderItems of a folder's next page, started while the current page's items are
        # fetched (see MailboxSession.sync_pages); keyed by (mailbox, folder id, state, page size).
        self._ahead: dict[tuple[str, str, str, int], Future] = {}
        self._ahead_pool: ThreadPoolExecutor | None = None
        # Optional DistinguishedFolderIds this server refused although its version should know them.
        self._refused_well_known: set[str] = set()
        self._remember: Callable[[], None] | None = None  # set by from_config: keep the learnt version

    @classmethod
    def from_config(cls, config: IntegrationConfig, server_info: ServerInfoStore | None = None, *,
                    max_connections: int | None = None, remember: bool = True) -> "EwsSource":
        """The source of ``config`` (the secret resolved now). With ``server_info``, the version an earlier run
        learnt replaces exchangelib's probe, and ``close`` stores what this run learnt (unless ``remember``
        is False)."""
        conn = config.connection
        assert isinstance(conn, EwsConnection)
        hint = cached_version(server_info, config.name, conn) if server_info is not None else None
        source = cls(conn, None, max_connections=max_connections or config.concurrency.connections_per_server,
                     fetch_chunk_size=config.fetch_chunk_size, version_hint=hint[0] if hint else None,
                     build_hint=hint[1] if hint else None)
        if server_info is not None and remember:
            source._remember = lambda: remember_version(server_info, config.name, conn, source.learned_version())
        return source

    def reported_version(self) -> Version | None:
        """The version in the last ServerVersionInfo the server sent (None before its first answer)."""
        reported = getattr(self.protocol, "reported_version", None)
        if reported is None and self._probed:
            probed = self.protocol.config.version
            if probed is not None and probed.build is not None:
                return probed
        return reported

    def ensure_version(self, mailbox: str | None = None) -> None:
        """Run exchangelib's version probe now if it is due (no configured or cached version)."""
        if self._probed:
            self.call("ConvertId", mailbox, lambda: self.protocol.version)

    def optional_well_known(self) -> tuple[str, ...]:
        """The post-2007 DistinguishedFolderIds to ask this server for: only once it has told us its version
        (a configured or cached exchange_version cannot tell Exchange 2016 from Exchange Online)."""
        reported = self.reported_version()
        if reported is None:
            return ()
        build = (reported.build.major_version, reported.build.minor_version)
        return tuple(n for n in well_known_for(build, reported.api_version) if n not in self._refused_well_known)

    def refuse_well_known(self, name: str) -> None:
        with self._lock:
            self._refused_well_known.add(name)

    def learned_version(self) -> tuple[str, str | None] | None:
        """(api_version, build) the source knows now (reported, configured, hinted or probed), without a request."""
        version = self.reported_version() or self.protocol.config.version
        if version is None or not version.api_version:
            return None
        return version.api_version, str(version.build) if version.build else None

    def open_mailbox(self, email: str, *, with_participants: bool = False) -> "MailboxSession":
        """``with_participants`` changes nothing here: SyncFolderItems cannot return recipients, so
        ``participants()`` asks GetItem for them (only for the refs it is given)."""
        if self._closed:
            raise SourceError("EwsSource is closed")
        return MailboxSession(self, email)

    def call(self, operation: str, mailbox: str | None, fn: Callable[[], T]) -> T:
        return call_with_retry(
            fn,
            policy=self.retry_policy,
            attempts=self.connection.retry_attempts,
            max_wait_s=self.connection.max_backoff_s,
            server=self.server,
            mailbox=mailbox,
            operation=operation,
        )

    def sync_ahead(self, key: tuple[str, str, str, int], fn: Callable[[], T]) -> None:
        """Start ``fn`` (a SyncFolderItems call) in the background for a later ``take_ahead(key)``."""
        with self._lock:
            if self._closed or key in self._ahead:
                return
            if self._ahead_pool is None:
                self._ahead_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ews-sync-ahead")
            self._ahead[key] = self._ahead_pool.submit(fn)

    def take_ahead(self, key: tuple[str, str, str, int]) -> Future | None:
        with self._lock:
            return self._ahead.pop(key, None)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._remember is not None:
            self._remember()
        with self._lock:
            pool, self._ahead_pool = self._ahead_pool, None
            self._ahead.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self.protocol.close()
        redact.unprotect(self)

    def __enter__(self) -> "EwsSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EwsSource({self.server!r}, auth={self.connection.auth}, access_type={self.connection.access_type})"


class MailboxSession:
    """One mailbox through its EwsSource. Cheap to create; sends nothing until the first call."""

    def __init__(self, source: EwsSource, email: str) -> None:
        self.source = source
        self.email = email.strip().lower()
        access_type = {"delegate": DELEGATE, "impersonation": IMPERSONATION}[source.connection.access_type]
        # Account() would create (or reuse) a *cached* Protocol from the config it is given. We give it a
        # credential-less stub config - so no secret lands in exchangelib's process-wide cache - and then
        # point the account at the source's own protocol.
        stub = Configuration(service_endpoint=source.connection.server_url, version=source.version)
        self.account = Account(
            primary_smtp_address=self.email,
            access_type=access_type,
            config=stub,
            autodiscover=False,
            default_timezone=UTC,
        )
        self.account.protocol = source.protocol

    def _call(self, operation: str, fn: Callable[[], T]) -> T:
        return self.source.call(operation, self.email, fn)

    # ---- folders -------------------------------------------------------------------------------
    def all_folders(self) -> list[FolderInfo]:
        """Every folder under the message folder root (all classes, search folders excluded), with paths."""
        core = ["msgfolderroot", *WELL_KNOWN_2007]
        self.source.ensure_version(self.email)
        optional = self.source.optional_well_known()
        if optional:
            try:
                results = self._get_well_known([*core, *optional])
            except ServerRejectedRequest:
                # Refused: the version we assumed was stale (the refusal told the real one), or the server
                # refuses an id its version should know. Never fail a mailbox for an optional folder.
                results = self._get_well_known(core)
                results.update(self._get_optional(self.source.optional_well_known(), together=False))
        else:
            results = self._get_well_known(core)
        root = results.pop("msgfolderroot")
        if isinstance(root, Exception):
            if isinstance(root, ews_errors.ErrorAccessDenied):
                raise MailboxAccessDenied(
                    f"access to mailbox {self.email} denied on {self.source.server} (ErrorAccessDenied: {root}); "
                    "the service account needs a delegate grant or the ApplicationImpersonation role",
                    mailbox=self.email,
                )
            raise self._map(root, "GetFolder")
        if not optional:
            # First contact: the answer above carried the server's version, so ask for what it knows.
            results.update(self._get_optional(self.source.optional_well_known(), together=True))
        root_id = root.find(t("FolderId")).get("Id")
        distinguished = {}
        for name, elem in results.items():
            if not isinstance(elem, Exception) and elem is not None:
                fid = elem.find(t("FolderId"))
                if fid is not None:
                    distinguished[name] = fid.get("Id")

        raw: list[RawFolder] = []
        offset = 0
        while True:
            page = self._call(
                "FindFolder",
                lambda: RawFindFolder(account=self.account, page_size=FIND_FOLDER_PAGE).page(
                    folder_id_elem(root_id), FOLDER_FIELDS, offset, FIND_FOLDER_PAGE
                ),
            )
            raw.extend(_raw_folder(e) for e in page.elements)
            if page.next_offset is None or not page.elements:
                break
            offset = page.next_offset
        return build_folder_infos(root_id, raw, distinguished)

    def _get_well_known(self, names: Sequence[str]) -> dict[str, Any]:
        """One GetFolder of DistinguishedFolderIds: {name: folder element, or the per-folder error}."""

        def get() -> list[Any]:
            elems = [distinguished_folder_elem(name, self.email) for name in names]
            return RawGetFolder(account=self.account).get(elems, ())

        # One response message per requested folder, in request order.
        return dict(zip(names, self._call("GetFolder", get)))

    def _get_optional(self, names: Sequence[str], *, together: bool) -> dict[str, Any]:
        """Optional well-known folders: in one request, or (when the server refuses that) one by one,
        dropping, and remembering for the source, each id the server refuses."""
        if not names:
            return {}
        if together:
            try:
                return self._get_well_known(names)
            except ServerRejectedRequest:
                pass
        found: dict[str, Any] = {}
        for name in names:
            try:
                found.update(self._get_well_known([name]))
            except ServerRejectedRequest:
                self.source.refuse_well_known(name)
        return found

    def mail_folders(self, allowlist: Sequence[str] | None = None, denylist: Sequence[str] = ()) -> list[FolderInfo]:
        return select_mail_folders(self.all_folders(), allowlist, list(denylist))

    # ---- incremental sync ----------------------------------------------------------------------
    def sync_pages(self, folder: FolderInfo, sync_state: str | None, *, page_size: int = 512) -> Iterator[SyncPage]:
        """One SyncFolderItems request per yielded page, starting from ``sync_state`` (None = from scratch)."""
        if not 1 <= page_size <= 512:
            raise SourceConfigError("page_size must be within 1..512 (EWS MaxChangesReturned)")
        state = sync_state
        while True:
            current = state
            changes, new_state, last = self._sync_answer(folder, current, page_size)
            page = _sync_page(changes, new_state, last)
            stuck = new_state == current and not page.changes and not page.deletes and not page.read_flag_changes
            if not last and not stuck and new_state:
                # The next page depends only on this state: ask for it while this page's items are
                # fetched (read-only; an unused answer is simply dropped).
                self.source.sync_ahead((self.email, folder.folder_id, new_state, page_size),
                                       lambda s=new_state: self._sync_call(folder, s, page_size))
            yield page
            if last or stuck:
                # ``stuck``: a server that does not advance the state would loop us forever
                # (exchangelib guards the same way).
                return
            state = new_state

    def _sync_call(self, folder: FolderInfo, state: str | None, page_size: int) -> tuple:
        return self._call(
            "SyncFolderItems",
            lambda: RawSyncFolderItems(account=self.account).page(
                folder_id_elem(folder.folder_id), REF_FIELDS, state, page_size
            ),
        )

    def _sync_answer(self, folder: FolderInfo, state: str | None, page_size: int) -> tuple:
        ahead = self.source.take_ahead((self.email, folder.folder_id, state, page_size)) if state else None
        if ahead is not None:
            try:
                return ahead.result()
            except Exception:  # noqa: BLE001 - asked again below, where its error is raised in order
                pass
        return self._sync_call(folder, state, page_size)

    # ---- fetch ---------------------------------------------------------------------------------
    def fetch(self, refs: Sequence[ItemRef], folder: FolderInfo, *, chunk_size: int | None = None) -> FetchResult:
        """GetItem (MimeContent + cheap fields) for ``refs`` in chunks (at most ``chunk_size`` items and
        GETITEM_MAX_BYTES of reported size each), up to max_connections chunks in flight."""
        size = chunk_size or self.source.fetch_chunk_size
        chunks = list(size_chunks(refs, size, GETITEM_MAX_BYTES))
        if not chunks:
            return FetchResult(STAGED_SCHEMA.empty_table())
        return self._rows(folder, chunks, self._get_items(chunks, FETCH_FIELDS))

    def _get_items(self, chunks: list[list[ItemRef]], fields: Sequence[str]) -> list[list[Any]]:
        """One GetItem of ``fields`` per chunk, up to max_connections in flight; per chunk, one element or
        per-item exception per id, in request order."""

        def one(chunk: list[ItemRef]) -> list[Any]:
            ids = [r.item_id for r in chunk]
            elems = self._call("GetItem", lambda: RawGetItem(account=self.account).get(ids, fields))
            if len(elems) != len(chunk):
                raise self._map(
                    ews_errors.MalformedResponseError(f"GetItem returned {len(elems)} results for {len(chunk)} ids"),
                    "GetItem",
                )
            return elems

        workers = min(self.source.max_connections, len(chunks))
        if workers == 1:
            return [one(c) for c in chunks]
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ews-getitem")
        try:
            futures = [pool.submit(one, c) for c in chunks]
            return [f.result() for f in futures]
        finally:
            # On an error, don't start chunks that have not begun; running ones finish their request.
            pool.shutdown(wait=True, cancel_futures=True)

    def participants(self, refs: Sequence[ItemRef], *, chunk_size: int | None = None) -> Participants:
        """From, Sender, To and Cc of ``refs``: GetItem IdOnly + PARTICIPANT_FIELDS in chunks of
        ``chunk_size`` (no MIME, no body), up to max_connections in flight. Only for a filtered mailbox."""
        size = chunk_size or self.source.fetch_chunk_size
        chunks = [list(refs[i:i + size]) for i in range(0, len(refs), size)]
        if not chunks:
            return Participants()

        results = self._get_items(chunks, PARTICIPANT_FIELDS)
        out = Participants()
        for chunk, elems in zip(chunks, results):
            for ref, elem in zip(chunk, elems):
                if isinstance(elem, ews_errors.ErrorItemNotFound):
                    out.missing_ids.append(ref.item_id)
                elif isinstance(elem, Exception):
                    out.failed[ref.item_id] = f"{type(elem).__name__}: {elem}"
                else:
                    out.by_id[ref.item_id] = _participants(elem)
        return out

    def _rows(self, folder: FolderInfo, chunks: list[list[ItemRef]], results: list[list[Any]]) -> FetchResult:
        cols: dict[str, list[Any]] = {name: [] for name in STAGED_SCHEMA.names}
        missing: list[str] = []
        failed: dict[str, str] = {}
        for chunk, elems in zip(chunks, results):
            for ref, elem in zip(chunk, elems):
                if isinstance(elem, ews_errors.ErrorItemNotFound):
                    missing.append(ref.item_id)
                    continue
                if isinstance(elem, Exception):
                    failed[ref.item_id] = f"{type(elem).__name__}: {elem}"
                    continue
                row = _item_row(elem, ref)
                if isinstance(row, str):
                    failed[ref.item_id] = row
                    continue
                cols["mailbox"].append(self.email)
                cols["folder_id"].append(folder.folder_id)
                cols["folder_path"].append(folder.path)
                for key, value in row.items():
                    cols[key].append(value)
        return FetchResult(pa.Table.from_pydict(cols, schema=STAGED_SCHEMA), missing, failed)

    # ---- backfill ------------------------------------------------------------------------------
    def find_range(
        self, folder: FolderInfo, start: datetime | None, end: datetime | None, *, page_size: int = 512
    ) -> Iterator[list[ItemRef]]:
        """FindItem (Shallow) with DateTimeReceived >= start and < end, oldest first, one request per yielded
        page. Never touches the sync state."""
        if page_size < 1:
            raise SourceConfigError("page_size must be >= 1")
        offset = 0
        while True:
            current = offset
            page = self._call(
                "FindItem",
                lambda: RawFindItem(account=self.account, page_size=page_size).page(
                    folder_id_elem(folder.folder_id), REF_FIELDS, start, end, current, page_size
                ),
            )
            refs = [_item_ref(e, "backfill") for e in page.elements]
            if refs:
                yield refs
            if page.next_offset is None or not page.elements:
                return
            offset = page.next_offset

    def _map(self, exc: BaseException, operation: str) -> SourceError:
        return map_exception(exc, server=self.source.server, mailbox=self.email, operation=operation)

    def __repr__(self) -> str:
        return f"MailboxSession({self.email!r} via {self.source.server!r})"


# ---- XML -> data ---------------------------------------------------------------------------------
def _raw_folder(elem: Any) -> RawFolder:
    fid = elem.find(t("FolderId"))
    parent = elem.find(t("ParentFolderId"))
    total = child_text(elem, t("TotalCount"))
    return RawFolder(
        folder_id=fid.get("Id"),
        change_key=fid.get("ChangeKey"),
        parent_id=parent.get("Id") if parent is not None else None,
        display_name=child_text(elem, t("DisplayName")) or "",
        folder_class=child_text(elem, t("FolderClass")),
        is_search_folder=elem.tag == t("SearchFolder"),
        total_count=int(total) if total and total.strip().isdigit() else None,
    )


def _item_ref(item: Any, change_type: str) -> ItemRef:
    iid = item.find(t("ItemId"))
    size = child_text(item, t("Size"))
    conv = item.find(t("ConversationId"))
    return ItemRef(
        item_id=iid.get("Id"),
        change_key=iid.get("ChangeKey") or "",
        change_type=change_type,  # type: ignore[arg-type]
        datetime_received=parse_ews_datetime(child_text(item, t("DateTimeReceived"))),
        internet_message_id=child_text(item, t("InternetMessageId")),
        size=int(size) if size and size.strip().isdigit() else None,
        conversation_id=conv.get("Id") if conv is not None else None,
    )


def _participants(item: Any) -> tuple[str, ...]:
    """Lowercased EmailAddress of every Mailbox under From, Sender, To and Cc (in that order, deduplicated)."""
    found: list[str] = []
    for tag in ("From", "Sender", "ToRecipients", "CcRecipients"):
        holder = item.find(t(tag))
        if holder is None:
            continue
        for mailbox in holder.iter(t("Mailbox")):
            address = child_text(mailbox, t("EmailAddress"))
            if address:
                address = address.strip().lower()
                if address not in found:
                    found.append(address)
    return tuple(found)


_SYNC_TAGS = {t("Create"): "create", t("Update"): "update"}


def _sync_page(changes: list[Any], state: str, last: bool) -> SyncPage:
    refs: list[ItemRef] = []
    deletes: list[str] = []
    read_flags = 0
    for change in changes:
        kind = _SYNC_TAGS.get(change.tag)
        if kind is not None:
            refs.append(_item_ref(change[0], kind))
        elif change.tag == t("Delete"):
            deletes.append(change.find(t("ItemId")).get("Id"))
        elif change.tag == t("ReadFlagChange"):
            read_flags += 1
    return SyncPage(changes=refs, deletes=deletes, read_flag_changes=read_flags, sync_state=state, last_page=last)


def decode_mime_content(text: str) -> bytes:
    """``base64.b64decode(text, validate=False)``, ~40x faster on the clean text EWS sends.

    Exchange sends MimeContent as one line of strict base64: pybase64's validating SIMD decoder
    takes it (1.7 s of the main process's GIL per 10,000 messages with the stdlib, 580 MB of text).
    Anything else (line breaks, junk, padding in the middle) goes to the stdlib's lenient decoder,
    so the result is always the stdlib's (pybase64's own lenient mode differs on misplaced padding).
    """
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return base64.b64decode(text, validate=False)


def _item_row(item: Any, ref: ItemRef) -> dict[str, Any] | str:
    """A staged row (without mailbox/folder columns), or the reason the item cannot be staged."""
    fresh = _item_ref(item, ref.change_type)
    mime_elem = item.find(t("MimeContent"))
    if mime_elem is None or mime_elem.text is None:
        return "no MimeContent returned"
    try:
        mime = decode_mime_content(mime_elem.text)
    except (binascii.Error, ValueError) as exc:
        return f"MimeContent is not valid base64: {exc}"
    received = fresh.datetime_received or ref.datetime_received
    if received is None:
        return "no DateTimeReceived returned"
    return {
        "item_id": fresh.item_id,
        "change_key": fresh.change_key or ref.change_key,
        "change_type": ref.change_type,
        "internet_message_id": fresh.internet_message_id or ref.internet_message_id,
        "datetime_received": received,
        "conversation_id": fresh.conversation_id or ref.conversation_id,
        "size": fresh.size if fresh.size is not None else ref.size,
        "mime_content": mime,
    }


__all__ = ["EwsSource", "MailboxSession", "SourceConfigError"]
