"""Prefect settings this product needs, applied before Prefect is imported; and a watchdog that takes
Prefect's temporary API server down with the command that started it.

Only defaults: anything the operator set in the environment or a Prefect profile wins.
- The ephemeral API server (used when no PREFECT_API_URL is configured) migrates its database on
  first start, which takes ~30 s on a fresh 2-core machine against a 20 s default timeout.
- Analytics off: this product runs in closed networks, and the telemetry heartbeat is a known
  source of "database is locked" noise on SQLite.

The temporary server is a child process that Prefect stops from an ``atexit`` handler. A command
killed with ``kill -9`` (or by the OOM killer) runs no handler, and the server used to stay up
forever. ``watch_temporary_server`` starts a tiny watchdog process (stdlib only, no Prefect) that
notes our temporary server's pid every second and terminates it once we are gone (SIGTERM, then
SIGKILL if its graceful shutdown has not ended it within ``STOP_GRACE_S``). Linux (``/proc``) only;
elsewhere it does nothing.

A server is a child of the command whose arguments are ``-m uvicorn ... --factory <SERVER_MARKER>``.
The watchdog is a child of the command too, and has the marker among its own arguments: it must
never count itself (it once did, and being the older process it terminated itself first, before the
server, which then ran on forever, reparented to init).
"""

from __future__ import annotations

import os
import subprocess
import sys

DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}

# What identifies Prefect's temporary server on its command line (prefect.server.api.server,
# SubprocessASGIServer._run_uvicorn_command).
SERVER_MARKER = "prefect.server.api.server:create_app"
STOP_GRACE_S = 10  # between the watchdog's SIGTERM and its SIGKILL of a server still running

_WATCHDOG = r"""
import os, signal, sys, time
parent, marker, grace = int(sys.argv[1]), sys.argv[2].encode(), float(sys.argv[3])
me = os.getpid()

def info(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read().rsplit(b")", 1)[1].split()
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return int(stat[1]), stat[19], f.read()

def is_server(cmd):
    args = cmd.split(b"\0")
    return b"uvicorn" in args and marker in args

def servers():
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me:  # our own arguments hold the marker too
            try:
                ppid, start, cmd = info(name)
            except (OSError, ValueError, IndexError):
                continue
            if ppid == parent and is_server(cmd):
                found[int(name)] = start
    return found

def same(pid, start):  # the same process, not a reused pid
    try:
        return info(pid)[1] == start
    except (OSError, ValueError, IndexError):
        return False

def send(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass

seen = {}
while os.getppid() == parent:  # reparented: the command is gone
    found = servers()
    if os.getppid() != parent:
        break  # gone during the scan: its children may have been reparented already; keep the last full scan
    seen = found
    time.sleep(1)
send([pid for pid, start in seen.items() if same(pid, start)], signal.SIGTERM)
deadline = time.monotonic() + grace
while time.monotonic() < deadline and any(same(pid, start) for pid, start in seen.items()):
    time.sleep(0.2)
send([pid for pid, start in seen.items() if same(pid, start)], signal.SIGKILL)  # a shutdown that hangs
"""

_watchdog: subprocess.Popen | None = None


def configure_prefect_defaults() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)


def watch_temporary_server() -> None:
    """Start the watchdog once per process, if a temporary server may be started (no API URL set)."""
    global _watchdog
    if _watchdog is not None or not sys.platform.startswith("linux") or not os.path.isdir("/proc"):
        return
    try:
        from prefect.settings import get_current_settings

        if get_current_settings().api.url:
            return  # a real Prefect server: nothing of ours to clean up
    except Exception:  # noqa: BLE001 - settings unreadable: Prefect will say so itself
        return
    _watchdog = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _WATCHDOG, str(os.getpid()), SERVER_MARKER, str(STOP_GRACE_S)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
    )
