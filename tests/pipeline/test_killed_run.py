"""`kill -9` of `exchange-sync run` without a Prefect server configured: Prefect's temporary API server
dies with it (prefect_env.watch_temporary_server), and the next run marks the killed run `crashed`
instead of leaving it `running` in `status` forever."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from exchange_sync.prefect_env import SERVER_MARKER
from exchange_sync.store import SqlStore

from .conftest import PASSWORD_ENV, make_config

pytestmark = [pytest.mark.timeout(600),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watchdog reads /proc")]


def temporary_servers(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        args = cmdline.split(b"\0")
        # The watchdog is a child too and has the marker among its arguments: a server runs uvicorn.
        if int(stat[1]) == parent and b"uvicorn" in args and SERVER_MARKER.encode() in args:
            found.append(int(name))
    return found


def with_prefect_home(home: Path) -> dict[int, str]:
    """Every live process whose environment has ``PREFECT_HOME=home`` (pid -> command line): whatever
    started it, and whoever its parent is now (an orphan is reparented to init)."""
    marker = b"\0PREFECT_HOME=" + str(home).encode() + b"\0"
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            environ = b"\0" + Path(f"/proc/{name}/environ").read_bytes()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if marker in environ and alive(int(name)):
            found[int(name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def assert_no_survivor(home: Path, after: str, wait_s: float = 30.0) -> None:
    deadline = time.monotonic() + wait_s
    while (left := with_prefect_home(home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        os.kill(pid, signal.SIGKILL)  # not left to the next tests either
    assert not left, f"processes with PREFECT_HOME={home} outlived {after}: {left}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def test_killed_run_takes_its_temporary_server_along_and_is_marked_crashed(ews, password, tmp_path, prefect_api):
    srv = ews(["ap@example.com=generate:40"])
    data = make_config(srv, tmp_path, ["ap@example.com"], batch_size=5)
    config = tmp_path / "killed.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    home = tmp_path / "prefect-home"
    env.update({"PREFECT_HOME": str(home), PASSWORD_ENV: password,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"})
    proc = subprocess.Popen([sys.executable, "-m", "exchange_sync", "run", str(config), "--json"], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        state = SqlStore(data["state"]["url"])
        servers: list[int] = []
        deadline = time.monotonic() + 300
        # Wait until the run is under way (recorded as running) with its temporary server up.
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be killed"
            servers = servers or temporary_servers(proc.pid)
            runs = state.list_runs("e2e", limit=1)
            if servers and runs and runs[0].status == "running":
                break
            time.sleep(0.2)
        assert servers, "no temporary Prefect server was started"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in servers) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(alive(pid) for pid in servers), "the temporary Prefect server outlived its command"
        assert_no_survivor(home, "the killed run")  # a server it started that the test did not see, too
        assert state.list_runs("e2e", limit=1)[0].status == "running"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in temporary_servers(proc.pid):
            os.kill(pid, signal.SIGKILL)

    # The next run (a fresh process) marks the killed run crashed. The marking is the state store's, not
    # Prefect's: this run uses the session's Prefect server (a second temporary one costs ~20 s).
    again = subprocess.run([sys.executable, "-m", "exchange_sync", "run", str(config), "--json"], cwd=tmp_path,
                           env={**env, "PREFECT_API_URL": prefect_api}, capture_output=True, text=True, timeout=400, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr[-3000:]
    runs = state.list_runs("e2e", limit=2)
    assert [r.status for r in runs] == ["completed", "crashed"]
    assert json.loads(again.stdout.strip().splitlines()[-1])["mailboxes"][0]["status"] == "ok"
    status = subprocess.run([sys.executable, "-m", "exchange_sync", "status", str(config), "--json"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert [r["status"] for r in json.loads(status.stdout)["runs"][:2]] == ["completed", "crashed"]
    assert_no_survivor(home, "the second run and `exchange-sync status`")
