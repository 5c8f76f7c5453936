"""Soak: mixed load at about half of measured capacity, resources sampled, growth bounded.

    .venv/bin/python -m bench.soak                      # 10 minutes; writes docs/reliability/*.png
    .venv/bin/python -m bench.soak --minutes 0.5 --no-write    # the smoke test in make test

Every process on 127.0.0.1, every one stopped at the end (also on Ctrl-C / SIGTERM):

1. throw-away PostgreSQL 15 + Redis (like scripts/test), the fake WeChat in its own
   process, the server (``python -m server``, migrations on start, the bench overlay's
   lifted per-user limits) and one push worker (``python -m server worker``) delivering
   to the fake WeChat;
2. seeds 100 settlement families (bench/scenario_settlements.py) whose users can log in
   with demo codes and follow the official account (so their notices are delivered);
3. **capacity**: ``bench.soak_load --capacity 32`` for ``--capacity-seconds`` (the mix of
   bench/soak_load.py, closed loop) → req/s;
4. **soak**: ``bench.soak_load --rate`` at ``--load`` (0.5) × capacity for ``--minutes``,
   while this process samples every ``--window`` s: RSS and open fds of the server and
   the worker (``/proc``), PostgreSQL connections (``pg_stat_activity``), Redis
   ``used_memory``; the generator reports p50 / p99 and errors per window;
5. judges the rules of bench/soak_report.py (exit 1 on any failure) and, unless
   ``--no-write``, writes ``docs/reliability/soak.json``, one PNG per series, and the
   figures into docs/reliability.md's ``## Soak`` block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.procs import LOOPBACK, Children, free_port, machine_info, wait_http
from bench.services import BENCH_OVERLAY
from bench.soak_load import CLIENT_CONNECTIONS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "reliability"
PAGE = ROOT / "docs" / "reliability.md"
FAMILIES = 100


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as resp:
        return json.loads(resp.read())


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _fds(pid: int) -> tuple[int, int]:
    """(open descriptors that are not sockets, sockets). Sockets follow the number of
    client connections (bounded by the generator's pool), the rest must stay flat."""
    other = sockets = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:"):
            sockets += 1
        else:
            other += 1
    return other, sockets


class Sampler(threading.Thread):
    """Resource samples every ``every`` seconds until stopped."""

    def __init__(self, *, server: int, worker: int, database_url: str, redis_url: str,
                 every: float) -> None:
        super().__init__(daemon=True)
        self.pids = {"server": server, "worker": worker}
        self.database_url = database_url.replace("postgres://", "postgresql://", 1)
        self.redis_url = redis_url
        self.every = every
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._loop())
        except BaseException as exc:  # reported by the caller
            self.failure = exc

    async def _loop(self) -> None:
        import asyncpg
        import redis

        pg = await asyncpg.connect(self.database_url)
        r = redis.Redis.from_url(self.redis_url)
        try:
            next_at = time.time()
            while not self.stop.is_set():
                conns = await pg.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()")
                info = r.info("memory")
                server_fds, server_sockets = _fds(self.pids["server"])
                worker_fds, worker_sockets = _fds(self.pids["worker"])
                self.samples.append({
                    "t": time.time(),
                    "server_rss": _rss(self.pids["server"]),
                    "worker_rss": _rss(self.pids["worker"]),
                    "server_fds": server_fds, "server_sockets": server_sockets,
                    "worker_fds": worker_fds, "worker_sockets": worker_sockets,
                    "pg_connections": int(conns),
                    "redis_used_memory": int(info["used_memory"]),
                    "redis_keys": int(r.dbsize()),
                })
                next_at += self.every
                await asyncio.sleep(max(0.0, next_at - time.time()))
        finally:
            await pg.close()
            r.close()


async def _prepare_families(database_url: str) -> dict[str, Any]:
    """Settlement families whose users log in with demo codes and follow the account."""
    import asyncpg

    from bench.scenario_settlements import seed

    tag = "soak" + os.urandom(2).hex()
    data = await seed(database_url, FAMILIES, 2, tag)
    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        # demo code demo-soakb<id>-… logs in as user <id> (the fake maps it to this openid)
        await conn.execute(
            "UPDATE users SET openid = 'demo-soakb' || id, unionid = 'union-soakb' || id "
            "WHERE openid LIKE $1", f"bench-{tag}-%")
        await conn.execute(
            "INSERT INTO official_followers (oa_openid, unionid, subscribed, updated_at) "
            "SELECT 'oa-soakb' || id, unionid, true, now() FROM users WHERE openid LIKE 'demo-soakb%'")
        binders = [r["binder_id"] for r in await conn.fetch(
            "SELECT DISTINCT binder_id FROM bindings b JOIN users u ON u.id = b.binder_id "
            "WHERE u.openid LIKE 'demo-soakb%'")]
    finally:
        await conn.close()
    return {"settle": data, "binders": binders}


