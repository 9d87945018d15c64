"""End-to-end benchmark: the naive exchangelib loop vs `exchange-sync run`, same server, same data, same run.

    .venv/bin/python bench/bench_sync.py [--messages 10000] [--poll-mailboxes 50] [--rss-sizes 10000,100000]
        [--prefect-api URL] [--transform-n 1000] [--skip naive,ours,poll,transform,rss]

1. Starts the EWS test server (HTTPS + NTLM, a delegate service account) with ``--messages`` generated
   messages in one mailbox (``testserver_core.generate``).
2. (a) ``bench/naive_loop.py`` in a subprocess: unmodified exchangelib, ``folder.all().only(...)``,
   stdlib parse, SQLite. (b) ``exchange-sync run CONFIG`` (the real CLI) in a subprocess against a
   Prefect API (a ``prefect server start`` started here, its start-up reported separately, unless
   ``--prefect-api`` is given). Emails/s of each = emails / subprocess wall time (start-up included),
   the ratio, and peak RSS (VmHWM of the main process, and the peak of the summed RSS of the
   process tree, sampled every 0.2 s).
3. No-change poll: ``--poll-mailboxes`` mailboxes, synced once, then polled: seconds and the EWS
   requests of the poll, from the server's operation log.
4. Transform rate vs the stdlib-parse baseline (``bench/bench_transform.py``).
5. Peak RSS of ``exchange-sync run`` on a one-mailbox server of each ``--rss-sizes`` size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
ACCOUNT = "svc-bench@example.com"
PASSWORD_ENV = "EXSYNC_BENCH_PASSWORD"


# ---- process measurement --------------------------------------------------------------------
def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:", "PPid:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_measured(cmd: list[str], env: dict, cwd: Path) -> dict:
    """Run ``cmd``; wall seconds, exit code, stdout, main-process VmHWM, peak tree RSS (MB) and the
    CPU seconds of the whole process tree (children included once they are reaped)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"main_hwm": 0, "tree_rss": 0, "procs": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pids = _descendants(proc.pid)
            rss = 0
            for p in pids:
                st = _status(p)
                rss += st.get("VmRSS", 0)
                if p == proc.pid:
                    peak["main_hwm"] = max(peak["main_hwm"], st.get("VmHWM", 0))
            peak["tree_rss"] = max(peak["tree_rss"], rss)
            peak["procs"] = max(peak["procs"], len(pids))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"wall": wall, "code": proc.returncode, "stdout": out, "stderr": err, "cpu_s": cpu,
            "main_hwm_mb": peak["main_hwm"] / 1024, "tree_rss_mb": peak["tree_rss"] / 1024, "procs": peak["procs"]}


def wait_until_idle(pid: int | None, busy_below: float = 0.05, timeout: float = 180.0) -> float:
    """Wait until the process tree of ``pid`` uses less than ``busy_below`` of a core over a second;
    returns the seconds waited. Used before the poll: a Prefect server still ingesting the events and
    logs of the run before (hundreds of task runs) answers slowly, which is not the poll's cost."""
    if pid is None:
        return 0.0

    def tree_cpu() -> float:
        total = 0.0
        for p in _descendants(pid):
            try:
                total += cpu_seconds(p)
            except (OSError, IndexError, ValueError):
                continue
        return total

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        before = tree_cpu()
        time.sleep(1.0)
        if tree_cpu() - before < busy_below:
            break
    return time.perf_counter() - start


# ---- Prefect --------------------------------------------------------------------------------
def start_prefect(home: Path) -> tuple[subprocess.Popen, str, float]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    start = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=open(home / "server.log", "wb"), stderr=subprocess.STDOUT)
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() - start > 300:
            raise RuntimeError("prefect server did not start: " + (home / "server.log").read_text()[-2000:])
        time.sleep(0.5)
    return proc, url, time.perf_counter() - start


def warm_up_prefect(env: dict) -> float:
    """One empty flow run against a fresh server. A server that has never created a flow run spends
    ~0.5 s on the first (lazy initialisation); a long-running server, the production case, does not,
    and the timed run should not pay it either."""
    start = time.perf_counter()
    code = "from prefect import flow\nflow(lambda: None, name='bench-warm-up')()\n"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


