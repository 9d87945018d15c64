"""A Microsoft Graph integration as Prefect deployments (issues #18 and #19): `exchange-sync deploy`
against the session's real Prefect server, the Graph form (tenant, client id, the client secret as a
Secret-block reference, TLS, mailboxes, destination), a custom run changing only the mailboxes and a
backfill, both executed by a real process worker against the Graph test server (HTTPS, client
credentials), stop/start, and edits kept by a redeploy. An integration with `watch.enabled` also
gets a `<name>-watch` deployment (issue #16): its run watches until `exchange-sync stop` cancels it."""

from __future__ import annotations

import json
import secrets
from types import SimpleNamespace

import httpx
import pytest

from graph_testserver.testing import running_graph_server

from .conftest import api_text, cli, run_logs, save_secret, schema_problems, wait_final, write_project

pytestmark = pytest.mark.timeout(600)

BOXES = ["g1@example.com", "g2@example.com"]
WATCHED = "g3@example.com"


@pytest.fixture(scope="module")
def graph_srv():
    secret = "gs-" + secrets.token_hex(12)  # random, so that the secret scan below means something
    with running_graph_server(mailboxes=[f"{b}=generate:6" for b in [*BOXES, WATCHED]],
                              apps=[f"exsync-app:{secret}"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def graph_deployed(tmp_path_factory, graph_srv, pool_name, worker_factory, prefect_api):
    root = tmp_path_factory.mktemp("graph-project")
    data = tmp_path_factory.mktemp("graph-data")
    block = f"exsync-graph-secret-{pool_name}"
    save_secret(block, graph_srv.client_secret)

    def config(name: str, mailboxes: list[str], **extra) -> dict:
        return {
            "name": name,
            "connection": graph_srv.connection(client_secret={"secret_block": block}, max_backoff_s=5),
            "mailboxes": [{"email": b} for b in mailboxes],
            "destination": {"kind": "store", "url": f"sqlite:///{data / (name + '-comments.db')}"},
            "staging": {"url": str(data / f"{name}-staging")},
            "state": {"url": f"sqlite:///{data / (name + '-state.db')}"},
            "transform_workers": 0,  # a few messages: no transform processes to spawn on a loaded machine
            **extra,
        }

    cfg = config("ginteg", BOXES)
    watched = config("gwatch", [WATCHED], watch={"enabled": True, "graph_interval_s": 2})
    # A yearly cron: no scheduled poll interferes with the runs the tests trigger.
    write_project(root, [cfg, watched], {"work_pool": pool_name, "cron": "0 0 1 1 *"})
    code, out = cli("deploy", "--project", str(root))
    assert code == 0, out
    worker_factory(pool_name)
    # The watcher starts now, so that it comes up on the worker while the other tests run.
    code, started = cli("start", "gwatch")
    assert code == 0, started
    yield SimpleNamespace(root=root, cfg=cfg, watched=watched, block=block, out=out, started=started)
    # No watcher outlives the module (the worker's end does not end its flow runs' processes).
    cli("stop", "gwatch")
    with _client() as client:
        wait_final([r.id for r in _watch_runs(client)], deadline_s=60)


def _client():
    from prefect import get_client

    return get_client(sync_client=True)


def _deployment(name: str):
    with _client() as client:
        return client.read_deployment_by_name(f"exchange-sync/{name}")


def _watch_runs(client) -> list:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    return client.read_flow_runs(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["gwatch-watch"])))


def test_graph_integration_deploys_with_a_form(graph_deployed, graph_srv, prefect_api):
    from exchange_sync.config import parse_config
    from exchange_sync.forms import config_from_parameters

    assert "created  exchange-sync/ginteg" in graph_deployed.out and "created  exchange-sync/ginteg-backfill" in \
        graph_deployed.out, graph_deployed.out
    dep = _deployment("ginteg")
    assert dep.entrypoint == "flows.sync_graph:sync_graph"
    assert "tenant " + graph_srv.tenant_id in dep.description
    params = dep.parameters
    assert params["tenant_id"] == graph_srv.tenant_id and params["client_id"] == graph_srv.client_id
    assert params["client_secret"] == {"secret_block": graph_deployed.block, "env": ""}
    assert params["tls"]["ca_bundle"] == graph_srv.ca_file
    assert config_from_parameters(params) == parse_config(graph_deployed.cfg)
    assert graph_srv.client_secret not in json.dumps(params)  # a reference, never the secret
    # The schema as the UI receives it: titled, described fields, no union of objects.
    schema = httpx.get(f"{prefect_api}/deployments/name/exchange-sync/ginteg", timeout=30).json()[
        "parameter_openapi_schema"]
    assert schema_problems(schema) == []
    assert {"tenant_id", "client_id", "client_secret", "certificate", "graph_url", "authority", "tls", "mailboxes",
            "destination", "only_mailboxes"} <= set(schema["properties"])
    assert schema["properties"]["client_secret"]["title"] == "Client secret"
    # The per-server limit is the Graph endpoint + tenant's.
    key = parse_config(graph_deployed.cfg).connection.server_key
    assert key.startswith("graph-")
    with _client() as client:
        assert client.read_global_concurrency_limit_by_name(key).limit == 4
    # Nothing edited: the files and the server agree, and a redeploy updates (does not keep) them.
    code, out = cli("diff", "ginteg", "--project", str(graph_deployed.root))
    assert code == 0 and "same as the files" in out, out
    code, out = cli("deploy", "--project", str(graph_deployed.root))
    assert code == 0 and "updated  exchange-sync/ginteg" in out and "kept" not in out, out


