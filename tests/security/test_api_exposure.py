"""The comments API as an operator starts it (`exchange-sync api`): loopback by default, a bearer token
required, and no way to serve without a token on a non-loopback address. Route-level token tests are in
tests/api/test_routes.py."""

from __future__ import annotations

import os
import signal
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


def _api(tmp_path, *args, token: str | None = TOKEN, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EXCHANGE_SYNC_API_TOKEN"}
    if token:
        env["EXCHANGE_SYNC_API_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "exchange_sync", "api", "--port", str(free_port()), *args],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("store,fragment", [
    ("notaurl://x", "unsupported database"),
    ("not a url at all", "not a database URL"),
    ("sqlite:////nonexistent/dir/c.db", "does not exist"),
])
def test_api_bad_store_is_one_error_line(tmp_path, store, fragment):
    proc = _api(tmp_path, "--store", store)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not os.path.exists("/nonexistent/dir")  # no directory created on the way


def test_api_tls_options_are_checked(tmp_path):
    proc = _api(tmp_path, "--tls-cert", str(tmp_path / "missing.pem"))
    assert proc.returncode == 2 and "--tls-key" in proc.stderr
    proc = _api(tmp_path, "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(tmp_path / "k.pem"))
    assert proc.returncode == 2 and "no such file" in proc.stderr


def _serve(tmp_path, args, env_extra=None):
    port = free_port()
    env = {**os.environ, "EXCHANGE_SYNC_API_TOKEN": TOKEN, **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, "-m", "exchange_sync", "api", "--port", str(port), "--store",
                             f"sqlite:///{tmp_path / 'comments.db'}", *args], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    return port, proc


def _stop(proc) -> tuple[str, str]:
    proc.terminate()
    try:
        return proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def _wait(url, proc, **kw) -> requests.Response:
    for _ in range(600):
        try:
            return requests.get(url, timeout=2, **kw)
        except requests.ConnectionError:
            assert proc.poll() is None
            time.sleep(0.1)
    raise AssertionError("the API did not start")


def test_api_on_all_interfaces_without_tls_warns(tmp_path):
    port, proc = _serve(tmp_path, ["--host", "0.0.0.0"])
    try:
        _wait(f"http://127.0.0.1:{port}/openapi.json", proc)
    finally:
        _out, err = _stop(proc)
    assert "warning: serving on 0.0.0.0 over plain HTTP" in err and "--tls-cert" in err


def test_api_serves_https_with_tls_cert_and_key(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    leaf.private_key_pem.write_to_path(str(key))
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    ca.cert_pem.write_to_path(str(ca_file))
    port, proc = _serve(tmp_path, ["--host", "0.0.0.0", "--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        url = f"https://127.0.0.1:{port}/api/_private/sources/a/b/comments"
        response = _wait(url, proc, verify=str(ca_file), headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        # The sign-in cookie is Secure over HTTPS.
        login = requests.post(f"https://127.0.0.1:{port}/login", data={"token": TOKEN, "next": "/"},
                              verify=str(ca_file), allow_redirects=False, timeout=10)
        assert "Secure" in login.headers["set-cookie"]
    finally:
        out, err = _stop(proc)
    assert "plain HTTP" not in err and f"https://0.0.0.0:{port}" in out
    # SIGTERM stops it (over TLS uvicorn waited for its connections forever and had to be killed).
    assert proc.returncode != -signal.SIGKILL


def test_access_log_of_the_real_server_never_holds_the_token(tmp_path):
    port, proc = _serve(tmp_path, [])
    try:
        _wait(f"http://127.0.0.1:{port}/openapi.json", proc)
        requests.get(f"http://127.0.0.1:{port}/?token={TOKEN}", timeout=10)
        requests.post(f"http://127.0.0.1:{port}/login", data={"token": TOKEN}, allow_redirects=False, timeout=10)
        requests.get(f"http://127.0.0.1:{port}/api/_private/sources/a/b/comments?limit=1",
                     headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        time.sleep(0.5)
    finally:
        out, err = _stop(proc)
    assert '"GET /" 401' in err and '"POST /login" 303' in err  # the access log is there...
    assert TOKEN not in out + err and "limit=1" not in err  # ...without the token or any query string
