"""Real-time benchmark: `exchange-sync watch` vs the 5-minute scheduled poll, same server, same run.

    .venv/bin/python bench/bench_watch.py [--mailboxes 100] [--messages 120] [--idle-s 30] [--minute-s 0.1]

1. Starts the EWS test server (HTTPS + NTLM, a delegate service account) with ``--mailboxes``
   mailboxes of 2 generated messages each, and syncs them once with the plain pipeline.
2. Poll baseline: a no-change poll of every mailbox (what the scheduled run sends every 5 minutes),
   its EWS requests counted from the server's operation log -> requests per mailbox-hour at 12 polls
   an hour. Its latency is the poll interval's: a message waits 150 s on average, up to 300 s.
3. Starts ``exchange-sync watch CONFIG`` (the real CLI, a subprocess) and waits until every mailbox is
   on streaming notifications and the catch-up is done.
4. Idle cost: the EWS requests the watch sends in ``--idle-s`` seconds with no mail arriving. The
   server's protocol minute is ``--minute-s`` seconds (its ConnectionTimeout, 30 minutes, then lasts
   30 x minute-s: 3 s by default), so the idle phase covers ``idle-s / minute-s`` protocol minutes and
   the count is scaled to requests per mailbox-hour of protocol time. Heartbeats are not requests.
5. Latency: ``--messages`` messages added through the admin API, round-robin over the mailboxes,
   ``--spacing-s`` apart; latency = the message's comment in the store (polled every 20 ms) minus the
   admin call's start. p50/p95/max.
6. SIGTERM to the watch: exit status and the time it took to stop.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ACCOUNT = "svc-bench@example.com"
PASSWORD_ENV = "EXSYNC_BENCH_PASSWORD"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def config_for(srv, tmp: Path, mailboxes: list[str]) -> dict:
    return {
        "name": "bench-watch",
        "connection": {"kind": "ews", "server_url": srv.url, "auth": "ntlm", "username": ACCOUNT,
                       "password": {"env": PASSWORD_ENV}, "access_type": "delegate",
                       "tls": {"verify": True, "ca_bundle": srv.ca_file}, "max_backoff_s": 30},
        "mailboxes": [{"email": m} for m in mailboxes],
        "destination": {"kind": "store", "url": f"sqlite:///{tmp / 'comments.db'}"},
        "staging": {"url": str(tmp / "staging")},
        "state": {"url": f"sqlite:///{tmp / 'state.db'}"},
        "concurrency": {"mailboxes": 4},
        "watch": {"debounce_s": 0.2},
    }


def comment_ids(store_url: str) -> set[str]:
    from sqlalchemy import text

    from exchange_sync.store import SqlStore

    store = SqlStore(store_url)
    try:
        with store.engine.connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT id FROM exsync_comments"))}
    finally:
        store.close()


def mime(n: int, to: str) -> tuple[str, bytes]:
    mid = f"<bench-watch-{n}-{secrets.token_hex(4)}@bench.example>"
    body = (f"From: Bench <bench@partner.example>\r\nTo: {to}\r\nSubject: latency probe {n}\r\nMessage-ID: {mid}\r\n"
            f"Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nProbe {n}.\r\n")
    return mid, body.encode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mailboxes", type=int, default=100)
    ap.add_argument("--messages", type=int, default=120)
    ap.add_argument("--spacing-s", type=float, default=0.1)
    ap.add_argument("--idle-s", type=float, default=30.0)
    ap.add_argument("--minute-s", type=float, default=0.1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from ews_testserver.testing import running_server
    from exchange_sync.config import parse_config
    from exchange_sync.pipeline.mailbox import sync_mailbox
    from exchange_sync.pipeline.runtime import Runtime
    from exchange_sync.pipeline.status import integration_status

    password = "pw-" + secrets.token_hex(8)
    os.environ[PASSWORD_ENV] = password
    tmp = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    boxes = [f"mb{i:03d}@example.com" for i in range(args.mailboxes)]
    figures: dict = {"mailboxes": args.mailboxes, "cpus": os.cpu_count(), "python": platform.python_version(),
                     "minute_s": args.minute_s}
    with running_server(accounts=[f"{ACCOUNT}:{password}"], mailboxes=[f"{b}=generate:2" for b in boxes],
                        grants=[f"{ACCOUNT}={b}" for b in boxes], tls=True, auth="ntlm",
                        notifications={"minute_s": args.minute_s, "heartbeat_s": 1.0}) as srv:
        data = config_for(srv, tmp, boxes)
        cfg = parse_config(data)

        # 1-2: initial sync, then the no-change poll the schedule sends every 5 minutes.
        rt = Runtime.open(cfg)
        try:
            for mb in cfg.mailboxes:
                sync_mailbox(rt, mb)
            since = srv.last_seq()
            t0 = time.monotonic()
            for mb in cfg.mailboxes:
                sync_mailbox(rt, mb)
            poll_s = time.monotonic() - t0
        finally:
            rt.close()
        poll_ops = Counter(e["operation"] for e in srv.log(since))
        per_poll = sum(poll_ops.values())
        figures["poll"] = {"requests_per_poll": per_poll, "operations": dict(poll_ops), "seconds": round(poll_s, 2),
                           "requests_per_mailbox_hour": round(per_poll * 12 / args.mailboxes, 2),
                           "latency_mean_s": 150, "latency_max_s": 300}

        # 3: the watch, as the CLI.
        config = tmp / "bench-watch.yaml"
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "exchange_sync", "watch", str(config), "--json"], cwd=tmp,
                                env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stderr_lines: list[str] = []
        threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True).start()
        try:
            while True:
                modes = [(m["watch"] or {}).get("mode") for m in integration_status(cfg)["mailboxes"]]
                if all(m == "streaming" for m in modes):
                    break
                if proc.poll() is not None or time.monotonic() - started > 300:
                    raise SystemExit(f"watch did not start: {Counter(modes)}\n{''.join(stderr_lines[-20:])}")
                time.sleep(0.5)
            figures["watch_start_s"] = round(time.monotonic() - started, 2)
            # Let the catch-up finish: no request for 2 s.
            last, quiet_since = srv.last_seq(), time.monotonic()
            while time.monotonic() - quiet_since < 2:
                time.sleep(0.25)
                now_seq = srv.last_seq()
                if now_seq != last:
                    last, quiet_since = now_seq, time.monotonic()

            # 4: idle.
            since = srv.last_seq()
            time.sleep(args.idle_s)
            idle_ops = Counter(e["operation"] for e in srv.log(since))
            protocol_hours = args.idle_s / args.minute_s / 60
            idle = sum(idle_ops.values())
            figures["watch_idle"] = {"seconds": args.idle_s, "protocol_hours": round(protocol_hours, 2),
                                     "requests": idle, "operations": dict(idle_ops),
                                     "requests_per_mailbox_hour": round(idle / protocol_hours / args.mailboxes, 4)}

            # 5: latency.
            pending: dict[str, float] = {}
            order: dict[str, int] = {}
            latencies: list[float] = []
            by_order: dict[int, float] = {}
            store_url = data["destination"]["url"]
            done = threading.Event()

            def observe() -> None:
                while not done.is_set() or pending:
                    ids = comment_ids(store_url)
                    now = time.monotonic()
                    for cid in [c for c in pending if c in ids]:
                        latencies.append(now - pending.pop(cid))
                        by_order[order[cid]] = latencies[-1]
                    if done.is_set() and time.monotonic() > deadline:
                        return
                    time.sleep(0.02)

            deadline = float("inf")
            watcher = threading.Thread(target=observe, daemon=True)
            watcher.start()
            since = srv.last_seq()
            for n in range(args.messages):
                mid, body = mime(n, boxes[n % len(boxes)])
                cid = mid.encode().hex()
                t_add = time.monotonic()
                order[cid] = n
                pending[cid] = t_add
                srv.add_message(boxes[n % len(boxes)], body)
                time.sleep(args.spacing_s)
            deadline = time.monotonic() + 60
            done.set()
            watcher.join(90)
            ops = Counter(e["operation"] for e in srv.log(since))
            figures["latency"] = {"messages": args.messages, "synced": len(latencies), "lost": len(pending),
                                  "p50_s": round(percentile(latencies, 50), 3), "p95_s": round(percentile(latencies, 95), 3),
                                  "max_s": round(max(latencies), 3), "mean_s": round(statistics.mean(latencies), 3),
                                  "requests": dict(ops),
                                  "slowest": sorted(((round(v, 2), k) for k, v in by_order.items()), reverse=True)[:8]}
        finally:
            t_stop = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=180)
            figures["stop"] = {"exit": proc.returncode, "seconds": round(time.monotonic() - t_stop, 2)}
        summary = json.loads(out) if out.strip() else {}
        figures["watch_totals"] = summary.get("totals")
        unsubscribed = sum(e["operation"] == "Unsubscribe" for e in srv.log())
        figures["stop"]["unsubscribed"] = unsubscribed
    poll_h = figures["poll"]["requests_per_mailbox_hour"]
    idle_h = figures["watch_idle"]["requests_per_mailbox_hour"]
    figures["idle_cost_ratio"] = round(poll_h / idle_h, 1) if idle_h else None
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    lat = figures["latency"]
    print(f"mailboxes: {args.mailboxes}, messages: {lat['messages']} ({lat['synced']} synced, {lat['lost']} lost)")
    print(f"latency add -> comment: p50 {lat['p50_s']} s, p95 {lat['p95_s']} s, max {lat['max_s']} s "
          f"(5-minute poll: mean 150 s, max 300 s)")
    print(f"idle requests per mailbox-hour: watch {idle_h} ({figures['watch_idle']['operations']}), "
          f"5-minute poll {poll_h} ({figures['poll']['operations']} per poll of {args.mailboxes} mailboxes): "
          f"{figures['idle_cost_ratio']}x fewer")
    print(f"watch start (subscribe + catch-up of {args.mailboxes} mailboxes): {figures['watch_start_s']} s; "
          f"SIGTERM -> exit {figures['stop']['exit']} in {figures['stop']['seconds']} s, "
          f"{figures['stop']['unsubscribed']} Unsubscribe")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
