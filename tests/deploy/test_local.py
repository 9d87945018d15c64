"""Deployment features that need no worker: disabling mailboxes after repeated failures, the
server-limit strictness, the trend report, S3 staging (moto's S3 server), the Dask task runner,
and the deployment specs (shards, backfill chunks, idempotency keys)."""

from __future__ import annotations

import json
import secrets
from datetime import date, datetime, timedelta, timezone

import pytest

from ews_testserver.testing import running_server

from .conftest import ACCOUNT, cli

PASSWORD_ENV = "EXSYNC_DEPLOY_LOCAL_PW"


@pytest.fixture
def ews(monkeypatch):
    password = "pw-" + secrets.token_hex(8)
    monkeypatch.setenv(PASSWORD_ENV, password)
    boxes = ["ok@example.com=generate:4", "ok2@example.com=generate:3"]
    with running_server(accounts=[f"{ACCOUNT}:{password}"], mailboxes=boxes,
                        grants=[f"{ACCOUNT}={b.split('=')[0]}" for b in boxes], tls=True, auth="ntlm") as srv:
        yield srv


def local_config(srv, tmp_path, mailboxes, **extra) -> dict:
    data = {
        "name": "local",
        "connection": {"server_url": srv.url, "auth": "ntlm", "username": ACCOUNT,
                       "password": {"env": PASSWORD_ENV}, "access_type": "delegate",
                       "tls": {"verify": True, "ca_bundle": srv.ca_file}, "max_backoff_s": 5},
        "mailboxes": [{"email": m} for m in mailboxes],
        "destination": {"kind": "store", "url": f"sqlite:///{tmp_path / 'comments.db'}"},
        "staging": {"url": str(tmp_path / "staging")},
        "state": {"url": f"sqlite:///{tmp_path / 'state.db'}"},
    }
    data.update(extra)
    return data


def run(data: dict, **kw):
    from exchange_sync.cli.common import run_flow
    from exchange_sync.config import parse_config

    return run_flow(parse_config(data), **kw)


def statuses(summary: dict) -> dict[str, str]:
    return {m["mailbox"]: m["status"] for m in summary["mailboxes"]}


def test_mailbox_failing_the_same_way_is_disabled_then_skipped_until_enabled(prefect_api, ews, tmp_path):
    data = local_config(ews, tmp_path, ["ok@example.com", "gone@example.com"], disable_after_failures=2)
    path = tmp_path / "local.yaml"
    path.write_text(json.dumps(data))
    first, code = run(data)
    assert code == 3 and statuses(first) == {"ok@example.com": "ok", "gone@example.com": "skipped"}
    assert first["notes"] == []
    second, _ = run(data)
    assert any("gone@example.com disabled" in n and "mailbox_not_found" in n for n in second["notes"]), second
    mark = ews.last_seq()
    third, code = run(data)
    assert code == 3 and statuses(third) == {"ok@example.com": "ok", "gone@example.com": "disabled"}
    # A disabled mailbox is not even asked for: the server saw nothing addressed to it.
    assert not [e for e in ews.log(mark) if "gone@" in json.dumps(e)]
    code, out = cli("status", str(path), "--json")
    assert code == 0, out
    gone = next(m for m in json.loads(out)["mailboxes"] if m["mailbox"] == "gone@example.com")
    assert gone["disabled"] and "mailbox_not_found" in gone["disabled_reason"] and "2 runs in a row" in gone["disabled_reason"]
    code, out = cli("status", str(path))
    assert "disabled" in out
    code, out = cli("enable", str(path), "--mailbox", "gone@example.com")
    assert code == 0 and "enabled" in out
    fourth, _ = run(data)
    assert statuses(fourth)["gone@example.com"] == "skipped"  # tried again
    # The trend report sees the four runs of today and what they extracted.
    code, out = cli("report", str(path), "--days", "2", "--json")
    assert code == 0, out
    today = json.loads(out)[-1]
    assert today["runs"] == 4 and today["items"] == sum(r["items"] for r in (first, second, third, fourth))
    assert today["units"] == first["totals"]["units"] > 0
    code, out = cli("report", str(path), "--days", "2")
    assert code == 0 and "█" in out


