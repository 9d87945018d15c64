"""Integrations as Prefect deployments, end to end: `exchange-sync deploy` against a real Prefect
server, flow runs executed by a real process worker against the EWS test server (HTTPS + NTLM),
the per-server concurrency limit, backfills, pausing on bad credentials, stop/start across
redeploys, and no secret readable through the Prefect API."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from .conftest import (api_text, cli, integration_config, run_logs, save_secret, schema_problems, wait_final,
                       write_project)

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, ews, password, pool_name, worker_factory):
    root = tmp_path_factory.mktemp("project")
    data = tmp_path_factory.mktemp("data")
    good, bad = f"exsync-pw-{pool_name}", f"exsync-wrong-{pool_name}"
    wrong_password = password + "-wrong"
    save_secret(good, password)
    save_secret(bad, wrong_password)
    configs = {
        "alpha": integration_config("alpha", ews, data, ["a1@example.com", "a2@example.com"], good,
                                    concurrency={"mailboxes": 2}),
        "beta": integration_config("beta", ews, data, ["b1@example.com", "b2@example.com"], good,
                                   concurrency={"mailboxes": 2}),
        "gamma": integration_config("gamma", ews, data, ["g1@example.com"], bad),
    }
    # A yearly cron: no scheduled run interferes with the runs the tests trigger.
    write_project(root, list(configs.values()), {"work_pool": pool_name, "cron": "0 0 1 1 *"})
    code, out = cli("deploy", "--project", str(root), "--server-limit", "1")
    assert code == 0, out
    worker_factory(pool_name)
    return SimpleNamespace(root=root, data=data, configs=configs, password=password,
                           wrong_password=wrong_password, out=out, pool=pool_name)


def _client():
    from prefect import get_client

    return get_client(sync_client=True)


def _deployment(name: str):
    with _client() as client:
        return client.read_deployment_by_name(f"exchange-sync/{name}")


def _run(name: str, **kw):
    from prefect.deployments import run_deployment

    return run_deployment(f"exchange-sync/{name}", timeout=0, **kw)


def test_deploy_registers_deployments_pool_and_server_limit(deployed, ews, pool_name):
    from exchange_sync.config import parse_config

    with _client() as client:
        pool = client.read_work_pool(pool_name)
        assert pool.type == "process"
        server_key = parse_config(deployed.configs["alpha"]).connection.server_key
        limit = client.read_global_concurrency_limit_by_name(server_key)
        assert limit.limit == 1 and limit.active
    alpha = _deployment("alpha")
    assert alpha.work_pool_name == pool_name
    assert alpha.global_concurrency_limit.limit == 1
    assert alpha.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert [s.schedule.cron for s in alpha.schedules] == ["0 0 1 1 *"]
    assert alpha.entrypoint == "flows.sync_integration:sync_ews"  # the EWS form flow
    assert "integration:alpha" in alpha.tags and not alpha.paused
    # The deployment's parameters are the file's configuration, secret reference included.
    from exchange_sync.forms import config_from_parameters

    assert config_from_parameters(alpha.parameters) == parse_config(deployed.configs["alpha"])
    assert alpha.parameters["password"] == {"secret_block": f"exsync-pw-{pool_name}", "env": ""}
    backfill = _deployment("alpha-backfill")
    assert backfill.schedules == [] and backfill.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert backfill.parameters["mode"] == "backfill"
    # prefect.yaml lists the same deployments (what `prefect deploy --all` would register).
    doc = yaml.safe_load((deployed.root / "prefect.yaml").read_text())
    names = [d["name"] for d in doc["deployments"]]
    assert names == ["alpha", "alpha-backfill", "beta", "beta-backfill", "gamma", "gamma-backfill"]
    assert doc["deployments"][0]["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert doc["definitions"]["exchange_sync"]["work_pool"] == pool_name


def _mailbox_blocks(entries: list[dict]) -> list[str]:
    """The sequence of mailboxes in the server's log order, consecutive repeats collapsed."""
    blocks: list[str] = []
    for e in entries:
        mb = e.get("mailbox")
        if mb and (not blocks or blocks[-1] != mb):
            blocks.append(mb)
    return blocks


