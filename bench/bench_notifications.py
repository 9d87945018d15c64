"""EWS test server notifications: how fast an added message reaches a streaming client, and what an idle
streaming connection costs. The server side only (the watch client's end-to-end figures are its own).

    .venv/bin/python bench/bench_notifications.py [--mailboxes 100] [--messages 200] [--per-connection 50]
        [--idle-s 10]

1. Starts the EWS test server (HTTPS + NTLM, one delegate service account granted every mailbox).
2. One streaming subscription per mailbox's Inbox (exchangelib's own subscribe_to_streaming), grouped
   ``--per-connection`` to a GetStreamingEvents connection (exchangelib's get_streaming_events, one
   thread each; the accounts share one session, hence one X-BackEndOverrideCookie).
3. ``--messages`` messages added through the admin API to random mailboxes, 20 ms apart. Latency = from
   just before the admin request to the NewMailEvent leaving exchangelib's generator (the admin
   round trip is included): p50 / p95 / max.
4. Idle: ``--idle-s`` seconds with no mail and the default 30 s heartbeat scaled to 1 s: EWS requests
   in the operation log (a streaming connection makes one request per ConnectionTimeout) and
   messages streamed.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ews_testserver.testing import exchangelib_account, exchangelib_tls, make_mime, running_server  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mailboxes", type=int, default=100)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--per-connection", type=int, default=50)
    ap.add_argument("--idle-s", type=float, default=10.0)
    args = ap.parse_args()
    boxes = [f"m{i:03d}@example.com" for i in range(args.mailboxes)]
    with running_server(tls=True, auth="ntlm", accounts=["svc@example.com:pw"],
                        mailboxes=[f"{b}=" for b in boxes], grants=[f"svc@example.com={b}" for b in boxes],
                        notifications={"heartbeat_s": 1.0, "minute_s": 60.0}) as srv, exchangelib_tls(srv.ca_file):
        n_groups = math.ceil(len(boxes) / args.per_connection)
        # exchangelib's session pool (one per credentials) must hold every stream plus the requests.
        accounts = [exchangelib_account(srv, "svc@example.com", "pw", b, auth="ntlm", max_connections=n_groups + 2)
                    for b in boxes]
        started = time.perf_counter()
        sids = [a.inbox.subscribe_to_streaming(event_types=["NewMailEvent"]) for a in accounts]
        subscribe_s = time.perf_counter() - started
        received: dict[str, float] = {}
        lock = threading.Lock()
        stopping = threading.Event()  # the streams are dropped at the end: not an error
        groups = [sids[i:i + args.per_connection] for i in range(0, len(sids), args.per_connection)]

        def stream(ids: list[str]) -> None:
            try:
                for note in accounts[0].inbox.get_streaming_events(ids, connection_timeout=2):
                    now = time.perf_counter()
                    with lock:
                        for ev in note.events:
                            received[ev.item_id.id] = now
            except Exception as exc:  # noqa: BLE001 - report, the figures say what arrived
                if not stopping.is_set():
                    print(f"stream ended: {type(exc).__name__}: {exc}", file=sys.stderr)

        threads = [threading.Thread(target=stream, args=(g,), daemon=True) for g in groups]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(srv.notifications()["connections"]) < len(groups) and time.monotonic() < deadline:
            time.sleep(0.05)
        sent: dict[str, float] = {}
        rng = random.Random(7)
        for n in range(args.messages):
            box = rng.choice(boxes)
            t0 = time.perf_counter()
            sent[srv.add_message(box, make_mime(f"bench {n}", f"<bench{n}@x>", to=box))["item_id"]] = t0
            time.sleep(0.02)
        deadline = time.monotonic() + 10
        while len(received) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        lat = sorted(1000 * (received[i] - t0) for i, t0 in sent.items() if i in received)
        seq = srv.last_seq()
        counters = srv.notifications()["counters"]
        time.sleep(args.idle_s)
        idle_requests = [e["operation"] for e in srv.log(seq)]
        idle_messages = sum(c["messages"] for c in srv.notifications()["connections"])
        print(f"mailboxes {args.mailboxes}, connections {len(groups)} ({args.per_connection} subscriptions each), "
              f"subscribe {subscribe_s:.2f} s")
        print(f"delivered {len(lat)}/{len(sent)}; latency ms p50 {statistics.median(lat):.1f} "
              f"p95 {lat[max(0, math.ceil(0.95 * len(lat)) - 1)]:.1f} max {lat[-1]:.1f}")
        print(f"idle {args.idle_s:.0f} s: {len(idle_requests)} EWS requests {sorted(set(idle_requests))}, "
              f"{idle_messages} messages streamed in all (heartbeats included), events raised {counters['events']}")
        stopping.set()
        srv.drop_streams()


if __name__ == "__main__":
    main()
