"""Run the Graph test server as a subprocess (the real ``exchange-sync graph-server`` CLI) from tests.

    from graph_testserver.testing import running_graph_server

    with running_graph_server(mailboxes=["user@example.com=generate:50"]) as srv:
        config = {"connection": srv.connection(), ...}
        srv.move("user@example.com", "<id@x>", "Archive")     # same admin helpers as the EWS server
        srv.expire_tokens()                                    # every issued token answers 401 from now on
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from testserver_core.testing import RunningServerBase, launch_cli_server

DEFAULT_APP = ("client-id", "client-secret")


@dataclass
class RunningGraphServer(RunningServerBase):
    graph_url: str = ""
    authority: str = ""
    tenant_id: str = ""
    client_id: str = DEFAULT_APP[0]
    client_secret: str = DEFAULT_APP[1]

    def connection(self, secret_env: str = "GRAPH_TEST_CLIENT_SECRET", **extra: Any) -> dict[str, Any]:
        """A ``connection:`` mapping for this server; sets ``secret_env`` in this process's environment."""
        os.environ[secret_env] = self.client_secret
        conn = {"kind": "graph", "tenant_id": self.tenant_id, "client_id": self.client_id,
                "client_secret": {"env": secret_env}, "graph_url": self.graph_url, "authority": self.authority,
                "tls": {"verify": True, "ca_bundle": self.ca_file}}
        conn.update(extra)
        return conn

    def expire_tokens(self) -> int:
        return self.admin("POST", "/tokens/expire", {})["expired"]

    def expire_delta_states(self) -> int:
        return self.admin("POST", "/delta/expire", {})["generation"]

    def set_policy(self, client_id: str, mailboxes: list[str] | None) -> None:
        self.admin("POST", "/policy", {"client_id": client_id, "mailboxes": mailboxes})

    def health(self) -> dict[str, Any]:
        return self.admin("GET", "/health")


def graph_server_args(*, apps: Sequence[str] = (), mailboxes: Sequence[str] = (), policies: Sequence[str] = (),
                      seed: int | None = None, extra_args: Sequence[str] = ()) -> list[str]:
    args = ["graph-server"]
    for a in apps or (f"{DEFAULT_APP[0]}:{DEFAULT_APP[1]}",):
        args += ["--app", a]
    for mb in mailboxes or ("user@example.com=generate:20",):
        args += ["--mailbox", mb]
    for p in policies:
        args += ["--policy", p]
    if seed is not None:
        args += ["--seed", str(seed)]
    return args + list(extra_args)


@contextlib.contextmanager
def running_graph_server(startup_timeout: float = 120, **kwargs: Any) -> Iterator[RunningGraphServer]:
    """Start ``exchange-sync graph-server`` (options as in ``graph_server_args``), yield a
    ``RunningGraphServer``, SIGTERM it on exit (``srv.returncode`` afterwards)."""
    proc, info = launch_cli_server(graph_server_args(**kwargs), startup_timeout)
    app = next((a for a in kwargs.get("apps") or () if ":cert=" not in a), f"{DEFAULT_APP[0]}:{DEFAULT_APP[1]}")
    client_id, _, secret = app.partition(":")
    srv = RunningGraphServer(url=info["graph_url"], admin_url=info["admin_url"], ca_file=info["ca_file"],
                             admin_token=info["admin_token"], info=info, process=proc, graph_url=info["graph_url"],
                             authority=info["authority"], tenant_id=info["tenant_id"], client_id=client_id,
                             client_secret=secret)
    try:
        yield srv
    finally:
        srv.stop()