def test_graph_custom_run_and_backfill_run_on_a_worker(graph_deployed):
    """A custom run with only `mailboxes` changed syncs that mailbox alone; a backfill submitted by
    name syncs its window for the mailbox asked, both through the worker against the Graph server."""
    from prefect.deployments import run_deployment

    from exchange_sync.config import parse_config
    from exchange_sync.store import SqlStore

    run = run_deployment("exchange-sync/ginteg", parameters={"mailboxes": [{"email": "g2@example.com"}]}, timeout=0)
    code, out = cli("backfill", "ginteg", "--start", "2023-12-01", "--end", "2024-12-01", "--chunk-days", "366", "--mailbox",
                    "g1@example.com", "--json")
    assert code == 0, out
    backfills = [r["flow_run_id"] for r in json.loads(out)]
    assert len(backfills) == 1, out
    final = wait_final([run.id, *backfills])
    for flow_run in final.values():
        assert flow_run.state.is_completed(), (flow_run.name, flow_run.state.message)
    history = SqlStore(graph_deployed.cfg["state"]["url"]).list_runs("ginteg")
    by_mode = {r.mode: [(m["mailbox"], m["status"], m["items"]) for m in r.summary["mailboxes"]] for r in history}
    assert [m[:2] for m in by_mode["incremental"]] == [("g2@example.com", "ok")], by_mode
    assert [m[:2] for m in by_mode["backfill"]] == [("g1@example.com", "ok")], by_mode
    assert by_mode["incremental"][0][2] > 0 and by_mode["backfill"][0][2] > 0, by_mode
    cfg = parse_config(graph_deployed.cfg)
    assert SqlStore(cfg.destination.url).count_comments(cfg.destination.source_key) > 0


def test_graph_stop_start_and_an_edit_kept_by_redeploy(graph_deployed):
    from prefect.client.schemas.actions import DeploymentUpdate

    code, out = cli("stop", "ginteg")
    assert code == 0, out
    assert _deployment("ginteg").paused and _deployment("ginteg-backfill").paused
    code, out = cli("start", "ginteg")
    assert code == 0, out
    assert not _deployment("ginteg").paused and not _deployment("ginteg-backfill").paused
    dep = _deployment("ginteg")
    with _client() as client:
        client.update_deployment(dep.id, DeploymentUpdate(parameters={**dep.parameters, "client_id": "edited"}))
    code, out = cli("deploy", "--project", str(graph_deployed.root))
    assert code == 0 and "kept     exchange-sync/ginteg  (edited in the UI" in out, out
    code, out = cli("diff", "ginteg", "--project", str(graph_deployed.root))
    assert code == 1 and "edited" in out, out


