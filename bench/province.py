"""A province's volume: seed PostgreSQL with COPY, then time the hot queries and EXPLAIN them.

    .venv/bin/python -m bench.province                 # scale 1.0 (~10 M rows), writes docs/scaling/
    .venv/bin/python -m bench.province --scale 0.05 --iterations 30 --no-write   # the CI check

1. PostgreSQL: ``--database-url`` (an empty database), else a throw-away PostgreSQL 15 on
   loopback (stopped at the end); the schema comes from the real migrations
   (``python -m server migrate``);
2. :mod:`bench.province_seed` loads the sample with binary COPY, then ``VACUUM ANALYZE``;
3. each hot query is the server's own code (the domain functions, through the ORM, in
   this process): warmed up, then called ``--iterations`` times with random existing
   keys; p50 / p99 of a call. Every SQL statement a call runs is captured (Tortoise's
   query log) and run once more under ``EXPLAIN (ANALYZE, BUFFERS)`` inside a rolled-back
   transaction;
4. **pass rule**: no ``Seq Scan`` on a table with more than ``--big`` rows (10,000) in any
   plan. Exit 1 otherwise;
5. also measured, for docs/scaling.md: table and index sizes, and what monthly
   partitions of the ledger and the notices would change (bench/province_partitions.py).

Writes ``bench/results/province.json`` and ``docs/scaling/<query>.txt`` (SQL + plans)
unless ``--no-write``; prints one JSON summary line last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.procs import LOOPBACK, Stack, free_port
from bench.province_seed import (
    Generator,
    Volumes,
    id_hash_of,
    institution_code,
    openid_of,
    psn_no_of,
    seed,
)

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
RESULTS = ROOT / "bench" / "results" / "province.json"
EXPLAINS = ROOT / "docs" / "scaling"
SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")
EXECUTION = re.compile(r"Execution Time: ([0-9.]+) ms")


# -- PostgreSQL --------------------------------------------------------------------------


def start_postgres(stack: Stack, workdir: Path) -> str:
    """A throw-away PostgreSQL 15 on loopback; stopped by ``stack``."""
    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb missing)")
    as_pg: list[str] = []
    if os.geteuid() == 0:
        as_pg = ["runuser", "-u", "postgres", "--"]
        shutil.chown(workdir, "postgres")
    data = workdir / "pg"
    port = free_port()
    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "--auth=trust", "-U",
                    "postgres", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
    # fsync off: the load is a throw-away; it changes write cost, not the read plans measured
    opts = (f"-p {port} -k {workdir} -c listen_addresses={LOOPBACK} -c fsync=off "
            "-c synchronous_commit=off -c shared_buffers=512MB -c max_wal_size=8GB "
            "-c maintenance_work_mem=256MB -c checkpoint_timeout=30min")
    pg_ctl = str(PG_BIN / "pg_ctl")
    stack.push("postgres", lambda: subprocess.run(
        [*as_pg, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
        timeout=60))
    subprocess.run([*as_pg, pg_ctl, "-D", str(data), "-l", str(workdir / "pg.log"), "-w", "-o",
                    opts, "start"], check=True, capture_output=True, timeout=120)
    subprocess.run([*as_pg, str(PG_BIN / "createdb"), "-h", LOOPBACK, "-p", str(port), "-U",
                    "postgres", "province"], check=True, capture_output=True, timeout=60)
    return f"postgres://postgres@{LOOPBACK}:{port}/province"


def migrate(url: str, workdir: Path) -> None:
    env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(workdir / "data"),
           "APP_ENV": "local"}
    for var in ("CONFIG_FILE", "REDIS_URL"):
        env.pop(var, None)
    subprocess.run([sys.executable, "-m", "server", "migrate"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=300)


def _asyncpg_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1).split("?")[0]


# -- the hot queries -------------------------------------------------------------------------


class Rollback(Exception):
    """Raised to undo what a measured call wrote (the notice claim leases rows)."""


class Keys:
    """Random existing keys of the seeded sample."""

    def __init__(self, v: Volumes, today: date) -> None:
        self.v = v
        self.today = today
        self.gen = Generator(v, today)
        self.rnd = random.Random(11)
        self.binders = max(1, int(v.bindings / 2.5))

    def user(self) -> int:
        return 1 + self.rnd.randrange(self.v.users)

    def person(self) -> int:
        return 1 + self.rnd.randrange(self.v.persons)

    def settled_member(self) -> int:
        return self.gen.settlement_member(1 + self.rnd.randrange(self.v.settlements))

    def binder(self) -> int:
        return 1 + self.rnd.randrange(self.binders)

    def busy_institution(self) -> str:
        return institution_code(1 + self.rnd.randrange(min(5, self.v.institutions)))

    def day(self) -> date:
        return self.today - timedelta(days=1 + self.rnd.randrange(300))


def hot_queries(keys: Keys) -> dict[str, tuple[str, Callable[[], Awaitable[Any]]]]:
    """name → (what it is and where it lives, one call of it). Imports the server's code."""
    from tortoise.transactions import in_transaction

    from server.domain import ledger
    from server.domain.clock import utc_now
    from server.domain.family.queries import active_members
    from server.domain.models import InsuredPerson, User
    from server.domain.money_sql import lock_person_accounts, paying_member
    from server.domain.settlements import reconciliation
    from server.domain.settlements.queries import yearly_summary
    from server.push.leases import claim

    async def login_openid() -> None:
        await User.get_or_create(openid=openid_of(keys.user()))

    async def realname_id_hash() -> None:
        await InsuredPerson.get_or_none(id_hash=id_hash_of(keys.person()))

    async def members_list() -> None:
        await active_members(keys.binder())

    async def yearly() -> None:
        member = keys.settled_member()
        await yearly_summary(member, keys.today.year)
        await ledger.yearly_totals(member, keys.today.year)

    async def settlement_locks() -> None:
        async with in_transaction() as conn:
            m = await paying_member(conn, "psn_no", psn_no_of(keys.settled_member()))
            assert m is not None
            await lock_person_accounts(conn, [m.id, *(a.authorizer_person_id for a in m.authorizations)])

    async def notice_claim() -> None:
        try:
            async with in_transaction():
                await claim(worker_id="province", limit=100, lease_seconds=60, now=utc_now())
                raise Rollback
        except Rollback:
            pass

    async def reconciliation_day() -> None:
        code, day = keys.busy_institution(), keys.day()
        await reconciliation.totals(code, day, today=keys.today)
        await reconciliation.page(code, day, None, 100)

    return {
        "login_openid": ("login: the user by openid (`User.get_or_create`, server/domain/auth.py)",
                         login_openid),
        "realname_id_hash": ("real-name check: the insured person by id_hash "
                             "(server/domain/registry.py `find_by_id`)", realname_id_hash),
        "members_list": ("`GET /family/members`: a binder's active bindings with their members "
                         "(server/domain/family/queries.py `active_members`)", members_list),
        "yearly_summary": ("a member's yearly summary: settlements + ledger by kind "
                           "(settlements/queries.py `yearly_summary`, ledger.py `yearly_totals`)",
                           yearly),
        "settlement_locks": ("2207 settle: the paying member by psn_no and `FOR UPDATE` of the "
                             "accounts (server/domain/money_sql.py)", settlement_locks),
        "notice_claim": ("push: claim 100 due notices `FOR UPDATE SKIP LOCKED` + lease them "
                         "(server/push/leases.py `claim`; rolled back)", notice_claim),
        "reconciliation_day": ("institution API: a busy hospital's day — totals + first page "
                               "(settlements/reconciliation.py)", reconciliation_day),
    }