# ---- runs -----------------------------------------------------------------------------------
def write_config(srv, work: Path, mailboxes: list[str], **extra) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    data = {
        "name": "bench",
        "connection": {"kind": "ews", "server_url": srv.url, "auth": "ntlm", "username": ACCOUNT,
                       "password": {"env": PASSWORD_ENV}, "access_type": "delegate",
                       "tls": {"verify": True, "ca_bundle": srv.ca_file}},
        "mailboxes": [{"email": m} for m in mailboxes],
        "destination": {"kind": "store", "url": f"sqlite:///{work / 'comments.db'}"},
        "staging": {"url": str(work / "staging")},
        "state": {"url": f"sqlite:///{work / 'state.db'}"},
        **extra,
    }
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_ours(config: Path, env: dict) -> dict:
    result = run_measured([str(BIN / "exchange-sync"), "run", str(config), "--json"], env, ROOT)
    if result["code"] != 0:
        raise RuntimeError(f"exchange-sync run failed ({result['code']}): {result['stderr'][-3000:]}")
    summary = json.loads(result["stdout"].strip().splitlines()[-1])
    result["emails"] = sum(m["items"] for m in summary["mailboxes"])
    started = datetime.fromisoformat(summary["started_at"])
    finished = datetime.fromisoformat(summary["finished_at"])
    result["in_flow_s"] = (finished - started).total_seconds()
    return result


def run_naive(srv, mailboxes: list[str], work: Path, env: dict, policy: str) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(ROOT / "bench" / "naive_loop.py"), "--url", srv.url, "--ca", srv.ca_file,
           "--username", ACCOUNT, "--password-env", PASSWORD_ENV, "--db", str(work / "naive.db"),
           "--policy", policy]
    for m in mailboxes:
        cmd += ["--mailbox", m]
    result = run_measured(cmd, env, ROOT)
    if result["code"] != 0:
        raise RuntimeError(f"naive loop failed: {result['stderr'][-3000:]}")
    result.update(json.loads(result["stdout"].strip().splitlines()[-1]))
    return result


def mailbox_profile(box: str, n: int) -> str:
    """Size of the generated mail the runs will see (the same seed and owner as the server's)."""
    from testserver_core.generate import generate_messages

    sizes = sorted(len(m.render()) for m in generate_messages(n, owner=box))
    return (f"{n} messages, {sum(sizes) / 1e6:.0f} MB of MIME: mean {sum(sizes) / n / 1024:.1f} KB, "
            f"median {sizes[n // 2] / 1024:.1f} KB, largest {sizes[-1] / 1e6:.1f} MB")


