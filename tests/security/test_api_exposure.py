"""The comments API as an operator starts it (`exchange-sync api`): loopback by default, a bearer token
required, and no way to serve without a token on a non-loopback address. Route-level token tests are in
tests/api/test_routes.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import requests

pytestmark = pytest.mark.timeout(120)

TOKEN = "api-token-" + os.urandom(8).hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_api_binds_loopback_and_requires_the_token(tmp_path):
    port = free_port()
    env = {**os.environ, "EXCHANGE_SYNC_API_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "exchange_sync", "api", "--port", str(port), "--store",
                             f"sqlite:///{tmp_path / 'comments.db'}"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):  # wait until it listens (bounded by the test timeout, not asserted on)
            try:
                requests.get(base + "/api/_private/sources/exchange-sync/mail/comments", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                time.sleep(0.1)
        url = base + "/api/_private/sources/exchange-sync/mail/comments"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).status_code == 200
        other = non_loopback_address()
        if other is not None:
            with pytest.raises(requests.ConnectionError):
                requests.get(f"http://{other}:{port}/", timeout=5)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args,env_token", [(["--host", "0.0.0.0", "--no-auth"], None), ([], None)])
def test_api_refuses_to_start_exposed(tmp_path, args, env_token):
    env = {k: v for k, v in os.environ.items() if k != "EXCHANGE_SYNC_API_TOKEN"}
    proc = subprocess.run([sys.executable, "-m", "exchange_sync", "api", "--port", str(free_port()), *args],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert ("loopback" in proc.stderr) or ("EXCHANGE_SYNC_API_TOKEN" in proc.stderr)
