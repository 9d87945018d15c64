"""Which source serves which ``connection.kind``: the one place the pipeline, ``check`` and ``watch`` look.

Adding a source: a package under ``sources/`` implementing ``base.Source`` (its ``from_config(config,
server_info)`` opens it) with a ``check`` module (``check(config) -> CheckReport``, built on
``exchange_sync.check.reach``), its connection model in ``config.py`` (a ``kind`` literal in the
``connection`` union), and one line in ``SOURCES``. Packages are imported on first use, so an integration never loads
another protocol's client library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from exchange_sync.config import IntegrationConfig
from exchange_sync.imports import resolve

from .base import ServerInfoStore, Source
from .errors import SourceConfigError

if TYPE_CHECKING:
    from exchange_sync.check import CheckReport


@dataclass(frozen=True)
class SourceKind:
    kind: str  # connection.kind
    package: str  # e.g. "exchange_sync.sources.ews": its ``Source`` class and its ``check`` module
    source_class: str  # the class whose ``from_config(config, server_info)`` opens the source
    description: str

    def open(self, config: IntegrationConfig, server_info: ServerInfoStore | None = None) -> Source:
        return resolve(f"{self.package}:{self.source_class}").from_config(config, server_info)

    def check(self, config: IntegrationConfig) -> CheckReport:
        """``exchange-sync check``: the package's ``check.check(config)``."""
        return resolve(f"{self.package}.check:check")(config)


SOURCES: dict[str, SourceKind] = {
    s.kind: s
    for s in (
        SourceKind("ews", "exchange_sync.sources.ews", "EwsSource", "Exchange Web Services (Exchange 2007 SP1+, Online)"),
        SourceKind("graph", "exchange_sync.sources.graph", "GraphSource", "Microsoft Graph (Exchange Online)"),
    )
}


def source_kind(config: IntegrationConfig) -> SourceKind:
    kind = config.connection.kind
    found = SOURCES.get(kind)
    if found is None:
        raise SourceConfigError(f"connection.kind {kind!r}: no source for it (known: {', '.join(sorted(SOURCES))})")
    return found


def open_source(config: IntegrationConfig, server_info: ServerInfoStore | None = None) -> Source:
    """The source for ``config.connection`` (secrets resolved now). ``server_info``: the state database, where
    a source keeps what it learns about the server between runs (EWS: its version)."""
    return source_kind(config).open(config, server_info)
