"""亲情账户 benchmark (issue #3): member list and whole binding flows, vs a bare baseline.

Runnable alone; the bench harness may import the functions. What it does, all on
127.0.0.1 and all throw-away:

1. seeds a registry CSV (binders + members, valid GB 11643 IDs) and loads it with
   ``python -m server registry import``;
2. starts ``python -m server`` on the given DATABASE_URL / REDIS_URL (SQLite in a temp
   dir when none) with the per-user rate limits raised, and a bare aiohttp JSON app;
3. **members**: binders each with 5 bound members; wrk GETs /api/v1/family/members
   with rotating bearer tokens (target ≥ 8 % of bare on PostgreSQL);
4. **flows**: concurrent clients each doing create → material → commitment → submit
   for fresh (binder, member) pairs; completed bindings per second (target ≥ 100/s on
   SQLite);
5. prints a table and one JSON line per measurement ``{"name", "rps", "p50_ms",
   "p99_ms", "ratio"}`` (ratio: against the bare app's requests per second).

    python bench/scenario_family.py                                  # SQLite + embedded Redis
    python bench/scenario_family.py --database-url postgres://postgres@127.0.0.1:5433/bench \\
        --redis-url redis://127.0.0.1:6380/0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from server.domain.identity import make_resident_id

LOOPBACK = "127.0.0.1"
MEMBERS_PER_BINDER = 5
HEADER = "name,id_type,id_number,insurance_type,region_code,has_personal_account,voucher_activated,status,balance_fen"
# A valid 1x1 PNG (what a 户口本 photo upload looks like to the server, minus the size).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c6360"
    "6060000000040001f61738550000000049454e44ae426082"
)
OVERLAY = """
[family]
applications_per_window = 1000000
submits_per_window = 1000000
vouchers_per_window = 1000000
"""
BARE_APP = """
import sys
from aiohttp import web
try:
    import uvloop
    loop = uvloop.new_event_loop()
except ImportError:
    import asyncio
    loop = asyncio.new_event_loop()
async def hello(request):
    return web.json_response({"status": "ok", "id": 1, "realname_verified": False})
app = web.Application()
app.router.add_get("/", hello)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, loop=loop, access_log=None)
"""


def person(i: int, kind: str) -> tuple[str, str]:
    """(name, resident ID) of the i-th seeded binder ("b") or member ("m"); all adults."""
    born = date(1950, 1, 1) + timedelta(days=i)
    region = "420102" if kind == "m" else "420103"
    return f"{'绑定人' if kind == 'b' else '成员'}{i}", make_resident_id(region, born, "123")


def seed_csv(path: Path, binders: int) -> None:
    lines = [HEADER]
    for i in range(binders):
        name, idn = person(i, "b")
        lines.append(f"{name},resident_id,{idn},employee,420100,true,true,active,100000")
    for i in range(binders * MEMBERS_PER_BINDER):
        name, idn = person(i, "m")
        lines.append(f"{name},resident_id,{idn},resident,420100,false,true,active,0")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_request(cpu: float, result: dict[str, float]) -> float:
    """Server CPU µs per request (or per flow): steadier than req/s on a busy machine."""
    return cpu / max(result["requests"], 1) * 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(
    url: str, *, duration: float, connections: int, lua: str, workdir: Path
) -> dict[str, float]:
    script = workdir / f"wrk-{secrets.token_hex(4)}.lua"
    script.write_text(
        lua
        + """