def server(mailboxes: dict[str, int]):
    from ews_testserver.testing import running_server

    return running_server(
        accounts=[f"{ACCOUNT}:{os.environ[PASSWORD_ENV]}"],
        mailboxes=[f"{m}=generate:{n}" for m, n in mailboxes.items()],
        grants=[f"{ACCOUNT}={m}" for m in mailboxes],
        tls=True, auth="ntlm", startup_timeout=600,
    )


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    load = os.getloadavg()[0]
    return (f"{os.cpu_count()} CPUs ({cpu}), {mem / 1024:.1f} GB RAM, Python {platform.python_version()}, "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, load average at start {load:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--poll-mailboxes", type=int, default=50)
    parser.add_argument("--poll-messages", type=int, default=20, help="messages per mailbox of the poll test")
    parser.add_argument("--rss-sizes", default="10000", help="comma-separated mailbox sizes, e.g. 10000,100000")
    parser.add_argument("--transform-n", type=int, default=1000)
    parser.add_argument("--naive-policy", choices=("compat32", "default"), default="compat32")
    parser.add_argument("--prefect-api", default=None)
    parser.add_argument("--skip", default="", help="comma-separated: naive,ours,poll,transform,rss")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault(PASSWORD_ENV, "bench-" + os.urandom(6).hex())
    work = Path(tempfile.mkdtemp(prefix="exsync-bench-"))
    rows: list[tuple[str, str]] = []

    def emit(name: str, value: str) -> None:
        rows.append((name, value))
        print(f"{name}: {value}", flush=True)

    print(f"machine: {machine()}", flush=True)
    prefect_proc = None
    try:
        # Prefect's default log level (INFO, every task run's logs shipped to the API), as a user runs
        # it; the run's output is captured, so nothing scrolls. WARNING would save ~0.5 s of 21.
        env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
        if not {"ours", "poll", "rss"} <= skip:
            if args.prefect_api:
                env["PREFECT_API_URL"] = args.prefect_api
            else:
                (work / "prefect").mkdir()
                prefect_proc, url, startup = start_prefect(work / "prefect")
                env["PREFECT_API_URL"] = url
                emit("prefect server start-up (fresh PREFECT_HOME, migrations)", f"{startup:.1f} s")
                emit("prefect server warm-up (one empty flow run)", f"{warm_up_prefect(env):.1f} s")

        box = "bench@example.com"
        if not {"naive", "ours"} <= skip:
            emit("generated mailbox", mailbox_profile(box, args.messages))
            with server({box: args.messages}) as srv:
                naive = ours = None
                if "naive" not in skip:
                    server_cpu = cpu_seconds(srv.process.pid)
                    naive = run_naive(srv, [box], work / "naive", env, args.naive_policy)
                    server_cpu = cpu_seconds(srv.process.pid) - server_cpu
                    emit(f"naive loop ({args.messages} messages, {args.naive_policy})",
                         f"{naive['emails']} emails in {naive['wall']:.1f} s = {naive['emails'] / naive['wall']:.0f} "
                         f"emails/s (loop only: {naive['emails_per_s']:.0f}/s); peak RSS {naive['main_hwm_mb']:.0f} MB; "
                         f"CPU: client {naive['cpu_s']:.1f} s, EWS test server {server_cpu:.1f} s")
                if "ours" not in skip:
                    seq = srv.last_seq()
                    server_cpu = cpu_seconds(srv.process.pid)
                    ours = run_ours(write_config(srv, work / "ours", [box]), env)
                    server_cpu = cpu_seconds(srv.process.pid) - server_cpu
                    ops = Counter(e["operation"] for e in srv.log(seq))
                    emit(f"exchange-sync run ({args.messages} messages)",
                         f"{ours['emails']} emails in {ours['wall']:.1f} s = {ours['emails'] / ours['wall']:.0f} emails/s "
                         f"(inside the flow: {ours['in_flow_s']:.1f} s = {ours['emails'] / ours['in_flow_s']:.0f}/s); "
                         f"peak RSS main {ours['main_hwm_mb']:.0f} MB, tree {ours['tree_rss_mb']:.0f} MB "
                         f"({ours['procs']} processes); CPU: client {ours['cpu_s']:.1f} s (workers included), "
                         f"EWS test server {server_cpu:.1f} s; requests {dict(ops)}")
                if naive and ours:
                    ratio = (ours["emails"] / ours["wall"]) / (naive["emails"] / naive["wall"])
                    emit("ratio exchange-sync / naive (emails/s, subprocess wall)", f"{ratio:.2f}x")

        if "poll" not in skip:
            boxes = {f"poll{i:02d}@example.com": args.poll_messages for i in range(args.poll_mailboxes)}
            with server(boxes) as srv:
                config = write_config(srv, work / "poll", list(boxes), concurrency={"mailboxes": 8})
                first = run_ours(config, env)
                settled = wait_until_idle(prefect_proc.pid if prefect_proc else None)
                seq = srv.last_seq()
                poll = run_ours(config, env)
                ops = Counter(e["operation"] for e in srv.log(seq))
                emit(f"first run of {len(boxes)} mailboxes",
                     f"{first['emails']} emails in {first['wall']:.1f} s (then {settled:.0f} s until the Prefect "
                     "server had ingested its events and logs)")
                emit(f"no-change poll of {len(boxes)} mailboxes",
                     f"{poll['wall']:.1f} s (inside the flow {poll['in_flow_s']:.1f} s); {sum(ops.values())} requests: "
                     f"{dict(ops)}")

        if "transform" not in skip:
            from bench.bench_transform import baseline, rate
            from testserver_core.generate import generate_messages
            from exchange_sync.transform import email_to_comment

            messages = [m.render() for m in generate_messages(args.transform_n)]
            email_to_comment(messages[0])
            base, ours_rate = rate(baseline, messages), rate(email_to_comment, messages)
            emit(f"transform ({len(messages)} generated messages, one core)",
                 f"stdlib compat32 parse+decode {base:.0f}/s, email_to_comment {ours_rate:.0f}/s "
                 f"({base / ours_rate:.1f}x slower)")

        if "rss" not in skip:
            for size in [int(s) for s in args.rss_sizes.split(",") if s]:
                with server({box: size}) as srv:
                    result = run_ours(write_config(srv, work / f"rss-{size}", [box]), env)
                    emit(f"peak RSS, one mailbox of {size} messages",
                         f"main {result['main_hwm_mb']:.0f} MB, tree {result['tree_rss_mb']:.0f} MB; "
                         f"{result['emails']} emails in {result['wall']:.1f} s")
    finally:
        if prefect_proc is not None:
            prefect_proc.terminate()
            try:
                prefect_proc.wait(30)
            except subprocess.TimeoutExpired:
                prefect_proc.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