def test_watch_deployment_watches_until_stopped(graph_deployed):
    """`<name>-watch`: the poll's form, a restart-check schedule that never overlaps; `start` (in the
    fixture) runs the watcher on the worker (it syncs the mailbox from the Graph server), `stop`
    cancels it and it ends gracefully: Cancelled, with its summary and log lines."""
    import time

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from exchange_sync.config import parse_config
    from exchange_sync.store import SqlStore

    watch, poll = _deployment("gwatch-watch"), _deployment("gwatch")
    assert watch.entrypoint == "flows.watch_integration:watch_graph"
    assert {"watch", "integration:gwatch"} <= set(watch.tags)
    assert [s.schedule.interval.total_seconds() for s in watch.schedules] == [900]
    assert watch.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert watch.global_concurrency_limit.limit == 1
    assert watch.parameters == poll.parameters  # the same form; the poll keeps its schedule (here the cron)
    assert [s.schedule.cron for s in poll.schedules] == ["0 0 1 1 *"]
    assert "created  exchange-sync/gwatch-watch" in graph_deployed.out
    assert _deployment("ginteg").entrypoint == "flows.sync_graph:sync_graph"  # no watch for ginteg
    # `exchange-sync start` (in the fixture) created a watch run, or found the scheduler's.
    assert "exchange-sync/gwatch-watch: started" in graph_deployed.started, graph_deployed.started
    cfg = parse_config(graph_deployed.watched)
    store = SqlStore(cfg.destination.url)
    deadline = time.monotonic() + 240  # against hangs, not a timing check
    with _client() as client:
        while True:
            running = [r for r in _watch_runs(client) if r.state and r.state.is_running()]
            synced = running and store.count_comments(cfg.destination.source_key) > 0
            if synced:
                break
            assert time.monotonic() < deadline, [(r.name, r.state_name) for r in _watch_runs(client)]
            time.sleep(1)
    run = running[0]
    assert run.name.startswith("watch-gwatch-"), run.name
    code, out = cli("stop", "gwatch")
    assert code == 0 and f"watch run {run.name}: cancelled" in out, out
    final = wait_final([run.id])[run.id]
    assert final.state.is_cancelled(), (final.state_name, final.state.message)
    assert _deployment("gwatch-watch").paused and _deployment("gwatch").paused
    with _client() as client:
        logs = run_logs(client, run.id, lambda m: m.startswith("Watch of gwatch stopped"))
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    assert any(m.startswith("Watch of gwatch stopped") for m in logs), logs
    # The table while it ran (from the state database, after ~10 s), then the summary when it stopped.
    versions = [json.loads(a.data) if isinstance(a.data, str) else a.data
                for a in sorted((a for a in arts if a.key == "gwatch-watch"), key=lambda a: a.created)]
    assert all([(r["mailbox"], r["mode"]) for r in rows] == [(WATCHED, "graph_polling")] for rows in versions), versions
    assert versions[-1][0]["items"] > 0 and versions[-1][0]["syncs"] > 0, versions
    assert len(versions) >= 2 and "lag_s" in versions[0][0], versions


def test_no_graph_secret_is_readable_through_the_prefect_api(graph_deployed, graph_srv):
    """After the Graph runs and the watch above: the client secret is in no run, log, artifact or deployment."""
    text = api_text()
    assert "watch-gwatch-" in text and "sync-ginteg-" in text  # the scan saw the runs
    assert graph_srv.client_secret not in text


def test_watch_specs_poll_as_safety_net(tmp_path):
    """Without a cron, a watched integration's poll runs hourly (the safety net) and its watch
    deployment checks every 15 minutes; both intervals are settings; EWS gets its watch flow."""
    import yaml

    from exchange_sync.deploy.spec import build_specs, discover_configs, load_settings

    ews = {"name": "w", "connection": {"server_url": "https://mail.example.com/EWS/Exchange.asmx", "username": "svc",
                                       "password": {"env": "W_PW"}, "access_type": "delegate"},
           "mailboxes": [{"email": "a@example.com"}], "watch": {"enabled": True}}
    plain = {**ews, "name": "p", "watch": {}}
    root = write_project(tmp_path, [ews, plain], {"integrations": {"w": {"watch_restart_s": 120}}})
    specs = {s.name: s for s in build_specs(root, load_settings(root / "prefect.yaml"), discover_configs(root))}
    assert sorted(specs) == ["p", "p-backfill", "w", "w-backfill", "w-watch"]
    assert specs["w"].schedule_yaml() == [{"interval": 3600}] and specs["p"].schedule_yaml() == [{"interval": 300}]
    assert specs["w-watch"].schedule_yaml() == [{"interval": 120}]
    assert specs["w-watch"].entrypoint == "flows.watch_integration:watch_ews"
    assert "mode" not in specs["w-watch"].parameters and specs["w-watch"].concurrency["collision_strategy"] == "CANCEL_NEW"
    code, out = cli("deploy", "--project", str(root), "--no-register")
    assert code == 0 and "exchange-sync/w-watch" in out, out
    entries = {d["name"]: d for d in yaml.safe_load((root / "prefect.yaml").read_text())["deployments"]}
    assert entries["w-watch"]["tags"][-1] == "watch" and entries["w"]["schedules"] == [{"interval": 3600}]
