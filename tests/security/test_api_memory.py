"""Memory of the comments API under hostile bodies, measured on a real `exchange-sync api` process
over HTTP: the server's peak RSS (Linux VmHWM, reset before each case) may grow by at most the
stated bounds, whatever the client sends.

Before ApiGate, 64 MB of `{}` without a token took the server from ~100 MB to 1.8 GB (FastAPI parsed
the body before the token was checked); /login read its whole body before its 16 KiB check.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from exchange_sync.api.gate import MAX_SYNC_BYTES, MAX_SYNC_JSON_VALUES

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status")]

TOKEN = "memory-token-" + os.urandom(8).hex()
MB = 1024 * 1024
HOSTILE_BYTES = 64 * MB
# Stated bounds (docs/comments-api.md, "Memory"): a refused body costs at most what was read before
# refusing (nothing without a token; up to the 16 MiB limit with one) plus buffers; the worst body a
# client with the token can get parsed costs less than WORST_SYNC_GROWTH.
REFUSED_GROWTH = 48 * MB
WORST_SYNC_GROWTH = 256 * MB

SYNC = "/api/v1/sources/acme/emails/sync"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def peak(pid: int) -> int:
    return _status_kb(pid, "VmHWM") * 1024


def send_hostile(port: int, head: str, *, chunked: bool, total: int = HOSTILE_BYTES) -> tuple[int | None, int]:
    """Send ``head`` then up to ``total`` bytes of `{},` until the server stops reading or closes;
    return (the status it answered, bytes sent)."""
    sent = 0
    piece = b"{}," * (MB // 3)
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + (b"" if chunked else b'{"comments":['))
        try:
            while sent < total:
                data = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") if chunked else piece
                sock.sendall(data)
                sent += len(piece)
        except (TimeoutError, socket.timeout, BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading (no token) or closed after refusing
        try:
            sock.settimeout(10)
            answer = sock.recv(4096)
        except (ConnectionResetError, TimeoutError, socket.timeout):
            answer = b""
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    return status, sent


@pytest.fixture
def api_process(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "EXCHANGE_SYNC_API_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "exchange_sync", "api", "--port", str(port), "--store",
                             f"sqlite:///{tmp_path / 'comments.db'}"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None
                time.sleep(0.1)
        # Warm up (first requests import and allocate lazily), then measure from here.
        ok = requests.post(f"http://127.0.0.1:{port}{SYNC}", json={"comments": []},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert ok.status_code == 200
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_hostile_bodies_keep_the_server_small(api_process, capsys) -> None:
    port, pid = api_process
    server = psutil.Process(pid)
    measured = {}

    def case(name: str, head: str, chunked: bool, expected: int) -> None:
        reset_peak(pid)
        before = server.memory_info().rss
        status, sent = send_hostile(port, head, chunked=chunked)
        time.sleep(0.5)
        grown = peak(pid) - before
        measured[name] = (status, sent, before, grown, server.memory_info().rss)
        assert status == expected, (name, status)
        assert grown < REFUSED_GROWTH, (name, grown / MB)

    base = f"POST {SYNC} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    case("64 MB, no token, Content-Length", base + f"Content-Length: {HOSTILE_BYTES + 20}\r\n", False, 401)
    case("64 MB, no token, chunked", base + "Transfer-Encoding: chunked\r\n", True, 401)
    case("64 MB, token, Content-Length", base + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {HOSTILE_BYTES + 20}\r\n",
         False, 413)
    case("64 MB, token, chunked", base + f"Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n", True, 413)
    case("64 MB /login, chunked", "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
         "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n", True, 413)

    # The worst body the limits let through: just under 16 MiB and 1,000,000 values, none a comment
    # (validation then also builds one error per item).
    values = MAX_SYNC_JSON_VALUES - 10
    item = b'"' + b"x" * (MAX_SYNC_BYTES // values - 4) + b'",'
    body = b'{"comments":[' + item * values + b'""]}'
    assert len(body) <= MAX_SYNC_BYTES
    reset_peak(pid)
    before = server.memory_info().rss
    response = requests.post(f"http://127.0.0.1:{port}{SYNC}", data=body, timeout=120,
                             headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    grown = peak(pid) - before
    measured["worst accepted body (16 MiB, 1M values)"] = (response.status_code, len(body), before, grown,
                                                          server.memory_info().rss)
    assert response.status_code == 400
    assert grown < WORST_SYNC_GROWTH, grown / MB
    with capsys.disabled():
        print()
        for name, (status, sent, before, grown, after) in measured.items():
            print(f"  {name}: status {status}, {sent / MB:.1f} MB sent, RSS before {before / MB:.0f} MB, "
                  f"peak +{grown / MB:.1f} MB, after {after / MB:.0f} MB")
    json.dumps(measured)  # the numbers stay printable for the report
