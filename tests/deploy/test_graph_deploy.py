"""A Microsoft Graph integration as Prefect deployments (issues #18 and #19): `exchange-sync deploy`
against the session's real Prefect server, the Graph form (tenant, client id, the client secret as a
Secret-block reference, TLS, mailboxes, destination), a custom run changing only the mailboxes and a
backfill, both executed by a real process worker against the Graph test server (HTTPS, client
credentials), stop/start, and edits kept by a redeploy."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import pytest

from graph_testserver.testing import running_graph_server

from .conftest import cli, save_secret, schema_problems, wait_final, write_project

pytestmark = pytest.mark.timeout(600)

BOXES = ["g1@example.com", "g2@example.com"]


@pytest.fixture(scope="module")
def graph_srv():
    with running_graph_server(mailboxes=[f"{b}=generate:6" for b in BOXES]) as srv:
        yield srv


@pytest.fixture(scope="module")
def graph_deployed(tmp_path_factory, graph_srv, pool_name, worker_factory, prefect_api):
    root = tmp_path_factory.mktemp("graph-project")
    data = tmp_path_factory.mktemp("graph-data")
    block = f"exsync-graph-secret-{pool_name}"
    save_secret(block, graph_srv.client_secret)
    cfg = {
        "name": "ginteg",
        "connection": graph_srv.connection(client_secret={"secret_block": block}, max_backoff_s=5),
        "mailboxes": [{"email": b} for b in BOXES],
        "destination": {"kind": "store", "url": f"sqlite:///{data / 'comments.db'}"},
        "staging": {"url": str(data / "staging")},
        "state": {"url": f"sqlite:///{data / 'state.db'}"},
    }
    # A yearly cron: no scheduled run interferes with the runs the tests trigger.
    write_project(root, [cfg], {"work_pool": pool_name, "cron": "0 0 1 1 *"})
    code, out = cli("deploy", "--project", str(root))
    assert code == 0, out
    worker_factory(pool_name)
    return SimpleNamespace(root=root, cfg=cfg, block=block, out=out)


def _client():
    from prefect import get_client

    return get_client(sync_client=True)


def _deployment(name: str):
    with _client() as client:
        return client.read_deployment_by_name(f"exchange-sync/{name}")


def test_graph_integration_deploys_with_a_form(graph_deployed, graph_srv, prefect_api):
    from exchange_sync.config import parse_config
    from exchange_sync.deploy.form import config_from_parameters

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
    code, out = cli("deploy", "--project", str(graph_deployed.root), "--force")
    assert code == 0 and _deployment("ginteg").parameters["client_id"] == graph_deployed.cfg["connection"]["client_id"]