def test_runs_through_worker_one_mailbox_at_a_time_per_server(deployed, ews):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from exchange_sync.config import parse_config
    from exchange_sync.store import SqlStore

    mark = ews.last_seq()
    runs = [_run("alpha"), _run("beta")]
    final = wait_final([r.id for r in runs])
    for run in final.values():
        assert run.state.is_completed(), (run.name, run.state.message)
    names = sorted(r.name for r in final.values())
    assert names[0].startswith("sync-alpha-") and names[1].startswith("sync-beta-"), names
    # The server limit (1 slot) let one mailbox talk to Exchange at a time, across both runs.
    entries = [e for e in ews.log(mark) if e.get("mailbox")]
    blocks = _mailbox_blocks(entries)
    assert sorted(blocks) == ["a1@example.com", "a2@example.com", "b1@example.com", "b2@example.com"], blocks
    # Every mail synced, and the run's table artifact says what the store holds.
    with _client() as client:
        for run in final.values():
            name = "alpha" if run.name.startswith("sync-alpha-") else "beta"
            arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
            kinds = {a.type for a in arts}
            assert {"table", "markdown", "progress"} <= kinds, kinds
            table = next(a for a in arts if a.type == "table")
            rows = json.loads(table.data) if isinstance(table.data, str) else table.data
            assert sum(r["items"] for r in rows) >= 24  # 12 generated messages per mailbox (+ threads)
            store = SqlStore(deployed.configs[name]["destination"]["url"])
            stored = store.count_comments(parse_config(deployed.configs[name]).destination.source_key)
            assert stored > 0 and sum(r["new"] for r in rows) == stored
            markdown = next(a for a in arts if a.type == "markdown")
            assert f"run of `{name}`" in markdown.data
            assert markdown.description and table.description
            # Progress per page: items done of items known, 100 % at the end.
            progress = next(a for a in arts if a.type == "progress")
            assert float(progress.data) == 100.0 and "items known" in progress.description, progress
            assert progress.description.startswith(f"{sum(r['items'] for r in rows)} of ")
            # Task runs say mailbox and folder; run logs are sentences, not Python dicts.
            from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])), limit=200)
            transforms = [t.name for t in tasks if t.name.startswith("transform")]
            assert transforms and all(t.startswith("transform " + name[0]) for t in transforms), transforms
            assert any(t.endswith(" Inbox") for t in transforms), transforms
            def synced(m: str) -> bool:
                return m.startswith(f"Mailbox {name[0]}1@example.com synced: ") and " new, " in m

            logs = run_logs(client, run.id, synced)
            assert any(synced(m) for m in logs), logs
            assert not any("{'new'" in m for m in logs)


def test_parameter_schema_is_a_form_the_ui_renders(deployed, prefect_api):
    """The schema as the UI receives it (GET /api/deployments/name/...): no union of objects, every
    property titled and described, every setting of the brief present as a field."""
    import httpx

    data = httpx.get(f"{prefect_api}/deployments/name/exchange-sync/alpha", timeout=30).json()
    schema = data["parameter_openapi_schema"]
    assert schema_problems(schema) == []
    props, defs = schema["properties"], schema["definitions"]
    assert {"integration", "server_url", "auth", "username", "password", "access_type", "tls", "mailboxes",
            "destination"} <= set(props)
    assert set(props["access_type"]["enum"]) == {"delegate", "impersonation"}
    assert {"verify", "ca_bundle", "ciphers", "min_version", "max_version"} <= set(defs["TlsForm"]["properties"])
    assert {"email", "start_timestamp", "folder_allowlist", "folder_denylist"} <= set(defs["MailboxForm"]["properties"])
    assert {"secret_block", "env"} == set(defs["SecretRefForm"]["properties"])
    assert {"kind", "url", "project", "source"} <= set(defs["DestinationForm"]["properties"])
    # The check itself fails on the shape it replaces (the config parameter with its unions).
    from exchange_sync.deploy.register import _flow_schema

    assert any("oneOf" in p for p in schema_problems(_flow_schema("flows.sync_integration:sync_integration")))


def test_custom_run_with_only_mailboxes_changed(deployed, ews):
    """Prefect replaces a nested parameter whole: a run overriding only `mailboxes` keeps the rest."""
    mark = ews.last_seq()
    run = _run("beta", parameters={"mailboxes": [{"email": "b2@example.com"}]})
    final = wait_final([run.id])[run.id]
    assert final.state.is_completed(), final.state.message
    touched = {e["mailbox"] for e in ews.log(mark) if e.get("mailbox")}
    assert touched == {"b2@example.com"}, touched