async def _db_state(database_url: str) -> dict[str, Any]:
    """Counters for the write cost: WAL position, database size, rows of the growing tables."""
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        row = await conn.fetchrow(
            "SELECT pg_current_wal_lsn()::text AS lsn, pg_database_size(current_database()) AS size, "
            "(SELECT count(*) FROM settlements) AS settlements, "
            "(SELECT count(*) FROM ledger_entries) AS ledger, (SELECT count(*) FROM notices) AS notices, "
            "(SELECT count(*) FROM notices WHERE state = 'pending') AS pending")
    finally:
        await conn.close()
    return dict(row)


async def _wal_between(database_url: str, start: str, end: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        return int(await conn.fetchval("SELECT pg_wal_lsn_diff($1::text::pg_lsn, $2::text::pg_lsn)", end, start))
    finally:
        await conn.close()


def _generator(url: str, plan: Path, seconds: float, window: float, mode: list[str],
               on_line: Any = None) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.soak_load", "--url", url, "--plan", str(plan),
            "--seconds", str(seconds), "--window", str(window), *mode]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    summary: dict[str, Any] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            row = json.loads(line)
            if row.get("summary"):
                summary = row
            elif on_line is not None:
                on_line(row)
        proc.wait(timeout=seconds + 120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0 or not summary:
        raise RuntimeError(f"the load generator failed ({proc.returncode})")
    return summary


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run(*, minutes: float, load: float, capacity_seconds: float, window: float,
        write: bool) -> int:
    from bench.scenario_push import _start_backends
    from bench.soak_load import MIX
    from bench.soak_report import evaluate, plot, render, splice

    work = Path(tempfile.mkdtemp(prefix="qq-soak-"))
    work.chmod(0o755)
    procs = Children(work, cwd=ROOT)
    try:
        database_url, redis_url = _start_backends(procs)
        fake_port = free_port()
        fake = procs.start("fake_wechat", [sys.executable, "-m", "bench.scenario_push",
                                           "serve-fake", "--port", str(fake_port)])
        fake_base = f"http://{LOOPBACK}:{fake_port}"
        wait_http(f"{fake_base}/_fake/stats", fake)
        overlay = work / "soak-overlay.toml"
        overlay.write_text(BENCH_OVERLAY)
        env = {**os.environ, "APP_ENV": "local", "DATABASE_URL": database_url,
               "REDIS_URL": redis_url, "WECHAT_API_BASE": fake_base, "DEMO_DATA": "true",
               "RUN_WORKER": "false", "CONFIG_FILE": str(overlay), "DATA_DIR": str(work / "data")}
        for var in ("HOST", "PORT"):
            env.pop(var, None)
        port = free_port()
        server = procs.start("server", [sys.executable, "-m", "server", "--host", LOOPBACK,
                                        "--port", str(port)], env=env)
        base = f"http://{LOOPBACK}:{port}"
        wait_http(f"{base}/readyz", server)
        fam = asyncio.run(_prepare_families(database_url))
        metrics_port = free_port()
        worker = procs.start("worker", [sys.executable, "-m", "server", "worker"],
                             env={**env, "PUSH_METRICS_PORT": str(metrics_port)})
        wait_http(f"http://{LOOPBACK}:{metrics_port}/healthz", worker)

        from server.settings import Settings

        s = Settings.load(env={})
        tokens = [_http("POST", f"{base}/api/v1/auth/login",
                        {"code": f"demo-soaku{i}-init"})["access_token"] for i in range(50)]
        binder_tokens = [_http("POST", f"{base}/api/v1/auth/login",
                               {"code": f"demo-soakb{b}-init"})["access_token"]
                         for b in fam["binders"][:50]]
        plan = work / "plan.json"
        plan.write_text(json.dumps({
            "tokens": tokens, "binder_tokens": binder_tokens, "settle": fam["settle"],
            "oa": {"token": s.wechat.oa_token, "appid": s.wechat.oa_appid,
                   "encoding_aes_key": s.wechat.oa_encoding_aes_key}}))

        print(f"capacity: {capacity_seconds:g} s closed loop, 32 in flight", flush=True)
        cap = _generator(base, plan, capacity_seconds, capacity_seconds, ["--capacity", "32"])
        if cap["errors"]:
            print(f"  errors while measuring capacity: {cap['error_kinds']}", flush=True)
        rate = max(1.0, load * cap["rps"])
        print(f"  {cap['rps']:,.0f} req/s → soak at {rate:,.0f} req/s for {minutes:g} min",
              flush=True)
        seconds = minutes * 60
        warmup = min(60.0, max(window * 2, seconds * 0.2))
        sampler = Sampler(server=server.pid, worker=worker.pid, database_url=database_url,
                          redis_url=redis_url, every=window)
        windows: list[dict[str, Any]] = []

        def on_line(row: dict[str, Any]) -> None:
            windows.append(row)
            print(f"  {len(windows) * window:6.0f} s  {row['n'] / window:7.0f} req/s  p50 "
                  f"{row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms  errors {row['errors']}",
                  flush=True)

        before = asyncio.run(_db_state(database_url))
        started = time.time()
        sampler.start()
        try:
            soak = _generator(base, plan, seconds, window, ["--rate", f"{rate:.1f}"], on_line)
        finally:
            sampler.stop.set()
            sampler.join(30)
        if sampler.failure is not None:
            raise RuntimeError(f"sampling failed: {sampler.failure!r}")
        time.sleep(min(10.0, window))  # let the worker deliver the last settlements' notices
        after = asyncio.run(_db_state(database_url))
        pending = int(after["pending"])
        settlements = int(after["settlements"]) - int(before["settlements"])
        wal = asyncio.run(_wal_between(database_url, before["lsn"], after["lsn"]))
        writes = {
            "settlements": settlements,
            "ledger_entries": int(after["ledger"]) - int(before["ledger"]),
            "notices": int(after["notices"]) - int(before["notices"]),
            "wal_bytes": wal,
            "database_growth_bytes": int(after["size"]) - int(before["size"]),
        }
        sent = _http("GET", f"{fake_base}/_fake/stats")["calls"].get(
            "/cgi-bin/message/template/send", 0)
        settle_share = MIX["settle"] / sum(MIX.values())
        checks = evaluate(sampler.samples, windows, warmup_until=started + warmup,
                          pending_end=pending, settles_per_window=rate * settle_share * window,
                          client_connections=CLIENT_CONNECTIONS)
    finally:
        procs.close()
        shutil.rmtree(work, ignore_errors=True)
    ok = all(c["ok"] for c in checks)
    doc = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": _commit(),
        "machine": machine_info(), "minutes": minutes, "window_seconds": window,
        "warmup_seconds": warmup, "started": started, "warmup_until": started + warmup,
        "capacity": {"seconds": capacity_seconds, "connections": 32, **cap},
        "load_share": load, "rate": round(rate, 1), "mix": MIX, "total_ok": soak["ok"],
        "settlements": settlements, "delivered": sent, "pending_end": pending, "writes": writes,
        "checks": checks, "ok": ok, "samples": sampler.samples, "windows": windows,
    }
    for c in checks:
        print(f"  {'pass' if c['ok'] else 'FAIL'}  {c['rule']}: {c['measured']} ({c['bound']})")
    if write:
        DOCS.mkdir(parents=True, exist_ok=True)
        (DOCS / "soak.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        images = [f"reliability/{p.name}" for p in plot(doc, DOCS)]
        page = PAGE.read_text(encoding="utf-8") if PAGE.exists() else "# Reliability\n"
        PAGE.write_text(splice(page, render(doc, images)), encoding="utf-8")
        print(f"written: {DOCS}/soak.json, {len(images)} graphs, {PAGE}")
    print(json.dumps({"name": "soak", "ok": ok, "capacity_rps": cap["rps"], "rate": rate,
                      "requests": soak["ok"], "errors": soak["errors"],
                      "checks": {c["rule"]: c["ok"] for c in checks}}, ensure_ascii=False))
    return 0 if ok else 1


def rejudge(path: Path) -> int:
    """Judge a recorded run (``soak.json``) again with the current rules; rewrite its
    figures, graphs and docs block. For when a rule changes, not the code under test."""
    from bench.soak_load import MIX
    from bench.soak_report import evaluate, plot, render, splice

    doc = json.loads(path.read_text(encoding="utf-8"))
    settle_share = MIX["settle"] / sum(MIX.values())
    doc["checks"] = evaluate(doc["samples"], doc["windows"], warmup_until=doc["warmup_until"],
                             pending_end=doc["pending_end"],
                             settles_per_window=doc["rate"] * settle_share * doc["window_seconds"],
                             client_connections=CLIENT_CONNECTIONS)
    doc["ok"] = all(c["ok"] for c in doc["checks"])
    doc["rejudged"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for c in doc["checks"]:
        print(f"  {'pass' if c['ok'] else 'FAIL'}  {c['rule']}: {c['measured']} ({c['bound']})")
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    images = [f"reliability/{p.name}" for p in plot(doc, path.parent)]
    PAGE.write_text(splice(PAGE.read_text(encoding="utf-8"), render(doc, images)), encoding="utf-8")
    return 0 if doc["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="soak length (0.25-120)")
    p.add_argument("--load", type=float, default=0.5, help="share of the measured capacity")
    p.add_argument("--capacity-seconds", type=float, default=20.0)
    p.add_argument("--window", type=float, default=5.0, help="seconds per sample")
    p.add_argument("--no-write", action="store_true", help="write no docs or graphs")
    p.add_argument("--rejudge", type=Path, metavar="SOAK_JSON",
                   help="judge a recorded run again (no load); rewrites its docs block")
    args = p.parse_args(argv)
    if args.rejudge:
        return rejudge(args.rejudge)
    if not (0.25 <= args.minutes <= 120 and 0.05 <= args.load <= 1 and 3 <= args.capacity_seconds
            <= 120 and 1 <= args.window <= 60):
        print("bounds: --minutes 0.25-120, --load 0.05-1, --capacity-seconds 3-120, --window 1-60",
              file=sys.stderr)
        return 2
    try:
        return run(minutes=args.minutes, load=args.load, capacity_seconds=args.capacity_seconds,
                   window=args.window, write=not args.no_write)
    except KeyboardInterrupt:
        print("interrupted: every process the soak started has been stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
