"""Run a test server's CLI command as a subprocess and talk to its ``/admin`` control API.

``ews_testserver.testing`` (``running_server``) and ``graph_testserver.testing``
(``running_graph_server``) build on this: ``launch_cli_server`` starts ``<python> -m exchange_sync
<command> ...`` (the real ``exchange-sync ews-server`` / ``graph-server`` CLI, so exchange-sync must be
installed in the same interpreter) and waits for the JSON line it prints when ready;
``RunningServerBase`` holds the routes both servers answer (mail, fault plans, request log,
mailboxes) and stops the process with SIGTERM.
"""

from __future__ import annotations

import base64
import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests


class ServerStartError(RuntimeError):
    pass


@dataclass
class RunningServerBase:
    """A started test server (its ready line's URLs and admin token, the process) and the ``/admin``
    routes both servers answer; ``stop()`` ends it with SIGTERM."""

    url: str
    admin_url: str
    ca_file: str | None
    admin_token: str
    info: dict[str, Any]
    process: subprocess.Popen
    returncode: int | None = None
    _session: requests.Session = field(default_factory=requests.Session)

    # -- control API ------------------------------------------------------------------------
    def admin(self, method: str, path: str, payload: Any = None, expect: int | None = 200) -> Any:
        """Call ``/admin<path>``; raises AssertionError with the server's message on another status."""
        resp = self._session.request(
            method, self.admin_url + path, json=payload, timeout=60,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            verify=self.ca_file if self.ca_file else True,
        )
        if expect is not None and resp.status_code != expect:
            raise AssertionError(f"{method} /admin{path} -> {resp.status_code}: {resp.text}")
        return resp.json()

    def add_message(self, mailbox: str, mime: bytes, folder: str = "Inbox", **extra: Any) -> dict[str, Any]:
        payload = {"mailbox": mailbox, "folder": folder, "mime_base64": base64.b64encode(mime).decode(), **extra}
        return self.admin("POST", "/messages", payload)

    def move(self, mailbox: str, message_id: str, folder: str) -> dict[str, Any]:
        return self.admin("POST", "/move", {"mailbox": mailbox, "message_id": message_id, "folder": folder})

    def edit(self, mailbox: str, message_id: str, subject: str | None = None, body: str | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"mailbox": mailbox, "message_id": message_id}
        if subject is not None:
            payload["subject"] = subject
        if body is not None:
            payload["body"] = body
        return self.admin("POST", "/edit", payload)

    def mark_read(self, mailbox: str, message_id: str, is_read: bool = True) -> dict[str, Any]:
        return self.admin("POST", "/read", {"mailbox": mailbox, "message_id": message_id, "is_read": is_read})

    def delete(self, mailbox: str, message_id: str) -> dict[str, Any]:
        return self.admin("POST", "/delete", {"mailbox": mailbox, "message_id": message_id})

    def create_folder(self, mailbox: str, path: str) -> dict[str, Any]:
        return self.admin("POST", "/folders", {"mailbox": mailbox, "path": path})

    def set_faults(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.admin("PUT", "/faults", rules)

    def clear_faults(self) -> None:
        self.admin("PUT", "/faults", [])

    def faults(self) -> list[dict[str, Any]]:
        return self.admin("GET", "/faults")

    def log(self, since: int = 0) -> list[dict[str, Any]]:
        return self.admin("GET", f"/log?since={since}")

    def clear_log(self) -> None:
        self.admin("DELETE", "/log")

    def operations(self, since: int = 0) -> list[str]:
        return [e["operation"] for e in self.log(since)]

    def last_seq(self) -> int:
        entries = self.log()
        return entries[-1]["seq"] if entries else 0

    def mailboxes(self) -> list[dict[str, Any]]:
        return self.admin("GET", "/mailboxes")

    def add_mailbox(self, mailbox: str) -> None:
        self.admin("POST", "/mailboxes", {"mailbox": mailbox})

    def delete_mailbox(self, mailbox: str) -> None:
        self.admin("POST", "/mailboxes/delete", {"mailbox": mailbox})

    @property
    def server(self) -> str:
        """host:port, as exchangelib's Configuration(server=...) would take it (it assumes https)."""
        return self.url.split("://", 1)[1].split("/", 1)[0]

    def stop(self, timeout: float = 15) -> int:
        if self.returncode is None:
            self._session.close()
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.returncode = self.process.returncode
        return self.returncode



def launch_cli_server(args: Sequence[str], startup_timeout: float = 120) -> tuple[subprocess.Popen, dict[str, Any]]:
    """Run ``<python> -m exchange_sync <args>`` (a test server command, ``args[0]``) and wait for the
    JSON line it prints when ready: (the process, the line parsed)."""
    name = args[0]
    cmd = [sys.executable, "-m", "exchange_sync", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    try:
        line = lines.get(timeout=startup_timeout)
    except queue.Empty:
        proc.kill()
        proc.wait()
        raise ServerStartError(f"{name} printed nothing within {startup_timeout}s: {cmd}") from None
    if line is None:
        proc.wait()
        raise ServerStartError(f"{name} exited with {proc.returncode} before it was ready: {cmd}")
    return proc, json.loads(line)