def test_failure_streak_counts_only_the_same_reason(tmp_path):
    from exchange_sync.store import SqlStore

    store = SqlStore(f"sqlite:///{tmp_path / 'state.db'}")
    outcome = lambda reason: store.record_mailbox_outcome("i", "m@x.com", reason, 3)  # noqa: E731
    assert outcome("server_rejected_request").consecutive_failures == 1
    # An integration-wide reason (issue #17) is not this mailbox's failure: the streak stays as it was.
    assert outcome("server_unavailable").consecutive_failures == 1
    assert outcome("mailbox_access_denied").consecutive_failures == 1  # another reason: a new streak
    assert outcome("mailbox_access_denied").consecutive_failures == 2
    assert outcome(None).consecutive_failures == 0  # a success resets
    for _ in range(2):
        assert not outcome("mailbox_access_denied").disabled
    health = outcome("mailbox_access_denied")
    assert health.disabled and health.disabled_reason == "mailbox_access_denied: failed 3 runs in a row"
    assert outcome(None).disabled  # only an operator re-enables
    assert not store.enable_mailbox("i", "m@x.com").disabled
    assert store.record_mailbox_outcome("i", "n@x.com", "x", 0).consecutive_failures == 1
    assert not store.mailbox_health("i")[1].disabled  # 0 = never disable


def test_a_required_server_limit_that_does_not_exist_fails_the_mailbox(prefect_api, ews, tmp_path, monkeypatch):
    """What a deployment run does (strict=True): a missing limit is an error, never "no limit"."""
    monkeypatch.setenv("EXCHANGE_SYNC_SERVER_LIMIT", "1")
    data = local_config(ews, tmp_path, ["ok@example.com"], name="strict-" + secrets.token_hex(4))
    summary, code = run(data)
    assert code == 1
    mailbox = summary["mailboxes"][0]
    assert mailbox["reason"] == "server_limit_missing" and "ConcurrencySlotAcquisitionError" in mailbox["errors"]
    # A setup error of the integration does not count towards disabling the mailbox.
    from exchange_sync.store import SqlStore

    assert SqlStore(data["state"]["url"]).mailbox_health(data["name"]) == []


def test_daily_trend_and_chart():
    from exchange_sync.pipeline.report import daily_trend, render_trend
    from exchange_sync.store import RunRecord, UsageRow

    day = date(2026, 3, 10)
    t0 = datetime(2026, 3, 10, 8, tzinfo=timezone.utc)
    runs = [
        RunRecord(id=1, integration="i", mode="incremental", status="completed", started_at=t0,
                  finished_at=t0 + timedelta(seconds=30), summary={"items": 10}),
        RunRecord(id=2, integration="i", mode="incremental", status="failed", started_at=t0 + timedelta(hours=1),
                  finished_at=t0 + timedelta(hours=1, seconds=90), summary={"items": 5}),
        RunRecord(id=3, integration="i", mode="incremental", status="completed", started_at=t0 - timedelta(days=1),
                  finished_at=t0 - timedelta(days=1) + timedelta(seconds=5), summary={"items": 1}),
    ]
    usage = [UsageRow(integration="i", day=day, mailbox=m, new=4, updated_properties_only=0, updated_text_changed=1,
                      unchanged=0, units=5) for m in ("a", "b")]
    trend = daily_trend(runs, usage, days=3, today=day)
    assert [t.day for t in trend] == ["2026-03-08", "2026-03-09", "2026-03-10"]
    assert (trend[2].runs, trend[2].failed_runs, trend[2].items, trend[2].units, trend[2].max_lag_s) == (2, 1, 15, 10, 90)
    assert (trend[1].runs, trend[1].items, trend[0].runs) == (1, 1, 0)
    chart = render_trend("i", trend, width=10)
    line = next(x for x in chart.splitlines() if x.startswith("2026-03-10"))
    assert line.count("█") == 30  # the day with the maximum of each measure gets full bars