function done(summary, latency, requests)
  io.write(string.format('BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout))
end
"""
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH_JSON "))
    d = json.loads(line[len("BENCH_JSON ") :])
    seconds = d["duration_us"] / 1e6
    return {
        "rps": d["requests"] / seconds,
        "p50_ms": d["p50_us"] / 1000,
        "p99_ms": d["p99_us"] / 1000,
        "requests": d["requests"],
        "errors": d["errors"],
    }


def rotating_bearer(path: str, tokens: list[str]) -> str:
    """wrk Lua: GET ``path`` with ``Authorization: Bearer`` cycling through ``tokens``."""
    table = ",\n".join(json.dumps("Bearer " + t) for t in tokens)
    return (
        f"local auths = {{\n{table}\n}}\nlocal n = 0\nrequest = function()\n  n = n + 1\n"
        f'  return wrk.format("GET", {json.dumps(path)}, '
        f'{{["Authorization"] = auths[(n % #auths) + 1]}})\nend\n'
    )


# -- the mini-program's steps --------------------------------------------------------


async def call(
    s: aiohttp.ClientSession, method: str, url: str, token: str | None = None, **kw: Any
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with s.request(method, url, headers=headers, **kw) as resp:
        body = await resp.json()
        if resp.status >= 400:
            raise RuntimeError(f"{method} {url}: {resp.status} {body}")
        return body


async def verified_binder(s: aiohttp.ClientSession, base: str, i: int, tag: str) -> str:
    tokens = await call(s, "POST", f"{base}/api/v1/auth/login", json={"code": f"demo-fb{i}-{tag}"})
    name, idn = person(i, "b")
    body = {"name": name, "id_type": "resident_id", "id_number": idn, "face_token": "ok-bench"}
    await call(s, "POST", f"{base}/api/v1/me/realname", tokens["access_token"], json=body)
    return str(tokens["access_token"])


async def flow(
    s: aiohttp.ClientSession, base: str, token: str, member: int, commitment: dict[str, str]
) -> None:
    """create → material → commitment → submit, as the mini-program does."""
    name, idn = person(member, "m")
    body = {"name": name, "id_type": "resident_id", "id_number": idn, "relationship": "parent"}
    app = await call(s, "POST", f"{base}/api/v1/family/applications", token, json=body)
    url = f"{base}/api/v1/family/applications/{app['id']}"
    form = aiohttp.FormData()
    form.add_field("kind", "household_register")
    form.add_field("file", PNG, filename="hukou.png", content_type="image/png")
    await call(s, "POST", f"{url}/materials", token, data=form)
    await call(s, "POST", f"{url}/commitment", token, json=commitment)
    out = await call(s, "POST", f"{url}/submit", token, json={"member_face_token": "ok-member"})
    if out["state"] != "active":
        raise RuntimeError(f"binding not active: {out}")


async def run_flows(
    base: str,
    *,
    binders: range,
    duration: float | None,
    connections: int,
    tag: str,
    server_pid: int | None = None,
) -> dict[str, float]:
    """Bind up to 5 members to each binder with ``connections`` concurrent clients."""
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as s:
        tokens = await asyncio.gather(*(verified_binder(s, base, i, tag) for i in binders))
        c = await call(s, "GET", f"{base}/api/v1/commitments/current", tokens[0])
        commitment = {"version": c["version"], "sha256": c["sha256"]}
        # one job list per binder, so one binder's submits do not all race each other
        jobs = [
            (tokens[k], i * MEMBERS_PER_BINDER + j)
            for j in range(MEMBERS_PER_BINDER)
            for k, i in enumerate(binders)
        ]
        latencies: list[float] = []
        cpu0 = cpu_seconds(server_pid) if server_pid else 0.0
        started = time.perf_counter()
        deadline = None if duration is None else started + duration

        async def worker() -> None:
            while jobs and (deadline is None or time.perf_counter() < deadline):
                token, member = jobs.pop()
                t0 = time.perf_counter()
                await flow(s, base, token, member, commitment)
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server_pid) - cpu0 if server_pid else 0.0
    latencies.sort()
    n = len(latencies)
    return {
        "rps": n / elapsed if elapsed else 0.0,
        "p50_ms": latencies[n // 2] * 1000 if n else 0.0,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        "requests": n,
        "errors": 0,
        "cpu_us": cpu / n * 1e6 if n else 0.0,
    }


async def login_tokens(base: str, binders: range, tag: str) -> list[str]:
    async with aiohttp.ClientSession() as s:
        out = []
        for i in binders:
            t = await call(
                s, "POST", f"{base}/api/v1/auth/login", json={"code": f"demo-fb{i}-{tag}"}
            )
            out.append(str(t["access_token"]))
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL", ""))
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--flow-connections", type=int, default=16)
    p.add_argument("--binders", type=int, default=600, help="seeded binders (5 members each)")
    p.add_argument(
        "--list-binders", type=int, default=50, help="binders whose lists the members load reads"
    )
    p.add_argument("--only", choices=("members", "flows"), default=None)
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    work = Path(tempfile.mkdtemp(prefix="qq-bench-family-"))
    try:
        results = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    backend = "pg" if args.database_url.startswith(("postgres", "asyncpg")) else "sqlite"
    print(
        f"\n{'scenario':<56} {'req|flows/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8}"
        f" {'CPU µs/req':>11}"
    )
    for name, r in results.items():
        print(
            f"{name:<56} {r['rps']:>12.1f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
            f" {r.get('ratio', 1):>8.1%} {r.get('cpu_us', 0):>11.0f}"
        )
    for name, r in results.items():
        print(
            json.dumps({"name": name, "backend": backend, **{k: round(v, 4) for k, v in r.items()}})
        )


def measure(args: argparse.Namespace, work: Path) -> dict[str, dict[str, float]]:
    data_dir = work / "data"
    data_dir.mkdir()
    (work / "overlay.toml").write_text(OVERLAY)
    env = {
        **os.environ,
        "APP_ENV": "local",
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": args.database_url or f"sqlite://{data_dir}/qinqing.sqlite3",
        "REDIS_URL": args.redis_url,
        "DEMO_DATA": "false",
        "RUN_WORKER": "false",
        "CONFIG_FILE": str(work / "overlay.toml"),
    }
    for var in ("WECHAT_API_BASE", "FACE_API_BASE", "HOST", "PORT"):
        env.pop(var, None)
    csv_path = work / "registry.csv"
    seed_csv(csv_path, args.binders)
    subprocess.run(
        [sys.executable, "-m", "server", "registry", "import", str(csv_path)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    port, bare_port = free_port(), free_port()
    base = f"http://{LOOPBACK}:{port}"
    results: dict[str, dict[str, float]] = {}
    with (
        process(
            [sys.executable, "-m", "server", "--host", LOOPBACK, "--port", str(port)],
            env,
            work / "server.log",
        ) as srv,
        process(
            [sys.executable, "-c", BARE_APP, str(bare_port)], dict(os.environ), work / "bare.log"
        ) as bare,
    ):
        wait_http(f"{base}/readyz", srv)
        wait_http(f"http://{LOOPBACK}:{bare_port}/", bare)
        tag = secrets.token_hex(3)
        cpu0 = cpu_seconds(bare.pid)
        bare_r = wrk(
            f"http://{LOOPBACK}:{bare_port}/",
            duration=args.duration,
            connections=args.connections,
            lua="",
            workdir=work,
        )
        bare_r["cpu_us"] = per_request(cpu_seconds(bare.pid) - cpu0, bare_r)
        results["bare aiohttp JSON (baseline)"] = bare_r
        list_binders = range(args.list_binders)
        if args.only in (None, "members"):
            # not timed: each of these binders gets 5 members through the real flow
            asyncio.run(
                run_flows(
                    base,
                    binders=list_binders,
                    duration=None,
                    connections=args.flow_connections,
                    tag=tag,
                )
            )
            tokens = asyncio.run(login_tokens(base, list_binders, tag + "l"))
            # GET /api/v1/me first: the same users, the floor of any authenticated read
            for path, title in (
                ("/api/v1/me", "GET /api/v1/me (reference, same users)"),
                ("/api/v1/family/members", "GET /api/v1/family/members (5 members, authenticated)"),
            ):
                cpu0 = cpu_seconds(srv.pid)
                r = wrk(
                    base + path,
                    duration=args.duration,
                    connections=args.connections,
                    lua=rotating_bearer(path, tokens),
                    workdir=work,
                )
                if r["errors"]:
                    raise RuntimeError(f"{path} load had {r['errors']} errors")
                r["cpu_us"] = per_request(cpu_seconds(srv.pid) - cpu0, r)
                results[title] = r
        if args.only in (None, "flows"):
            rest = range(args.list_binders, args.binders)
            r = asyncio.run(
                run_flows(
                    base,
                    binders=rest,
                    duration=args.duration,
                    connections=args.flow_connections,
                    tag=tag,
                    server_pid=srv.pid,
                )
            )
            results["bindings/s: create → material → commitment → submit"] = r
    for r in results.values():
        r["ratio"] = r["rps"] / bare_r["rps"]
    return results


if __name__ == "__main__":
    main()
