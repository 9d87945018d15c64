"""Integration errors as records, through the real flow against the EWS test server: each run records
its errors with the hosted product's kind, the mailbox, the action taken and the time;
`exchange-sync errors` lists them; the flow shows the latest as a table artifact; the destination
refusing for quota (`comment_quota_hit`) pauses the integration's deployments like bad credentials,
and nothing is lost once the quota is raised."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ews_testserver.testing import date_n, make_mime
from tests.support.pipeline import run_cli, write_config

from .conftest import ACCOUNT, PASSWORD_ENV, make_config

pytestmark = pytest.mark.timeout(300)


def _errors_cli(config_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exchange_sync", "errors", str(config_path), *args],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def _latest_artifact(key: str):
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return max(found, key=lambda a: a.created) if found else None


def test_mailbox_errors_are_recorded_with_kind_and_action(ews, password, prefect_api, tmp_path):
    srv = ews(["ap@example.com=generate:3", "denied@example.com=generate:1"], grants=[f"{ACCOUNT}=ap@example.com"])
    srv.add_message("ap@example.com", make_mime("Spam", "<spam@x>", date_n(9), sender="spam@mx.blocked.net"))
    ap = {"email": "ap@example.com", "participant_domain_denylist": ["blocked.net"]}
    data = make_config(srv, tmp_path, [ap, "denied@example.com", "nosuch@example.com"],
                       name="errs", disable_after_failures=1)
    run = run_cli(data, tmp_path, env={PASSWORD_ENV: password}, prefect_api=prefect_api)
    assert run.returncode == 3, run.stderr[-3000:]  # completed, some mailboxes skipped
    config_path = write_config(data, tmp_path / "errs.yaml")
    listed = _errors_cli(config_path, "--json")
    assert listed.returncode == 0, listed.stderr
    errors = json.loads(listed.stdout)
    assert {e["mailbox"]: (e["kind"], e["action"]) for e in errors} == {
        "denied@example.com": ("mailbox_access_denied", "mailbox_disabled"),  # disable_after_failures: 1
        "nosuch@example.com": ("mailbox_not_found", "mailbox_disabled"),
    }
    assert all(e["occurred_at"] and e["reason"] == e["kind"] for e in errors)
    assert password not in listed.stdout
    table = _errors_cli(config_path, "--limit", "1")
    assert table.returncode == 0 and table.stdout.count("mailbox_disabled") == 1, table.stdout
    artifact = _latest_artifact("errs-errors")
    assert artifact is not None and artifact.type == "table"
    assert "mailbox_access_denied" in json.dumps(artifact.data) and password not in json.dumps(artifact.data)
    missing = _errors_cli(tmp_path / "no-such.yaml")
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "Traceback" not in missing.stderr
    # `usage` shows what the participant filters left out (never billed) next to the billed counts.
    usage = subprocess.run([sys.executable, "-m", "exchange_sync", "usage", str(config_path), "--json"],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    rows = json.loads(usage.stdout)
    assert [(r["mailbox"], r["filtered"]) for r in rows if r["filtered"]] == [("ap@example.com", 1)]
    assert sum(r["units"] for r in rows) == sum(r["new"] for r in rows) > 0


def test_comment_quota_hit_pauses_the_integration_and_loses_nothing(ews, sync, tmp_path, monkeypatch):
    from prefect import get_client

    from exchange_sync.deploy.names import FLOW_NAME, integration_tag
    from exchange_sync.store import SqlStore
    from exchange_sync.store.errors import list_errors
    from tests.support.api import running_api

    srv = ews(["ap@example.com=generate:6"])
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(FLOW_NAME)
        deployment_id = client.create_deployment(flow_id=flow_id, name="quota-e2e", tags=[integration_tag("quota")])
    # The run acts as a run of that deployment (Prefect's documented runtime override), as under a worker.
    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__ID", str(deployment_id))
    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__NAME", "quota-e2e")
    monkeypatch.setenv("EXCHANGE_SYNC_SERVER_LIMIT", "0")  # no server concurrency limit for this fake deployment
    monkeypatch.setenv("EXSYNC_QUOTA_TOKEN", "quota-token-" + "t" * 20)
    data = make_config(srv, tmp_path, ["ap@example.com"], name="quota", batch_size=2)
    data["destination"] = {"kind": "reinfer", "url": "", "project": "acme", "source": "mail",
                           "token": {"env": "EXSYNC_QUOTA_TOKEN"}}
    api_db = f"sqlite:///{tmp_path / 'api.db'}"
    with running_api(api_db, token="quota-token-" + "t" * 20, comment_quota=3) as api:
        data["destination"]["url"] = api.url
        summary, code = sync(data)
        assert code == 1
        assert summary["mailboxes"][0]["reason"] == "unexpected_error" and "quota" in summary["mailboxes"][0]["errors"]
        assert any(n.startswith("comment_quota_hit: deployments quota-e2e paused") for n in summary["notes"]), summary
        with get_client(sync_client=True) as client:
            assert client.read_deployment(deployment_id).paused
        [error] = list_errors(SqlStore(data["state"]["url"]), "quota")
        assert (error.kind, error.mailbox, error.action) == ("comment_quota_hit", None, "integration_disabled")
        held = api.store.count_comments("acme/mail")
        assert 0 < held <= 3  # the pages that fit; the first one past the quota was refused whole
        artifact = _latest_artifact("quota-errors")
        assert artifact is not None and "comment_quota_hit" in json.dumps(artifact.data)
    with running_api(api_db, token="quota-token-" + "t" * 20) as api:  # the quota raised
        data["destination"]["url"] = api.url
        summary, code = sync(data)
        assert code == 0, summary
        assert api.store.count_comments("acme/mail") == 6  # nothing lost
        assert summary["totals"]["new"] == 6 - held
