"""Settlement ingest throughput: signed 2207 requests with 共济 splits and notices.

Self-contained (runnable alone, on loopback only):

    python bench/scenario_settlements.py --database-url postgres://… --redis-url redis://…

1. seeds the database directly: one institution, ``--members`` families (member with a
   small own balance, ``--authorizers`` authorizers with large balances and active
   authorizations, one binder with an active binding, every adult a mini-program user);
2. starts the real server (``python -m server``) as a subprocess on 127.0.0.1;
3. fires signed POST /api/v1/institution/settlements from a separate client process
   (aiohttp, ``--connections`` in flight) for ``--duration`` seconds (or ``--requests``),
   every one a new ``setl_id`` for a random family, so each one locks accounts, splits
   own → authorizers → cash, writes ledger entries and 3–4 notices;
4. does the same against a bare aiohttp JSON endpoint (the baseline) and prints both
   rates and their ratio, as one JSON line at the end.

``load`` mode is the generator alone (the bench harness's external-command contract):
it reads ``BENCH_URL``, ``BENCH_DURATION``, ``BENCH_CONNECTIONS`` and the seed file
named by ``BENCH_SETTLEMENT_SEED`` and prints ``{"name", "rps", "p50_ms", "p99_ms"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.procs import free_port, wait_http  # noqa: E402

SECRET = "bench-institution-secret-0123456789"


# --- seeding ----------------------------------------------------------------------------


async def seed(database_url: str, members: int, authorizers: int, tag: str) -> dict[str, Any]:
    """Create the families through the ORM (bulk inserts); returns what the client needs."""
    from datetime import date, datetime, timezone

    from server.db import open_orm
    from server.domain.identity import make_resident_id
    from server.domain.institutions import add_institution
    from server.domain.models import (
        Account,
        Authorization,
        Binding,
        InsuredPerson,
        LedgerEntry,
        User,
    )
    from server.domain.pii import PiiCipher
    from server.domain.registry import id_hash, name_hash, psn_no_for
    from server.settings import Settings

    settings = Settings.load(env={"DATABASE_URL": database_url, "DEMO_DATA": "false"})
    ctx = await open_orm(settings)
    pii = PiiCipher(settings.pii.keys, settings.pii.current_kid, settings.pii.hash_key)
    code = f"B{tag}"[:32]
    await add_institution(
        code=code, name="压测人民医院", region_code="420100", pii=pii, secret=SECRET
    )
    now = datetime.now(timezone.utc)
    persons: list[InsuredPerson] = []
    rnd = random.Random(tag)
    per_family = 1 + authorizers + 1  # member, authorizers, binder
    used: set[str] = set()
    for f in range(members):
        for k in range(per_family):
            while True:
                birth = date(1940 + rnd.randrange(60), 1 + rnd.randrange(12), 1 + rnd.randrange(28))
                number = make_resident_id("420102", birth, f"{rnd.randrange(1000):03d}")
                if number not in used:
                    used.add(number)
                    break
            hid = id_hash(pii, "resident_id", number)
            persons.append(
                InsuredPerson(
                    psn_no=psn_no_for(hid + tag),
                    name_enc=pii.encrypt(f"压测{f}号{k}", purpose="name"),
                    name_hash=name_hash(pii, f"压测{f}号{k}"),
                    id_type="resident_id",
                    id_number_enc=pii.encrypt(number, purpose="id_number"),
                    id_hash=hashlib.sha256((hid + tag).encode()).hexdigest(),
                    insurance_type="employee",
                    region_code="420100",
                    has_personal_account=True,
                    voucher_activated=True,
                    status="active",
                )
            )
    await InsuredPerson.bulk_create(persons, batch_size=1000)
    saved = {
        p.psn_no: p.id for p in await InsuredPerson.filter(psn_no__in=[p.psn_no for p in persons])
    }
    ids = [saved[p.psn_no] for p in persons]
    # member: a little own money (acct_pay), authorizers: plenty (共济), binder: none
    roles = [i % per_family for i in range(len(ids))]
    balances = [2_000 if r == 0 else (10**12 if r <= authorizers else 0) for r in roles]
    await Account.bulk_create(
        [Account(person_id=pid, balance_fen=b) for pid, b in zip(ids, balances)], batch_size=1000
    )
    accounts = dict(await Account.filter(person_id__in=ids).values_list("person_id", "id"))
    await LedgerEntry.bulk_create(
        [
            LedgerEntry(
                account_id=accounts[pid],
                amount_fen=b,
                balance_after_fen=b,
                kind="import",
                note="bench",
            )
            for pid, b in zip(ids, balances)
            if b
        ],
        batch_size=1000,
    )
    users = [
        User(openid=f"bench-{tag}-{i}", realname_verified=True, person_id=pid)
        for i, pid in enumerate(ids)
        if i % per_family != 0
    ]
    await User.bulk_create(users, batch_size=1000)
    user_of = dict(
        await User.filter(openid__startswith=f"bench-{tag}-").values_list("person_id", "id")
    )
    auths, bindings, psn_nos = [], [], []
    for f in range(members):
        base = f * per_family
        member = ids[base]
        psn_nos.append(persons[base].psn_no)
        for k in range(1, authorizers + 1):
            auths.append(
                Authorization(
                    authorizer_id=user_of[ids[base + k]],
                    authorizer_person_id=ids[base + k],
                    member_id=member,
                    relationship="child",
                    notice_version="bench",
                    notice_sha256="0" * 64,
                )
            )
        bindings.append(
            Binding(
                binder_id=user_of[ids[base + per_family - 1]],
                member_id=member,
                relationship="parent",
                bound_at=now,
            )
        )
    await Authorization.bulk_create(auths, batch_size=1000)
    await Binding.bulk_create(bindings, batch_size=1000)
    await ctx.close_connections()
    return {"code": code, "secret": SECRET, "psn_nos": psn_nos, "tag": tag}


# --- the load generator -------------------------------------------------------------------


def _sign(secret: str, ts: str, nonce: str, body: bytes) -> str:
    return hmac.new(
        secret.encode(), ts.encode() + b"\n" + nonce.encode() + b"\n" + body, hashlib.sha256
    ).hexdigest()


async def fire(
    url: str,
    seed_data: dict[str, Any] | None,
    *,
    duration: float,
    connections: int,
    max_requests: int | None,
) -> dict[str, Any]:
    """Keep ``connections`` requests in flight; count the successful answers per second."""
    import aiohttp

    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = 0
    run = secrets.token_hex(4)
    deadline = time.perf_counter() + duration

    def next_request() -> tuple[bytes, dict[str, str]]:
        nonlocal counter
        counter += 1
        if seed_data is None:
            return b"", {}
        psn_part = random.randint(1_000, 9_999)
        body = {
            "setl_id": f"{seed_data['tag']}-{run}-{counter}",
            "med_type": "11",
            "psn_no": random.choice(seed_data["psn_nos"]),
            "setl_time": "2026-11-20T10:30:00+08:00",
            "medfee_sumamt": f"{(psn_part + 10_000) // 100}.{(psn_part + 10_000) % 100:02d}",
            "hifp_pay": "100.00",
            "fund_pay_sumamt": "100.00",
            "psn_part_amt": f"{psn_part // 100}.{psn_part % 100:02d}",
        }
        raw = json.dumps(body).encode()
        ts, nonce = str(int(time.time())), secrets.token_hex(12)
        headers = {
            "Content-Type": "application/json",
            "X-Institution-Code": seed_data["code"],
            "X-Timestamp": ts,
            "X-Nonce": nonce,
            "X-Signature": _sign(seed_data["secret"], ts, nonce, raw),
        }
        return raw, headers

    urls = url.split(",")

    async def worker(session: aiohttp.ClientSession, url: str) -> None:
        while time.perf_counter() < deadline and (max_requests is None or counter < max_requests):
            raw, headers = next_request()
            started = time.perf_counter()
            try:
                if seed_data is None:
                    async with session.get(url) as resp:
                        await resp.read()
                        status = resp.status
                else:
                    async with session.post(url, data=raw, headers=headers) as resp:
                        await resp.read()
                        status = resp.status
            except aiohttp.ClientError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            if status in (200, 201):
                latencies.append(time.perf_counter() - started)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1

    connector = aiohttp.TCPConnector(limit=connections)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, urls[i % len(urls)]) for i in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)
            if latencies
            else 0.0
        )

    return {
        "ok": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": errors,
        "seconds": round(elapsed, 2),
    }


def _client_process(
    url: str, seed_file: str | None, duration: float, connections: int, max_requests: int | None
) -> dict[str, Any]:
    """Run the generator in its own process, so it never shares a core's loop with the server."""
    cmd = [
        sys.executable,
        __file__,
        "load",
        "--url",
        url,
        "--duration",
        str(duration),
        "--connections",
        str(connections),
    ]
    if seed_file:
        cmd += ["--seed-file", seed_file]
    if max_requests:
        cmd += ["--requests", str(max_requests)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=duration + 120)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- processes --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def pg_backend_pids(database_url: str) -> list[int]:
    """The server's PostgreSQL backends (pooled, so they live through the run), when local."""
    import asyncpg

    conn = await asyncpg.connect(
        database_url.replace("postgres://", "postgresql://", 1).split("?")[0]
    )
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows if Path(f"/proc/{r['pid']}").exists()]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