def test_staging_on_s3_compatible_storage(prefect_api, ews, tmp_path, monkeypatch):
    """Staging through fsspec on an S3 API (moto's server), configured by environment only."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    import fsspec.config

    from tests.conftest import free_port

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="exsync-staging")
        # FSSPEC_S3_ENDPOINT_URL is read at fsspec import: the environment reaches the transform
        # worker processes (spawned later); this process imported fsspec already, so set both.
        monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", endpoint)
        monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": endpoint})
        data = local_config(ews, tmp_path, ["ok@example.com", "ok2@example.com"],
                            staging={"url": "s3://exsync-staging/prod"})
        summary, code = run(data)
        assert code == 0, summary
        keys = [o["Key"] for o in boto3.client("s3", endpoint_url=endpoint)
                .list_objects_v2(Bucket="exsync-staging").get("Contents", [])]
        staged = [k for k in keys if k.endswith(".parquet")]
        assert staged and all(k.startswith("prod/local/") for k in staged)
        assert not [k for k in keys if k.endswith(".tmp")]
        # Replay reads the batches back from S3 and changes nothing.
        from exchange_sync.config import parse_config
        from exchange_sync.pipeline.replay import replay

        result = replay(parse_config(data))
        assert result["batches"] == len(staged) and result["counts"]["new"] == 0
    finally:
        server.stop()


def test_dask_task_runner(prefect_api, ews, tmp_path):
    pytest.importorskip("prefect_dask")
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        data = local_config(ews, tmp_path, ["ok@example.com", "ok2@example.com"],
                            task_runner={"kind": "dask", "address": cluster.scheduler_address})
        summary, code = run(data)
    assert code == 0, summary
    assert statuses(summary) == {"ok@example.com": "ok", "ok2@example.com": "ok"}
    assert summary["totals"]["new"] > 0


def test_specs_shards_partition_mailboxes_and_round_trip(tmp_path):
    import yaml

    from exchange_sync.config import parse_config
    from exchange_sync.deploy.spec import build_specs, config_parameter, discover_configs, load_settings

    mailboxes = [f"user{i}@example.com" for i in range(20)]
    cfg = {"name": "big", "connection": {"server_url": "https://mail.example.com/EWS/Exchange.asmx",
                                         "username": "svc", "password": {"secret_block": "big-pw"},
                                         "access_type": "impersonation"},
           "mailboxes": [{"email": m} for m in mailboxes] + [{"email": "off@example.com", "enabled": False}]}
    (tmp_path / "deployments").mkdir()
    (tmp_path / "deployments" / "big.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(
        {"definitions": {"exchange_sync": {"integrations": {"big": {"shards": 3}}}}}))
    specs = build_specs(tmp_path, load_settings(tmp_path / "prefect.yaml"), discover_configs(tmp_path))
    shards = [s for s in specs if not s.backfill]
    assert [s.name for s in shards] == ["big-shard-1-of-3", "big-shard-2-of-3", "big-shard-3-of-3"]
    assigned = [m for s in shards for m in s.mailboxes]
    assert sorted(assigned) == sorted(mailboxes)  # every enabled mailbox exactly once
    assert all(s.parameters["only_mailboxes"] == s.mailboxes for s in shards)
    assert [s.name for s in specs if s.backfill] == ["big-backfill"]
    assert parse_config(config_parameter(shards[0].config)) == parse_config(cfg)
    assert "big-pw" in json.dumps(shards[0].parameters)  # the reference, not a value


def test_backfill_windows_and_keys():
    from exchange_sync.deploy.backfill import Chunk, idempotency_key, split_window

    utc = timezone.utc
    chunks = split_window(datetime(2024, 1, 1, tzinfo=utc), datetime(2024, 3, 15, tzinfo=utc), 31)
    assert [(c.start.date().isoformat(), c.end.date().isoformat()) for c in chunks] == [
        ("2024-01-01", "2024-02-01"), ("2024-02-01", "2024-03-03"), ("2024-03-03", "2024-03-15")]
    one = Chunk(chunks[0].start, chunks[0].end)
    assert idempotency_key("i", one, ["B@x.com", "a@x.com"]) == idempotency_key("i", one, ["a@x.com", "b@x.com"])
    assert idempotency_key("i", one, None) != idempotency_key("i", one, ["a@x.com"])
    assert idempotency_key("i", one, None) != idempotency_key("j", one, None)
    with pytest.raises(ValueError):
        split_window(chunks[0].end, chunks[0].start, 31)
