"""Push throughput: N notices drained by real worker processes through the fake WeChat.

    .venv/bin/python -m bench.scenario_push                  # 10,000 notices, 2 workers, 5 % errors
    .venv/bin/python -m bench.scenario_push --notices 2000 --workers 1 --transient-rate 0

What it does (every process on 127.0.0.1, every one stopped at the end):

1. PostgreSQL + Redis: ``--database-url`` / ``--redis-url`` (or ``BENCH_DATABASE_URL`` /
   ``BENCH_REDIS_URL``), else throw-away servers like scripts/test starts;
2. the fake WeChat in its own process, answering ``transient_rate`` of all calls with -1;
3. N notices to official-account followers, seeded *not yet due*; the workers
   (``python -m server worker``) start and settle; then one UPDATE makes every notice
   due and the clock starts;
4. the clock stops when no notice is pending. Reported: drain time, notices/s, sends,
   injected errors, token fetches (``stable_token`` calls) per notice, duplicates.

``run(...)`` returns the same numbers as a dict for the bench harness.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.procs import LOOPBACK, Children, free_port, wait_http

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))

WORKER_TOML = """
[push]
batch_size = {batch}
lanes = {lanes}
rate_per_second = {rate}
rate_burst = {burst}
backoff_base_seconds = 0.05
backoff_cap_seconds = 0.5
max_attempts = 12
idle_poll_seconds = 0.05
queue_gauge_seconds = 2.0
breaker_threshold = 50
"""


# ---- processes ------------------------------------------------------------------------------


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _start_backends(procs: Children) -> tuple[str, str]:
    """Throw-away PostgreSQL 15 and Redis on loopback (like scripts/test)."""
    work = procs.logdir
    redis_port, pg_port = free_port(), free_port()
    redis_argv = ["redis-server", "--port", str(redis_port), "--bind", LOOPBACK]
    redis_argv += ["--save", "", "--appendonly", "no", "--daemonize", "yes"]
    redis_argv += ["--pidfile", str(work / "redis.pid"), "--logfile", str(work / "redis.log")]
    subprocess.run(redis_argv, check=True)
    procs.push(
        "redis",
        lambda: subprocess.run(
            ["redis-cli", "-p", str(redis_port), "shutdown", "nosave"],
            capture_output=True,
            check=False,
        ),
    )
    pg = work / "pg"
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")

    def as_pg(*argv: str, check: bool = True) -> None:
        subprocess.run(_as_postgres(list(argv)), check=check, capture_output=True)

    as_pg(str(PG_BIN / "initdb"), "-D", str(pg), "--auth=trust", "-U", "postgres", "-E", "UTF8")
    options = (
        f"-p {pg_port} -k {work} -c listen_addresses={LOOPBACK} -c fsync=off "
        "-c synchronous_commit=off -c max_connections=200"
    )
    pg_ctl = str(PG_BIN / "pg_ctl")
    as_pg(pg_ctl, "-D", str(pg), "-l", str(work / "pg.log"), "-w", "-o", options, "start")
    procs.push(
        "postgres", lambda: as_pg(pg_ctl, "-D", str(pg), "-m", "immediate", "stop", check=False)
    )
    createdb = str(PG_BIN / "createdb")
    as_pg(createdb, "-h", LOOPBACK, "-p", str(pg_port), "-U", "postgres", "qinqing_bench")
    return (
        f"postgres://postgres@{LOOPBACK}:{pg_port}/qinqing_bench",
        f"redis://{LOOPBACK}:{redis_port}/0",
    )


def _cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


# ---- the fake WeChat in its own process ----------------------------------------------------------


async def _serve_fake(port: int) -> None:
    from fakes.wechat import FakeWeChatState, start_fake_wechat

    runner, base, _ = await start_fake_wechat(port=port, state=FakeWeChatState(max_sent=200_000))
    print(f"fake WeChat on {base}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


# ---- seeding and measuring -------------------------------------------------------------------


async def _seed(settings: Any, notices: int) -> None:
    """Schema, 200 followers, ``notices`` notices due in an hour (not yet claimable)."""
    from datetime import datetime, timedelta, timezone

    from server.db import open_orm
    from server.domain.models import Notice, OfficialFollower, User

    ctx = await open_orm(settings)
    try:
        users = [User(openid=f"demo-bench{i}", unionid=f"union-bench{i}") for i in range(200)]
        await User.bulk_create(users)
        users = await User.filter(openid__startswith="demo-bench").order_by("id")
        await OfficialFollower.bulk_create(
            [
                OfficialFollower(oa_openid=f"oa-bench{i}", unionid=f"union-bench{i}")
                for i in range(200)
            ]
        )
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        data = {
            "member_name": "张*华",
            "institution": "演示人民医院",
            "setl_time": "2026-11-23T06:05:00+00:00",
            "med_type": "11",
            "medfee_fen": 12345,
            "psn_part_amt_fen": 2345,
            "setl_id": "S1",
        }
        rows = [
            Notice(id=uuid.uuid4(), recipient_id=users[i % len(users)].id, kind="family_settlement",
                   dedupe_key=f"bench:{i}", title="家人就医结算通知", data=data, next_attempt_at=later)
            for i in range(notices)
        ]
        await Notice.bulk_create(rows, batch_size=1000)
    finally:
        await ctx.close_connections()


async def _release_and_wait(
    settings: Any, notices: int, timeout: float
) -> tuple[float, dict[str, int], list[float]]:
    from datetime import datetime, timezone

    from server.db import open_orm
    from server.domain.models import Notice

    ctx = await open_orm(settings)
    try:
        released = datetime.now(timezone.utc)
        await Notice.filter(state="pending").update(next_attempt_at=None)
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        while await Notice.filter(state="pending").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"queue not drained within {timeout} s")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
        states = collections.Counter(await Notice.all().values_list("state", flat=True))
        # due → delivered, per notice (sent_at is stamped by the worker)
        waits = sorted(
            (sent - released).total_seconds() * 1000
            for sent in await Notice.exclude(sent_at=None).values_list("sent_at", flat=True)
        )
        return elapsed, dict(states), waits
    finally:
        await ctx.close_connections()


def run(
    *,
    notices: int = 10_000,
    workers: int = 2,
    concurrency: int = 64,
    batch: int = 500,
    lanes: int = 2,
    transient_rate: float = 0.05,
    rate: float = 1_000_000.0,
    database_url: str = "",
    redis_url: str = "",
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Run the scenario once; return its numbers."""
    from server.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="qq-push-bench-"))
    os.chmod(work, 0o755)
    procs = Children(work, cwd=ROOT)
    try:
        database_url = database_url or os.environ.get("BENCH_DATABASE_URL", "")
        redis_url = redis_url or os.environ.get("BENCH_REDIS_URL", "")
        if not (database_url and redis_url):
            database_url, redis_url = _start_backends(procs)
        overrides = {
            "database.url": database_url,
            "redis.url": redis_url,
            "database.schema": "generate",
            "server.data_dir": str(work),
        }
        settings = Settings.load("test.toml", env={}, overrides=overrides)
        fake_port = free_port()
        fake = procs.start(
            "fake_wechat",
            [sys.executable, "-m", "bench.scenario_push", "serve-fake", "--port", str(fake_port)],
        )
        fake_base = f"http://{LOOPBACK}:{fake_port}"
        wait_http(f"{fake_base}/_fake/stats", fake)
        _http("POST", f"{fake_base}/_fake/config", {"transient_rate": transient_rate, "seed": 7})

        asyncio.run(_seed(settings, notices))
        import redis as redis_sync

        redis_sync.Redis.from_url(redis_url).flushdb()

        cfg = work / "worker.toml"
        burst = max(1000, concurrency * 4)
        cfg.write_text(WORKER_TOML.format(batch=batch, lanes=lanes, rate=rate, burst=burst))
        env = {
            **os.environ,
            "APP_ENV": "local",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "WECHAT_API_BASE": fake_base,
            "CONFIG_FILE": f"test.toml,{cfg}",
            "DATA_DIR": str(work),
        }
        worker_procs = []
        profile_to = os.environ.get("BENCH_PROFILE")  # a path prefix: cProfile each worker
        for i in range(workers):
            port = free_port()
            profile = ["-m", "cProfile", "-o", f"{profile_to}.{i}"] if profile_to else []
            argv = [sys.executable, *profile, "-m", "server", "worker"]
            argv += ["--concurrency", str(concurrency)]
            proc = procs.start(f"worker{i}", argv, env={**env, "PUSH_METRICS_PORT": str(port)})
            wait_http(f"http://{LOOPBACK}:{port}/healthz", proc)
            worker_procs.append(proc)

        cpu_before = {p.pid: _cpu_seconds(p.pid) for p in [*worker_procs, fake]}
        elapsed, states, waits = asyncio.run(_release_and_wait(settings, notices, timeout))
        cpu = {p.pid: _cpu_seconds(p.pid) - cpu_before[p.pid] for p in [*worker_procs, fake]}
        stats = _http("GET", f"{fake_base}/_fake/stats")
        sent = _http("GET", f"{fake_base}/_fake/sent?kind=template")["items"]
        per_notice = collections.Counter(m["miniprogram"]["pagepath"] for m in sent)
        token_calls = stats["calls"].get("/cgi-bin/stable_token", 0)
        return {
            "scenario": "push",
            "notices": notices,
            "workers": workers,
            "concurrency": concurrency,
            "lanes": lanes,
            "transient_rate": transient_rate,
            "drain_seconds": round(elapsed, 3),
            "notices_per_second": round(notices / elapsed, 1),
            "send_calls": stats["calls"].get("/cgi-bin/message/template/send", 0),
            "send_errors": stats["errors"].get("/cgi-bin/message/template/send", 0),
            "token_fetches": token_calls,
            "token_fetches_per_notice": round(token_calls / notices, 6),
            "states": states,
            "p50_ms": round(waits[len(waits) // 2], 1) if waits else 0.0,
            "p99_ms": round(waits[min(len(waits) - 1, int(len(waits) * 0.99))], 1) if waits else 0.0,
            "delivered_distinct": len(per_notice),
            "duplicates": sum(c - 1 for c in per_notice.values()),
            # CPU seconds while draining: where the time goes on this machine
            "cpu_workers_s": round(sum(cpu[p.pid] for p in worker_procs), 2),
            "cpu_fake_wechat_s": round(cpu[fake.pid], 2),
            "cpus": os.cpu_count(),
        }
    finally:
        procs.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.scenario_push", description=__doc__.split("\n")[0]
    )
    sub = p.add_subparsers(dest="command")
    fake = sub.add_parser("serve-fake", help="(internal) run the fake WeChat on a port")
    fake.add_argument("--port", type=int, required=True)
    sub.add_parser("harness", help="(bench harness) the default run, one JSON line as bench/load.py reads it")
    p.add_argument("--notices", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--lanes", type=int, default=2)
    p.add_argument("--transient-rate", type=float, default=0.05)
    p.add_argument(
        "--rate", type=float, default=1_000_000.0, help="global send rate (token bucket)"
    )
    p.add_argument("--database-url", default="")
    p.add_argument("--redis-url", default="")
    args = p.parse_args(argv)
    if args.command == "serve-fake":
        from server.__main__ import run as run_on_uvloop  # the loop the server itself uses

        run_on_uvloop(lambda: _serve_fake(args.port))
        return 0
    result = run(
        notices=args.notices,
        workers=args.workers,
        concurrency=args.concurrency,
        batch=args.batch,
        lanes=args.lanes,
        transient_rate=args.transient_rate,
        rate=args.rate,
        database_url=args.database_url,
        redis_url=args.redis_url,
    )
    print(json.dumps(result, ensure_ascii=False))
    if args.command == "harness":
        lost = result["notices"] - result["delivered_distinct"]
        print(json.dumps({"name": "push", "rps": result["notices_per_second"],
                          "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
                          "requests": result["notices"],
                          "errors": {"undelivered": lost, "duplicates": result["duplicates"]}}))
    ok = result["states"].get("pending", 0) == 0 and result["delivered_distinct"] == args.notices
    return 0 if ok else 1



# ---- the harness's view ----------------------------------------------------------------------


def _push_load(target: Any, round_no: int) -> Any:
    """Not a load on ``target``: the scenario starts its own PostgreSQL, Redis, fake WeChat and
    2 workers (the default run above) and reports notices/s; p50/p99: due → delivered."""
    from bench.load import Command

    return Command([sys.executable, "-m", "bench.scenario_push", "harness"])


def _scenarios() -> list[Any]:
    from bench.scenario import Scenario

    return [Scenario("push", "push: notices/s, 10,000 due at once, 2 workers, 5 % transient errors",
                     "pg", _push_load)]


SCENARIOS = _scenarios()


if __name__ == "__main__":
    sys.exit(main())