class Captured(logging.Handler):
    """Collects the (SQL, values) Tortoise logs for every statement it executes."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[tuple[str, list[Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], str):
            sql, values = args
            head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
            if head in ("SELECT", "UPDATE", "INSERT", "DELETE", "WITH"):
                self.statements.append((sql, list(values or [])))


async def explain(conn: Any, sql: str, values: list[Any]) -> str:
    tx = conn.transaction()
    await tx.start()
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *values)
    finally:
        await tx.rollback()
    return "\n".join(r[0] for r in rows)


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def measure(url: str, v: Volumes, today: date, *, iterations: int, big: int,
                  workdir: Path, partitions: bool) -> dict[str, Any]:
    import asyncpg

    from server.db import open_orm
    from server.settings import Settings

    settings = Settings.load(env={"DATABASE_URL": url, "DATABASE_SCHEMA": "none",
                                  "DATA_DIR": str(workdir / "data"), "DEMO_DATA": "false"})
    ctx = await open_orm(settings)
    conn = await asyncpg.connect(_asyncpg_url(url))
    log = logging.getLogger("tortoise.db_client")
    try:
        sizes = {r["relname"]: {"rows": int(r["reltuples"]), "table_mb": round(r["t"] / 2**20, 1),
                                "indexes_mb": round(r["i"] / 2**20, 1)}
                 for r in await conn.fetch(
                     "SELECT c.relname, c.reltuples, pg_table_size(c.oid) AS t, "
                     "pg_indexes_size(c.oid) AS i FROM pg_class c JOIN pg_namespace n "
                     "ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
                     "ORDER BY pg_total_relation_size(c.oid) DESC")}
        big_tables = {name for name, s in sizes.items() if s["rows"] > big}
        keys = Keys(v, today)
        results: dict[str, Any] = {}
        for name, (title, call) in hot_queries(keys).items():
            for _ in range(min(20, iterations)):  # warm the caches and the compiled queries
                await call()
            times = []
            for _ in range(iterations):
                started = time.perf_counter()
                await call()
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            handler = Captured()
            log.addHandler(handler)
            previous = log.level
            log.setLevel(logging.DEBUG)
            try:
                await call()
            finally:
                log.removeHandler(handler)
                log.setLevel(previous)
            plans = []
            for sql, values in handler.statements:
                plans.append({"sql": sql, "values": [str(x) for x in values],
                              "plan": await explain(conn, sql, values)})
            seq = sorted({t for p in plans for t in SEQ_SCAN.findall(p["plan"]) if t in big_tables})
            # the database's own time for one call (sum of EXPLAIN ANALYZE's execution
            # times): what the call costs PostgreSQL, whatever else runs on the machine
            db_ms = sum(float(x) for p in plans for x in EXECUTION.findall(p["plan"]))
            results[name] = {"title": title, "p50_ms": round(percentile(times, 0.5), 3),
                             "p99_ms": round(percentile(times, 0.99), 3),
                             "db_execution_ms": round(db_ms, 3),
                             "iterations": iterations, "statements": len(plans),
                             "seq_scans_on_big_tables": seq, "plans": plans}
            print(f"  {name:<20} p50 {results[name]['p50_ms']:7.2f} ms  p99 "
                  f"{results[name]['p99_ms']:7.2f} ms  {len(plans)} statement(s)"
                  f"{'  SEQ SCAN on ' + ', '.join(seq) if seq else ''}", flush=True)
        partition = None
        if partitions:
            from bench.province_partitions import experiment

            print("  partitioning experiment: monthly copies of ledger_entries and notices",
                  flush=True)
            partition = await experiment(conn, v, today, iterations=iterations)
            for key in ("ledger_yearly_plain", "ledger_yearly_partitioned", "claim_plain",
                        "claim_partitioned"):
                print(f"  {key:<26} p50 {partition[key]['p50_ms']:7.2f} ms  p99 "
                      f"{partition[key]['p99_ms']:7.2f} ms", flush=True)
            print(f"  retention of a month: {partition['retention']}", flush=True)
    finally:
        await conn.close()
        await ctx.close_connections()
    return {"sizes": sizes, "queries": results, "partitioning": partition}


def write(doc: dict[str, Any], out: Path, explains: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    slim = json.loads(json.dumps(doc))
    slim["sizes"] = {k: v for k, v in slim["sizes"].items() if v["rows"] > 0}
    for q in slim["queries"].values():
        q.pop("plans")
    part = slim.get("partitioning") or {}
    plans = {k: part.pop(k) for k in list(part) if k.endswith("_plan")}
    out.write_text(json.dumps(slim, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    explains.mkdir(parents=True, exist_ok=True)
    v = doc["volumes"]
    for name, q in doc["queries"].items():
        lines = [f"-- {q['title']}",
                 f"-- bench/province.py at scale {doc['scale']} ({v['persons']:,} insured persons, "
                 f"{v['ledger']:,} ledger entries, {v['notices']:,} notices), {doc['date']}",
                 f"-- p50 {q['p50_ms']} ms, p99 {q['p99_ms']} ms over {q['iterations']} calls "
                 "(the whole call through the ORM, warm cache)", ""]
        for i, p in enumerate(q["plans"], 1):
            lines += [f"-- statement {i}", p["sql"], f"-- values: {p['values']}", "", p["plan"], ""]
        (explains / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    if plans:
        from bench.province_partitions import YEARLY

        text = [f"-- the ledger's yearly totals of one member, plain vs partitioned by month "
                f"(bench/province_partitions.py), scale {doc['scale']}, {doc['date']}",
                YEARLY.format(t="<table>"), ""]
        for k, plan in plans.items():
            text += [f"-- {k}", plan, ""]
        (explains / "partitioning.txt").write_text("\n".join(text), encoding="utf-8")


def run(*, database_url: str, scale: float, iterations: int, big: int, write_to: bool,
        partitions: bool = True) -> int:
    stack = Stack()
    workdir = Path(tempfile.mkdtemp(prefix="qq-province-"))
    workdir.chmod(0o755)
    stack.push("workdir", lambda: shutil.rmtree(workdir, ignore_errors=True))
    try:
        url = database_url or start_postgres(stack, workdir)
        v = Volumes.at(scale)
        today = date.today()
        print(f"province sample at scale {scale}: {v.total():,} rows", flush=True)
        migrate(url, workdir)

        async def load() -> dict[str, float]:
            import asyncpg

            conn = await asyncpg.connect(_asyncpg_url(url))
            try:
                return await seed(conn, v, today)
            finally:
                await conn.close()

        started = time.perf_counter()
        took = asyncio.run(load())
        seed_seconds = round(time.perf_counter() - started, 1)
        print(f"seeded in {seed_seconds} s; measuring", flush=True)
        measured = asyncio.run(measure(url, v, today, iterations=iterations, big=big,
                                       workdir=workdir, partitions=partitions))
    finally:
        stack.close()
    doc = {"date": datetime.now().astimezone().isoformat(timespec="seconds"), "scale": scale,
           "volumes": v.__dict__, "seed_seconds": seed_seconds, "seed_seconds_by_table": took,
           "machine": {"cpus": os.cpu_count(), "mem_gb": _mem_gb()}, "big_rows": big,
           **measured}
    if write_to:
        write(doc, RESULTS, EXPLAINS)
    failed = {n: q["seq_scans_on_big_tables"] for n, q in doc["queries"].items()
              if q["seq_scans_on_big_tables"]}
    print(json.dumps({"name": "province", "scale": scale, "seed_seconds": seed_seconds,
                      "queries": {n: [q["p50_ms"], q["p99_ms"]] for n, q in doc["queries"].items()},
                      "seq_scans": failed, "ok": not failed}, ensure_ascii=False))
    return 1 if failed else 0


def _mem_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.province", description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default="", help="an empty database (default: a throw-away one)")
    p.add_argument("--scale", type=float, default=1.0, help="1.0 = 1 M insured persons (0.001-2)")
    p.add_argument("--iterations", type=int, default=300, help="calls per query (10-5000)")
    p.add_argument("--big", type=int, default=10_000, help="a seq scan on a table over this many rows fails")
    p.add_argument("--no-write", action="store_true", help="write no result files")
    p.add_argument("--no-partitions", action="store_true",
                   help="skip the partitioning experiment (bench/province_partitions.py)")
    args = p.parse_args(argv)
    if not (0.001 <= args.scale <= 2 and 10 <= args.iterations <= 5000):
        print("bounds: --scale 0.001-2, --iterations 10-5000", file=sys.stderr)
        return 2
    return run(database_url=args.database_url, scale=args.scale, iterations=args.iterations,
               big=args.big, write_to=not args.no_write, partitions=not args.no_partitions)


if __name__ == "__main__":
    sys.exit(main())
