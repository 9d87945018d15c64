"""The destination registry: one implementation of the contract per configured kind."""

from __future__ import annotations

import importlib
import typing

from exchange_sync.config import DestinationConfig, parse_config
from exchange_sync.destinations import Destination, checkpoints_url
from exchange_sync.destinations.registry import DESTINATIONS


def test_every_configurable_kind_has_an_implementation_of_the_contract() -> None:
    union = typing.get_args(DestinationConfig)[0]
    kinds = {typing.get_args(model.model_fields["kind"].annotation)[0] for model in typing.get_args(union)}
    assert set(DESTINATIONS) == kinds
    for target in DESTINATIONS.values():
        module, _, name = target.partition(":")
        assert issubclass(getattr(importlib.import_module(module), name), Destination)


def test_watermarks_live_with_the_comments_only_in_the_embedded_store(tmp_path) -> None:
    base = {"name": "acme", "connection": {"kind": "ews", "server_url": "https://mail.example.com/EWS/Exchange.asmx",
                                            "auth": "ntlm", "username": "svc", "password": {"env": "X"},
                                            "access_type": "delegate"},
            "mailboxes": [{"email": "a@example.com"}], "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"}}
    store = parse_config({**base, "destination": {"kind": "store", "url": f"sqlite:///{tmp_path / 'c.db'}"}})
    assert checkpoints_url(store) == f"sqlite:///{tmp_path / 'c.db'}"
    remote = parse_config({**base, "destination": {"kind": "reinfer", "url": "https://reinfer.example.com",
                                                   "project": "p", "source": "s", "token": {"env": "T"}}})
    assert checkpoints_url(remote) == f"sqlite:///{tmp_path / 'state.db'}"
