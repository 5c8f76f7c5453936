"""Bulk registry import: rows/s and CPU per row on PostgreSQL and SQLite, beside raw COPY.

    .venv/bin/python -m bench.scenario_bulk                    # 200,000 rows (bench/results/bulk.*)
    .venv/bin/python -m bench.scenario_bulk --rows 50000 --backends pg
    .venv/bin/python -m bench.scenario_bulk --rows 0 --rss-rows 1000000   # only the memory run

What one run does (every server on 127.0.0.1, every process it starts stopped at the end):

1. writes a registry CSV of ``--rows`` valid rows (bench/bulk_data.py) and a header-only one;
2. starts a throw-away PostgreSQL 15 (``fsync=off``, as the other benches; the import
   commits once per 5,000 rows, so fsync is a small share);
3. **raw COPY**: ``COPY … FROM STDIN (FORMAT csv)`` of the same file into an unindexed
   table of text columns (asyncpg ``copy_to_table``) — the physical limit;
4. **database floor** (bench/bulk_floor.py): the same rows, prepared, COPYed straight
   into the registry's three tables with their indexes and foreign keys — what the
   database must do whatever the client does;
5. per backend, on a fresh database with the schema migrated: ``python -m server registry
   import FILE`` twice — the first load (every row created) and a re-run (every row
   unchanged: the idempotent path a crash recovery takes);
6. optionally (``--rss-rows``) a first load of a larger file on PostgreSQL for peak RSS.

Each measured command runs in its own process: its CPU time and peak RSS come from the
kernel (``wait4``), the database server's CPU from ``/proc`` (the postmaster, its children
and the children it reaped). A header-only run of the same command is subtracted (Python
start-up, imports, connecting), so CPU µs/row is what each row costs. rows/s is the
import's own clock (its summary line), without the process start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.bulk_data import write_registry_csv
from bench.procs import LOOPBACK, Children, free_port, machine_info, wait_idle

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
MAX_ROWS = 2_000_000  # bounded: a 2 M-row file is ~160 MB on disk
TIMEOUT = 3600.0  # seconds per measured command
ROUNDS = 3  # PostgreSQL's runs, interleaved; the median is reported
TICK = os.sysconf("SC_CLK_TCK")

TARGETS = {"pg_rows_per_s": 20_000, "sqlite_rows_per_s": 5_000, "copy_cpu_ratio": 25.0,
           "rss_mb_1m": 200.0}

RAW_TABLE = """CREATE TABLE IF NOT EXISTS raw_registry (
    name text, id_type text, id_number text, insurance_type text, region_code text,
    has_personal_account text, voucher_activated text, status text, balance_fen text,
    guardian_id_numbers text)"""


# ---- processes ------------------------------------------------------------------------------


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class Postgres:
    """A throw-away PostgreSQL 15 cluster in ``work`` (stopped by ``procs``)."""

    def __init__(self, procs: Children, work: Path) -> None:
        self.port = free_port()
        self.dir = work / "pg"
        if os.geteuid() == 0:
            shutil.chown(work, "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.dir), "--auth=trust", "-U", "postgres",
                  "-E", "UTF8")
        options = (f"-p {self.port} -k {work} -c listen_addresses={LOOPBACK} -c fsync=off "
                   "-c synchronous_commit=off -c max_connections=50")
        pg_ctl = str(PG_BIN / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.dir), "-l", str(work / "pg.log"), "-w", "-o", options, "start")
        procs.push("postgres", lambda: self._run(pg_ctl, "-D", str(self.dir), "-m", "immediate",
                                                 "stop", check=False))
        self.pid = int((self.dir / "postmaster.pid").read_text().split()[0])

    def _run(self, *argv: str, check: bool = True) -> None:
        subprocess.run(_as_postgres(list(argv)), check=check, capture_output=True)

    def url(self, db: str) -> str:
        return f"postgres://postgres@{LOOPBACK}:{self.port}/{db}"

    def createdb(self, db: str) -> str:
        self._run(str(PG_BIN / "createdb"), "-h", LOOPBACK, "-p", str(self.port), "-U", "postgres", db)
        return self.url(db)

    def psql(self, db: str, sql: str) -> None:
        self._run(str(PG_BIN / "psql"), "-h", LOOPBACK, "-p", str(self.port), "-U", "postgres",
                  "-d", db, "-v", "ON_ERROR_STOP=1", "-qc", sql)

    def cpu_seconds(self) -> float:
        """CPU of the whole cluster so far: the postmaster (with the children it reaped)
        and its live children."""
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry) == self.pid:
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            elif int(fields[1]) == self.pid:
                total += int(fields[11]) + int(fields[12])
        return total / TICK


IDLE = {"threshold": 0.85, "timeout": 60.0}  # wait for the CPUs before each measured command


def measure(argv: list[str], env: dict[str, str], pg: Postgres | None) -> dict[str, Any]:
    """Run ``argv`` to the end (bounded); its CPU, peak RSS, stdout and the server's CPU.
    Waits (bounded) for idle CPUs first, and says whether they were."""
    idle, share = wait_idle(threshold=IDLE["threshold"], timeout=IDLE["timeout"])
    out = tempfile.TemporaryFile()
    server_before = pg.cpu_seconds() if pg else 0.0
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + TIMEOUT
    status, usage = 0, None
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    out.seek(0)
    text = out.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} exited {proc.returncode}:\n{text[-3000:]}")
    assert usage is not None
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "server_cpu_s": (pg.cpu_seconds() - server_before) if pg else 0.0,
        "max_rss_mb": usage.ru_maxrss / 1024,
        "output": text,
        "idle_before": round(share, 2),
        "idle": idle,
        "loadavg_after": os.getloadavg()[0],
    }


def _import_argv(path: Path) -> list[str]:
    return [sys.executable, "-m", "server", "registry", "import", str(path), "--no-progress",
            "--rejects", "-"]


def _server_env(work: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update({"APP_ENV": "local", "DATABASE_URL": database_url, "DATA_DIR": str(work),
                "DEMO_DATA": "false"})
    return env


_SUMMARY = re.compile(r"([\d,]+) rows in ([\d.]+) s")


def _row(label: str, rows: int, run: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """One result line: per-row costs net of the header-only run of the same command."""
    m = _SUMMARY.search(run["output"])
    seconds = float(m.group(2)) if m else run["wall_s"] - base["wall_s"]
    if m and int(m.group(1).replace(",", "")) != rows:
        raise RuntimeError(f"{label}: imported {m.group(1)} rows, expected {rows:,}")
    client = max(run["cpu_s"] - base["cpu_s"], 0.0)
    server = max(run["server_cpu_s"] - base["server_cpu_s"], 0.0)
    return {
        "label": label,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if seconds > 0 else 0.0,
        "client_cpu_us_per_row": round(client / rows * 1e6, 2),
        "server_cpu_us_per_row": round(server / rows * 1e6, 2),
        "cpu_us_per_row": round((client + server) / rows * 1e6, 2),
        "max_rss_mb": round(run["max_rss_mb"], 1),
        "idle_before": run["idle_before"],
        "idle": run["idle"],
        "loadavg_after": round(run["loadavg_after"], 2),
        "summary": [line for line in run["output"].splitlines() if line.startswith(("registry", "  "))],
    }


# ---- the runs -----------------------------------------------------------------------------------


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median total CPU per row, with every round's total beside it."""
    ranked = sorted(runs, key=lambda r: r["cpu_us_per_row"])
    return {**ranked[len(ranked) // 2], "rounds_cpu_us_per_row": [r["cpu_us_per_row"] for r in runs]}


def _raw_copy(pg: Postgres, work: Path, csv_path: Path, empty: Path, rows: int, n: int = 0) -> dict[str, Any]:
    url = pg.createdb(f"raw_copy_{n}")
    pg.psql(f"raw_copy_{n}", RAW_TABLE)
    argv = [sys.executable, "-m", "bench.scenario_bulk", "copy-raw", "--url", url]
    base = measure([*argv, "--file", str(empty)], dict(os.environ), pg)
    run = measure([*argv, "--file", str(csv_path)], dict(os.environ), pg)
    m = re.search(r"copied (\d+) rows in ([\d.]+) s", run["output"])
    if not m or int(m.group(1)) != rows:
        raise RuntimeError(f"raw COPY: unexpected output {run['output'][-500:]}")
    run["output"] = f"registry raw COPY: {rows:,} rows in {m.group(2)} s\n"
    return _row("raw COPY into an unindexed table (PostgreSQL)", rows, run, base)


def _floor(pg: Postgres, work: Path, csv_path: Path, rows: int, n: int = 0) -> dict[str, Any]:
    """The database's share alone (bench/bulk_floor.py): the prepared rows COPYed into
    the registry's tables. Client CPU is the COPY phase's (as the tool reports it; its
    preparing is not counted), server CPU the cluster's over the whole command."""
    url = pg.createdb(f"floor_{n}")
    subprocess.run([sys.executable, "-m", "server", "migrate"], env=_server_env(work, url), cwd=ROOT,
                   check=True, capture_output=True)
    run = measure([sys.executable, "-m", "bench.bulk_floor", "--url", url, "--file", str(csv_path)],
                  dict(os.environ), pg)
    m = re.search(r"copied (\d+) rows in ([\d.]+) s, client CPU ([\d.]+) s", run["output"])
    if not m or int(m.group(1)) != rows:
        raise RuntimeError(f"database floor: unexpected output {run['output'][-500:]}")
    run["output"] = f"registry floor: {rows:,} rows in {m.group(2)} s\n"
    run["cpu_s"] = float(m.group(3))
    base = {"cpu_s": 0.0, "server_cpu_s": 0.0, "wall_s": 0.0}
    return _row("database floor: the rows, prepared, COPYed into the registry's tables (PostgreSQL)",
                rows, run, base)


def _imports(backend: str, pg: Postgres | None, work: Path, csv_path: Path, empty: Path,
             rows: int, *, rerun: bool = True) -> list[dict[str, Any]]:
    if backend == "pg":
        assert pg is not None
        db = f"import_{rows}_{int(time.time() * 1000) % 10**8}"
        url = pg.createdb(db)
        name = "PostgreSQL"
    else:
        url = f"sqlite://{work / f'import-{rows}.sqlite3'}"
        name = "SQLite"
    env = _server_env(work, url)
    subprocess.run([sys.executable, "-m", "server", "migrate"], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    env["DATABASE_SCHEMA"] = "none"
    server = pg if backend == "pg" else None
    base = measure(_import_argv(empty), env, server)
    out = [_row(f"import, first load ({name})", rows, measure(_import_argv(csv_path), env, server), base)]
    if rerun:
        again = measure(_import_argv(csv_path), env, server)
        out.append(_row(f"import, re-run: every row unchanged ({name})", rows, again, base))
    return out


def run(*, rows: int = 200_000, rss_rows: int = 0, backends: tuple[str, ...] = ("pg", "sqlite"),
        keep: bool = False) -> dict[str, Any]:
    """One bench run; returns the results (``write_results`` renders them)."""
    if not (0 <= rows <= MAX_ROWS and 0 <= rss_rows <= MAX_ROWS):
        raise ValueError(f"rows: 0..{MAX_ROWS:,}")
    work = Path(tempfile.mkdtemp(prefix="qq-bulk-bench-"))
    os.chmod(work, 0o755)
    procs = Children(work, cwd=ROOT)
    results: list[dict[str, Any]] = []
    try:
        empty = write_registry_csv(work / "empty.csv", 0)
        pg = Postgres(procs, work) if ("pg" in backends and rows) or rss_rows else None
        if rows:
            csv_path = write_registry_csv(work / f"registry-{rows}.csv", rows)
            if pg is not None:
                # interleaved rounds, each on fresh databases; the median of each run
                # (this VM's CPU time per row drifts by ±30 % from one minute to the next)
                rounds: list[list[dict[str, Any]]] = []
                for n in range(ROUNDS):
                    rounds.append([_raw_copy(pg, work, csv_path, empty, rows, n),
                                   _floor(pg, work, csv_path, rows, n),
                                   *_imports("pg", pg, work, csv_path, empty, rows)])
                results.extend(_median(list(same)) for same in zip(*rounds, strict=True))
            for backend in backends:
                if backend != "pg":
                    results.extend(_imports(backend, pg, work, csv_path, empty, rows))
            csv_path.unlink()
        if rss_rows:
            assert pg is not None
            big = write_registry_csv(work / f"registry-{rss_rows}.csv", rss_rows)
            results.extend(_imports("pg", pg, work, big, empty, rss_rows, rerun=False))
            results[-1]["label"] = f"memory run: first load of {rss_rows:,} rows (PostgreSQL)"
            big.unlink()
    finally:
        procs.close()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "meta": {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "commit": _git_commit(),
            "machine": machine_info(),
            "python": platform.python_version(),
            "rows": rows,
            "rss_rows": rss_rows,
            "targets": TARGETS,
        },
        "runs": results,
    }


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---- the report -------------------------------------------------------------------------------


def verdicts(data: dict[str, Any]) -> list[str]:
    raw = next((r for r in data["runs"] if r["label"].startswith("raw COPY")), None)
    out = []
    for r in data["runs"]:
        if r["label"] == "import, first load (PostgreSQL)":
            ok = r["rows_per_s"] >= TARGETS["pg_rows_per_s"]
            out.append(f"PostgreSQL ≥ {TARGETS['pg_rows_per_s']:,} rows/s: {r['rows_per_s']:,.0f} "
                       f"{'✓' if ok else '✗'}")
            if raw:
                ratio = r["cpu_us_per_row"] / max(raw["cpu_us_per_row"], 1e-9)
                ok = ratio <= TARGETS["copy_cpu_ratio"]
                out.append(f"PostgreSQL CPU per row within {TARGETS['copy_cpu_ratio']:.0f}× of raw "
                           f"COPY: {ratio:.1f}× {'✓' if ok else '✗'}")
            floor = next((f for f in data["runs"] if f["label"].startswith("database floor")), None)
            if raw and floor:
                db = floor["server_cpu_us_per_row"]
                out.append(
                    f"(for scale: the database's own work of writing these rows into the registry's "
                    f"tables is {db:.1f} µs a row — {db / max(raw['cpu_us_per_row'], 1e-9):.1f}× raw "
                    f"COPY — before any client work; the import's server side is "
                    f"{r['server_cpu_us_per_row']:.1f}, its client {r['client_cpu_us_per_row']:.1f})")
        if r["label"] == "import, first load (SQLite)":
            ok = r["rows_per_s"] >= TARGETS["sqlite_rows_per_s"]
            out.append(f"SQLite ≥ {TARGETS['sqlite_rows_per_s']:,} rows/s: {r['rows_per_s']:,.0f} "
                       f"{'✓' if ok else '✗'}")
        if r["label"].startswith("memory run") and r["rows"] >= 1_000_000:
            ok = r["max_rss_mb"] < TARGETS["rss_mb_1m"]
            out.append(f"peak RSS < {TARGETS['rss_mb_1m']:.0f} MB for {r['rows']:,} rows: "
                       f"{r['max_rss_mb']:.0f} MB {'✓' if ok else '✗'}")
    return out


def render(data: dict[str, Any]) -> str:
    meta = data["meta"]
    m = meta["machine"]
    load = ", ".join(f"{x:.2f}" for x in m["loadavg"])
    lines = [
        f"# Bulk import bench {meta['date']} (commit {meta['commit']})",
        "",
        f"{m['cpus']} CPUs ({m['cpu_model']}), Python {meta['python']}, load average at the end "
        f"{load}. `python -m bench.scenario_bulk` (bench/scenario_bulk.py): one process per "
        "measured command; CPU from `wait4` (client) and `/proc` (the PostgreSQL cluster), net of "
        "a header-only run of the same command; rows/s from the import's own clock. PostgreSQL "
        "15 with fsync=off; SQLite in WAL mode, synchronous=NORMAL. Before each command the "
        f"bench waits up to {IDLE['timeout']:.0f} s for the CPUs to be {IDLE['threshold']:.0%} idle "
        "(⚠: they were not — other work shared the machine, rows/s is then low; CPU µs/row "
        "holds better). PostgreSQL's runs are repeated in "
        f"{ROUNDS} interleaved rounds on fresh databases; each line is the round of median "
        "total CPU, with every round's total in the last column.",
        "",
        "| run | rows | s | rows/s | client CPU µs/row | server CPU µs/row | total CPU µs/row "
        "| × raw COPY CPU | peak RSS MB | CPUs idle before | load after | rounds: total µs/row |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    raw = next((r for r in data["runs"] if r["label"].startswith("raw COPY")), None)
    for r in data["runs"]:
        ratio = f"{r['cpu_us_per_row'] / max(raw['cpu_us_per_row'], 1e-9):.1f}×" if raw else "-"
        lines.append(
            f"| {r['label']} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | "
            f"{r['client_cpu_us_per_row']:.1f} | {r['server_cpu_us_per_row']:.1f} | "
            f"{r['cpu_us_per_row']:.1f} | {ratio} | {r['max_rss_mb']:.0f} | "
            f"{r['idle_before']:.0%}{'' if r['idle'] else ' ⚠'} | {r['loadavg_after']:.1f} | "
            f"{', '.join(f'{x:.1f}' for x in r.get('rounds_cpu_us_per_row', []))} |"
        )
    lines += ["", "Targets (issue 18):", ""] + [f"- {v}" for v in verdicts(data)]
    return "\n".join(lines) + "\n"


def write_results(data: dict[str, Any], out_base: Path) -> Path:
    out_base.parent.mkdir(parents=True, exist_ok=True)
    out_base.with_suffix(".json").write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    md = out_base.with_suffix(".md")
    md.write_text(render(data))
    return md


# ---- the raw COPY client (a subcommand, so it is measured like the import) --------------------


async def _copy_raw(url: str, path: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        status = await conn.copy_to_table("raw_registry", source=path, format="csv", header=True)
        elapsed = time.perf_counter() - started
    finally:
        await conn.close()
    print(f"copied {int(status.split()[-1])} rows in {elapsed:.3f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scenario_bulk", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command")
    cp = sub.add_parser("copy-raw", help="(internal) COPY a CSV into raw_registry")
    cp.add_argument("--url", required=True)
    cp.add_argument("--file", required=True)
    sub.add_parser("harness", help="(bench harness) 50,000 rows on PostgreSQL, one JSON line")
    p.add_argument("--rows", type=int, default=200_000, help=f"rows of the main runs (≤ {MAX_ROWS:,})")
    p.add_argument("--rss-rows", type=int, default=0,
                   help="also a first load of this many rows on PostgreSQL, for peak RSS (e.g. 1000000)")
    p.add_argument("--backends", default="pg,sqlite", help="pg, sqlite or both")
    p.add_argument("--out", type=Path, default=None,
                   help="result path without suffix (default bench/results/bulk)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    args = p.parse_args(argv)
    if args.command == "copy-raw":
        import asyncio

        if not args.url.startswith(f"postgres://postgres@{LOOPBACK}:"):
            raise SystemExit("copy-raw only talks to a loopback PostgreSQL")
        asyncio.run(_copy_raw(args.url, args.file))
        return 0
    if args.command == "harness":
        data = run(rows=50_000, backends=("pg",))
        r = next(r for r in data["runs"] if r["label"] == "import, first load (PostgreSQL)")
        print(json.dumps({"name": "bulk_import", "rps": r["rows_per_s"], "p50_ms": 0.0,
                          "p99_ms": 0.0, "requests": r["rows"], "errors": 0}))
        return 0
    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    if not set(backends) <= {"pg", "sqlite"}:
        raise SystemExit("--backends: pg, sqlite")
    data = run(rows=args.rows, rss_rows=args.rss_rows, backends=backends, keep=args.keep)
    out = args.out or RESULTS / "bulk"
    md = write_results(data, out)
    print(md.read_text())
    print(f"results: {md} and .json")
    return 0


# ---- the harness's view ----------------------------------------------------------------------


def _bulk_load(target: Any, round_no: int) -> Any:
    """Not a load on ``target``: the scenario starts its own PostgreSQL and imports 50,000
    registry rows; req/s = rows/s of the first load."""
    from bench.load import Command

    return Command([sys.executable, "-m", "bench.scenario_bulk", "harness"])


def _scenarios() -> list[Any]:
    from bench.scenario import Scenario

    return [Scenario("bulk_import", "registry import: rows/s, 50,000 rows, first load (PostgreSQL)",
                     "pg", _bulk_load)]


SCENARIOS = _scenarios()


if __name__ == "__main__":
    sys.exit(main())
