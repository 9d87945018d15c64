"""Which source serves which ``connection.kind``: the one place the pipeline, ``check`` and ``watch`` look.

Adding a source: a package under ``sources/`` implementing ``base.Source`` (its ``from_config(config,
server_info)`` opens it), its connection model in ``config.py`` (a ``kind`` literal in the ``connection``
union), and one line in ``SOURCES``. Packages are imported on first use, so an integration never loads
another protocol's client library.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from exchange_sync.config import IntegrationConfig

from .base import ServerInfoStore, Source
from .errors import SourceConfigError


@dataclass(frozen=True)
class SourceKind:
    kind: str  # connection.kind
    factory: str  # "module:Class" whose ``from_config(config, server_info)`` opens the source
    description: str

    def open(self, config: IntegrationConfig, server_info: ServerInfoStore | None = None) -> Source:
        module, _, name = self.factory.partition(":")
        cls = getattr(importlib.import_module(module), name)
        return cls.from_config(config, server_info)


SOURCES: dict[str, SourceKind] = {
    s.kind: s
    for s in (
        SourceKind("ews", "exchange_sync.sources.ews:EwsSource", "Exchange Web Services (Exchange 2007 SP1+, Online)"),
        SourceKind("graph", "exchange_sync.sources.graph:GraphSource", "Microsoft Graph (Exchange Online)"),
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