BARE_APP = """
import sys
from aiohttp import web
async def hello(request):
    return web.json_response({"status": "ok", "id": 1})
app = web.Application()
app.router.add_get("/", hello)
app.router.add_get("/healthz", hello)
try:
    import uvloop
    loop = uvloop.new_event_loop()
except ImportError:
    import asyncio
    loop = asyncio.new_event_loop()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=loop)
"""


def measure_baseline(duration: float, connections: int) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)], stdout=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        before = cpu_seconds(proc.pid)
        result = _client_process(f"http://127.0.0.1:{port}/", None, duration, connections, None)
        cpu = cpu_seconds(proc.pid) - before
        result["server_cpu_ms_per_request"] = (
            round(cpu * 1000 / result["ok"], 4) if result["ok"] else None
        )
        return result
    finally:
        stop(proc)


def measure_settlements(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio as _asyncio

    tag = secrets.token_hex(3)
    seed_data = _asyncio.run(seed(args.database_url, args.members, args.authorizers, tag))
    server_db = args.database_url
    if "maxsize=" not in server_db and args.pool:  # Tortoise's asyncpg pool holds 5 by default
        server_db += ("&" if "?" in server_db else "?") + f"maxsize={args.pool}"
    data_dir = tempfile.mkdtemp(prefix="bench-settle-")
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    log = open(Path(data_dir) / "server.log", "wb")
    try:
        # N server processes behind the client's round robin (a load balancer's job in
        # production); the first one applies the migrations before the others start.
        for _ in range(args.processes):
            port = free_port()
            env = {
                **os.environ,
                "DATABASE_URL": server_db,
                "REDIS_URL": args.redis_url,
                "DEMO_DATA": "false",
                "RUN_WORKER": "false",
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "DATA_DIR": data_dir,
            }
            proc = subprocess.Popen(
                [sys.executable, "-m", "server"], cwd=ROOT, env=env, stdout=log, stderr=log
            )
            procs.append(proc)
            ports.append(port)
            wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(seed_data, f)
        url = ",".join(f"http://127.0.0.1:{port}/api/v1/institution/settlements" for port in ports)
        _client_process(url, f.name, min(2.0, args.duration), args.connections, None)  # warm-up
        backends = _asyncio.run(pg_backend_pids(args.database_url))
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        pg_before = sum(cpu_seconds(pid) for pid in backends)
        result = _client_process(url, f.name, args.duration, args.connections, args.requests)
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
        pg_cpu = sum(cpu_seconds(pid) for pid in backends) - pg_before
        result["db_cpu_ms_per_request"] = (
            round(pg_cpu * 1000 / result["ok"], 3) if result["ok"] and backends else None
        )
        os.unlink(f.name)
        # On a shared machine the rate depends on what else runs; the server's own CPU
        # time per settlement does not (much): report both.
        result["server_cpu_ms_per_request"] = (
            round(cpu * 1000 / result["ok"], 3) if result["ok"] else None
        )
        return result
    finally:
        for proc in procs:
            stop(proc)
        log.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode")
    load = sub.add_parser("load", help="the generator alone (external-command contract)")
    load.add_argument("--url", default=os.environ.get("BENCH_URL", ""))
    load.add_argument(
        "--duration", type=float, default=float(os.environ.get("BENCH_DURATION", "10"))
    )
    load.add_argument(
        "--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "32"))
    )
    load.add_argument("--seed-file", default=os.environ.get("BENCH_SETTLEMENT_SEED"))
    load.add_argument("--requests", type=int, default=None)
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    p.add_argument("--members", type=int, default=500)
    p.add_argument("--authorizers", type=int, default=2)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument(
        "--requests", type=int, default=None, help="stop after this many (default: by time)"
    )
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--pool", type=int, default=20, help="server's PostgreSQL pool size (maxsize=)")
    p.add_argument("--processes", type=int, default=2, help="server processes (one per core)")
    args = p.parse_args(argv)

    if args.mode == "load":
        seed_data = json.loads(Path(args.seed_file).read_text()) if args.seed_file else None
        url = args.url
        if seed_data is not None and not url.endswith("/settlements"):
            url = url.rstrip("/") + "/api/v1/institution/settlements"
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        out = runner(
            fire(
                url,
                seed_data,
                duration=args.duration,
                connections=args.connections,
                max_requests=args.requests,
            )
        )
        out["name"] = "settlements" if seed_data else "bare"
        print(json.dumps(out))
        return 0

    if not args.database_url.startswith(("postgres://", "postgresql://")) or not args.redis_url:
        p.error("--database-url (PostgreSQL) and --redis-url are required")
    baseline = measure_baseline(args.duration, args.connections)
    settlements = measure_settlements(args)
    report = {
        "scenario": "settlements",
        "settlements_per_s": settlements["rps"],
        "baseline_rps": baseline["rps"],
        "ratio": round(settlements["rps"] / baseline["rps"], 4) if baseline["rps"] else None,
        "server_cpu_ms_per_settlement": settlements["server_cpu_ms_per_request"],
        "db_cpu_ms_per_settlement": settlements["db_cpu_ms_per_request"],
        "baseline_server_cpu_ms_per_request": baseline["server_cpu_ms_per_request"],
        # settlements per second of one fully used core (what a free core would give)
        "settlements_per_cpu_s": round(1000 / settlements["server_cpu_ms_per_request"], 1)
        if settlements["server_cpu_ms_per_request"]
        else None,
        "p50_ms": settlements["p50_ms"],
        "p99_ms": settlements["p99_ms"],
        "errors": settlements["errors"],
        "connections": args.connections,
        "pool": args.pool,
        "processes": args.processes,
        "members": args.members,
        "authorizers": args.authorizers,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
