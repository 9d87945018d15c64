"""`exchange-sync ews-server` / `graph-server` without the test servers installed (they are their own
distribution, ./testservers, not part of the exchange-sync wheel): one line, exit status 2, no traceback.

The absence is simulated in a subprocess by a meta path finder that refuses the named packages.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCKED_RUN = """
import sys

BLOCKED = set(sys.argv[1].split(","))


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Refuse())
sys.argv = ["exchange-sync", *sys.argv[2:]]
from exchange_sync.cli import main

main()
"""


def run_blocked(blocked: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED_RUN, blocked, *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("command, blocked, what", [
    ("ews-server", "ews_testserver", "EWS"),
    ("ews-server", "testserver_core", "EWS"),
    ("graph-server", "graph_testserver", "Graph"),
    ("graph-server", "testserver_core", "Graph"),
])
def test_missing_test_server_is_one_line_and_exit_2(command: str, blocked: str, what: str) -> None:
    proc = run_blocked(blocked, command, "--port", "0")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # no ready line: nothing was started
    assert proc.stderr == (f"error: the {what} test server is not installed: pip install -e ./testservers "
                           "(it is test infrastructure, not part of exchange-sync)\n")


def test_other_commands_do_not_need_the_test_servers() -> None:
    proc = run_blocked("ews_testserver,graph_testserver,testserver_core", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "ews-server" in proc.stdout and "graph-server" in proc.stdout


def test_a_module_missing_inside_an_installed_test_server_keeps_its_traceback() -> None:
    # Not "not installed": a dependency missing from the test servers' environment is a broken install.
    proc = run_blocked("lxml", "ews-server", "--port", "0")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "No module named 'lxml'" in proc.stderr
    assert "not installed" not in proc.stderr