def test_a_skipped_mailbox_is_visible_as_such_in_the_ui(deployed):
    """A custom run with a mailbox the server does not have (mailbox_not_found: skipped by design):
    that mailbox's task run is named Skipped with the reason, the other one Completed."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    run = _run("beta", parameters={"mailboxes": [{"email": "b1@example.com"}, {"email": "nobody@example.com"}]})
    wait_final([run.id])
    with _client() as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])), limit=200)
    states = {t.name: t.state.name for t in tasks if t.name.startswith("sync-mailbox")}
    assert states == {"sync-mailbox nobody@example.com": "Skipped", "sync-mailbox b1@example.com": "Completed"}, states
    skipped = next(t for t in tasks if t.name == "sync-mailbox nobody@example.com")
    assert "mailbox_not_found" in skipped.state.message


def test_a_failed_mailbox_report_is_a_failed_task_state():
    from exchange_sync.pipeline.mailbox import MailboxReport
    from flows.sync_integration import _as_state

    failed = MailboxReport(mailbox="x@example.com", status="failed", reason="unexpected_error", error="E",
                           cause_reason="destination_unavailable")
    state = _as_state(failed)
    assert state.is_failed() and "x@example.com failed (unexpected_error): E" in state.message
    assert state.data is failed  # the flow reads the report (and its integration-wide reason) from the state
    ok = MailboxReport(mailbox="x@example.com")
    assert _as_state(ok) is ok


def test_custom_run_with_another_server_url_creates_its_limit(deployed, ews):
    """Another server URL for one run: its per-server limit is created by the run, no deploy step."""
    from prefect.exceptions import ObjectNotFound

    from exchange_sync.config import parse_config

    url = ews.url.replace("127.0.0.1", "localhost")
    cfg = deployed.configs["beta"]
    key = parse_config({**cfg, "connection": {**cfg["connection"], "server_url": url}}).connection.server_key
    assert key.startswith("ews-localhost-"), key
    with _client() as client:
        with pytest.raises(ObjectNotFound):  # nothing deployed on that server
            client.read_global_concurrency_limit_by_name(key)
    run = _run("beta", parameters={"server_url": url})
    final = wait_final([run.id])[run.id]
    assert final.state.is_completed(), final.state.message

    with _client() as client:
        logs = run_logs(client, run.id, lambda m: f"Created the concurrency limit {key}" in m)
        assert any(f"Created the concurrency limit {key}" in m for m in logs), logs
        limits = {lim.name: lim.limit for lim in client.read_global_concurrency_limits(limit=200)}
        assert limits.get(key) == 4, logs  # connections_per_server's default


def test_custom_run_with_an_invalid_form_fails_clearly(deployed):
    run = _run("beta", parameters={"password": {"secret_block": "x", "env": "Y"}})
    final = wait_final([run.id])[run.id]
    assert final.state.is_failed()
    assert "not a valid configuration" in final.state.message and "password" in final.state.message


def test_backfill_submission_is_chunked_tagged_and_idempotent(deployed):
    args = ("backfill", "alpha", "--start", "2023-12-15", "--end", "2024-02-01", "--mailbox", "a1@example.com",
            "--json")
    code, out = cli(*args)
    assert code == 0, out
    first = json.loads(out)
    assert [(r["start"][:10], r["end"][:10]) for r in first] == [("2023-12-15", "2024-01-15"),
                                                                 ("2024-01-15", "2024-02-01")]
    code, out = cli(*args)
    assert code == 0, out
    again = json.loads(out)
    assert [r["flow_run_id"] for r in again] == [r["flow_run_id"] for r in first]
    final = wait_final([r["flow_run_id"] for r in first])
    ordered = sorted(final.values(), key=lambda r: r.parameters["start"])
    for run in ordered:
        assert run.state.is_completed(), (run.name, run.state.message)
        assert run.name.startswith("backfill-alpha-"), run.name
        assert "backfill" in run.tags
        assert run.parameters["mode"] == "backfill" and run.parameters["only_mailboxes"] == ["a1@example.com"]
    from exchange_sync.store import SqlStore

    history = SqlStore(deployed.configs["alpha"]["state"]["url"]).list_runs("alpha")
    items = sorted(r.summary["items"] for r in history if r.mode == "backfill")
    synced = next(r for r in history if r.mode == "incremental").summary["mailboxes"]
    a1_items = next(m["items"] for m in synced if m["mailbox"] == "a1@example.com")
    # The generated mail is from the first days of 2024: all of a1's in the first chunk, none in the second.
    assert items == [0, a1_items] and a1_items > 0, (items, a1_items)


def test_bad_credentials_fail_the_run_and_pause_the_integration(deployed):
    run = _run("gamma")
    final = wait_final([run.id])[run.id]
    assert final.state.is_failed()
    assert _deployment("gamma").paused and _deployment("gamma-backfill").paused
    assert not _deployment("alpha").paused
    from exchange_sync.store import SqlStore

    summary = SqlStore(deployed.configs["gamma"]["state"]["url"]).list_runs("gamma", limit=1)[0].summary
    assert any("paused" in n for n in summary["notes"]), summary
    assert summary["mailboxes"][0]["reason"] == "invalid_exchange_credentials"


def test_stop_survives_redeploy_and_start_resumes(deployed):
    code, out = cli("stop", "alpha")
    assert code == 0, out
    assert _deployment("alpha").paused and _deployment("alpha-backfill").paused
    code, out = cli("deploy", "--project", str(deployed.root))
    assert code == 0, out
    assert "kept paused" in out
    assert _deployment("alpha").paused, "a redeploy restarted a stopped integration"
    assert not _deployment("beta").paused
    code, out = cli("start", "alpha")
    assert code == 0, out
    assert not _deployment("alpha").paused and not _deployment("alpha-backfill").paused
    code, out = cli("stop", "no-such-integration")
    assert code == 2 and "no deployment" in out


def test_ui_edit_survives_redeploy_and_diff_shows_it(deployed):
    """Parameters and a schedule edited in the UI (the same PATCH/POST the UI sends) are kept by
    `exchange-sync deploy` with a message, shown by `exchange-sync diff`, overwritten by --force."""
    from datetime import timedelta

    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.client.schemas.schedules import IntervalSchedule

    code, out = cli("diff", "beta", "--project", str(deployed.root))
    assert code == 0 and "same as the files" in out, out
    beta = _deployment("beta")
    edited = {**beta.parameters, "mailboxes": [{"email": "b1@example.com"}]}
    with _client() as client:
        client.update_deployment(beta.id, DeploymentUpdate(parameters=edited))
    code, out = cli("deploy", "--project", str(deployed.root))
    assert code == 0, out
    assert "kept     exchange-sync/beta  (edited in the UI" in out, out
    assert _deployment("beta").parameters["mailboxes"] == [{"email": "b1@example.com"}]
    assert "updated  exchange-sync/alpha" in out  # the others are written as before
    code, out = cli("diff", "beta", "--project", str(deployed.root))
    assert code == 1 and "b2@example.com" in out and "server: exchange-sync/beta" in out, out
    # A schedule added in the UI is an edit too (here on top of the edited parameters).
    with _client() as client:
        client.create_deployment_schedules(beta.id, [(IntervalSchedule(interval=timedelta(hours=6)), True)])
    code, out = cli("deploy", "--project", str(deployed.root), "--only", "beta")
    assert code == 0 and "kept     exchange-sync/beta" in out, out
    assert len(_deployment("beta").schedules) == 2
    code, out = cli("deploy", "--project", str(deployed.root), "--only", "beta", "--force")
    assert code == 0 and "updated  exchange-sync/beta" in out, out
    restored = _deployment("beta")
    assert len(restored.parameters["mailboxes"]) == 2 and len(restored.schedules) == 1
    code, out = cli("diff", "beta", "--project", str(deployed.root))
    assert code == 0, out


def test_example_configuration_is_deployed_only_when_asked(tmp_path, deployed):
    import shutil

    root = write_project(tmp_path, [deployed.configs["alpha"] | {"name": "own"}])
    shutil.copy(Path(__file__).parents[2] / "deployments" / "example.yaml", root / "deployments" / "example.yaml")
    code, out = cli("deploy", "--project", str(root), "--no-register")
    assert code == 0, out
    assert "skipped  example" in out and "exchange-sync/own" in out and "exchange-sync/example" not in out
    assert "name: example" not in (root / "prefect.yaml").read_text()
    code, out = cli("deploy", "--project", str(root), "--no-register", "--only", "example")
    assert code == 0 and "exchange-sync/example" in out, out


def test_no_secret_is_readable_through_the_prefect_api(deployed):
    """After the runs above (including the failed credentials run), scan what the API serves."""
    text = api_text()
    assert "sync-alpha-" in text and "invalid_exchange_credentials" in text  # the scan saw the runs and logs
    assert deployed.password not in text
    assert deployed.wrong_password.split("-wrong")[0] not in text


def test_prefect_deploy_all_registers_what_exchange_sync_deploy_writes(tmp_path, pool_name, prefect_api):
    """`prefect deploy --all` on the generated prefect.yaml gives the same deployment (compatibility)."""
    import os
    import subprocess
    import sys

    cfg = {"name": "delta", "connection": {"server_url": "https://mail.delta.example/EWS/Exchange.asmx",
                                           "username": "svc", "password": {"env": "DELTA_PW"},
                                           "access_type": "delegate"},
           "mailboxes": [{"email": "x@delta.example"}]}
    root = write_project(tmp_path, [cfg], {"work_pool": pool_name + "-idle", "interval_s": 600})
    code, out = cli("deploy", "--project", str(root))
    assert code == 0, out
    ours = _deployment("delta")
    with _client() as client:
        client.delete_deployment(ours.id)
    proc = subprocess.run([str(Path(sys.executable).with_name("prefect")), "--no-prompt", "deploy", "--all"],
                          cwd=root, env={**os.environ, "PREFECT_API_URL": prefect_api},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    theirs = _deployment("delta")
    assert theirs.parameters == ours.parameters
    assert theirs.entrypoint == ours.entrypoint
    assert theirs.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert [s.schedule.interval.total_seconds() for s in theirs.schedules] == [600]
    assert theirs.work_pool_name == pool_name + "-idle"
