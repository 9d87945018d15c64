"""The Prefect UI in a real browser: deploy an integration on a real Prefect server (UI enabled),
open its "Custom run" form in Chromium (Debian's, driven by Playwright for Python), check that the
connection, TLS, mailbox and destination settings are titled form fields, remove a mailbox, submit,
and check that the run a real worker executes syncs only the mailbox left, with its artifacts.

Skips when Chromium or Playwright is missing, unless EXCHANGE_SYNC_REQUIRE_CHROMIUM=1 (CI).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from .conftest import ACCOUNT

pytestmark = pytest.mark.timeout(600)

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
BIN = Path(sys.executable).parent


def _need_browser():
    required = os.environ.get("EXCHANGE_SYNC_REQUIRE_CHROMIUM") == "1"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if required:
            pytest.fail("EXCHANGE_SYNC_REQUIRE_CHROMIUM=1 but playwright is not installed (pip install -e '.[test]')")
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    if CHROMIUM is None:
        if required:
            pytest.fail("EXCHANGE_SYNC_REQUIRE_CHROMIUM=1 but chromium is not installed (run .ci/chromium.sh)")
        pytest.skip("chromium is not installed (apt-get install chromium, or .ci/chromium.sh)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    """A Prefect server of its own with the UI on (the session's server runs without it)."""
    _need_browser()
    home = tmp_path_factory.mktemp("prefect-ui-home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "true", "PREFECT_UI_API_URL": api}
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((home / "server.log").read_text()[-3000:])
            time.sleep(1)
        yield f"http://127.0.0.1:{port}", api
    finally:
        _stop(proc)


def _field(page, title: str):
    """The form property titled ``title`` (its label header, not a nested property's)."""
    return page.locator(
        "xpath=//div[contains(@class,'schema-form-property')][./div[contains(@class,'p-label__header')]"
        f"//span[contains(@class,'schema-form-property__label') and (normalize-space()='{title}' "
        f"or normalize-space()='{title} (Optional)')]]")


def test_custom_run_through_the_prefect_ui(ui_server, ews, password, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    ui, api = ui_server
    pool = "exsync-ui-" + secrets.token_hex(4)
    root, data = tmp_path / "project", tmp_path / "data"
    (root / "deployments").mkdir(parents=True)
    data.mkdir()
    cfg = {
        "name": "uitest",
        "connection": {"server_url": ews.url, "auth": "ntlm", "username": ACCOUNT,
                       "password": {"env": "EXSYNC_UI_PASSWORD"}, "access_type": "delegate",
                       "tls": {"verify": True, "ca_bundle": ews.ca_file}, "max_backoff_s": 5},
        "mailboxes": [{"email": "a1@example.com"}, {"email": "a2@example.com"}],
        "destination": {"kind": "store", "url": f"sqlite:///{data / 'comments.db'}"},
        "staging": {"url": str(data / "staging")},
        "state": {"url": f"sqlite:///{data / 'state.db'}"},
    }
    (root / "deployments" / "uitest.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    (root / "prefect.yaml").write_text(yaml.safe_dump({"definitions": {"exchange_sync": {
        "work_pool": pool, "cron": "0 0 1 1 *"}}}), encoding="utf-8")
    env = {**os.environ, "PREFECT_API_URL": api, "EXSYNC_UI_PASSWORD": password,
           "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    deploy = subprocess.run([str(BIN / "exchange-sync"), "deploy", "--project", str(root)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    dep = httpx.get(f"{api}/deployments/name/exchange-sync/uitest", timeout=30).json()
    worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", pool, "--limit", "2"], env=env,
                              stdout=open(tmp_path / "worker.log", "wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 2400})
            page.goto(f"{ui}/deployments/deployment/{dep['id']}/run", wait_until="networkidle")
            # Every setting is a titled form field (not one raw JSON value).
            for title in ("Integration name", "Exchange server URL", "Authentication", "Username", "Password",
                          "Access type", "Prefect Secret block", "Environment variable", "TLS",
                          "Verify the server certificate", "CA bundle", "Cipher suites", "Minimum TLS version",
                          "Maximum TLS version", "Mailboxes", "Email address", "Start time", "Folders to sync",
                          "Folders to skip", "Destination", "Kind", "URL"):
                # Waits: the form renders after "networkidle" (a bare count() raced it under load).
                expect(_field(page, title).first).to_be_attached(timeout=60_000)
            server = _field(page, "Exchange server URL").locator("textarea").first
            assert server.input_value() == ews.url
            mailboxes = _field(page, "Mailboxes").first.locator(".p-draggable-list__item")
            expect(mailboxes).to_have_count(2)
            # Remove the second mailbox (the item's delete button), then submit the custom run.
            mailboxes.nth(1).locator(".schema-form-property-array-item__control").first.locator(":scope > button").click()
            expect(mailboxes).to_have_count(1)  # waits for the form to re-render (a bare count() raced it)
            submit = page.get_by_role("button", name="Submit")
            expect(submit).to_be_enabled()
            submit.click()
            run = None
            deadline = time.monotonic() + 180  # the UI's request under CI load
            while run is None and time.monotonic() < deadline:
                runs = httpx.post(f"{api}/flow_runs/filter", json={"deployments": {"id": {"any_": [dep["id"]]}}},
                                  timeout=30).json()
                run = next((r for r in runs if len(r["parameters"].get("mailboxes", [])) == 1), None)
                time.sleep(1)
            assert run is not None, ("the custom run was not created", page.url,
                                     [len(r["parameters"].get("mailboxes", [])) for r in runs],
                                     page.inner_text("body")[:1500])
            assert [m["email"] for m in run["parameters"]["mailboxes"]] == ["a1@example.com"]
            deadline = time.monotonic() + 300
            while True:
                state = httpx.get(f"{api}/flow_runs/{run['id']}", timeout=30).json()["state"]
                if state and state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                    break
                assert time.monotonic() < deadline, ("run not finished", state)
                time.sleep(2)
            assert state["type"] == "COMPLETED", state
            # The run's artifacts, as the flow run page shows them.
            arts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}},
                              timeout=30).json()
            assert {"table", "markdown", "progress"} <= {a["type"] for a in arts}
            page.goto(f"{ui}/runs/flow-run/{run['id']}", wait_until="networkidle")
            page.get_by_text("Artifacts", exact=True).first.click()
            time.sleep(3)
            text = page.inner_text("body")
            assert "uitest-report" in text, text[:3000]
            browser.close()
    finally:
        _stop(worker)
    from exchange_sync.store import SqlStore

    synced = SqlStore(cfg["state"]["url"]).list_runs("uitest", limit=1)[0].summary["mailboxes"]
    assert [m["mailbox"] for m in synced] == ["a1@example.com"]
