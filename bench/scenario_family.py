"""亲情账户 benchmark (issue #3): member list and whole binding flows, vs the bare baseline.

Two harness scenarios (``python -m bench --only family_members,family_flows``):

* ``family_members`` (PostgreSQL): 50 binders, each with 5 members bound through the real
  flow (not timed); wrk GETs /api/v1/family/members with their rotating bearer tokens
  (target ≥ 8 % of bare);
* ``family_flows`` (SQLite): ``python bench/scenario_family.py flows`` as an external
  generator — concurrent clients each doing create → material → commitment → submit for
  fresh (binder, member) pairs; its "req/s" is completed bindings per second (target
  ≥ 100/s), p50/p99 the latency of one whole flow.

Each server gets a seeded registry once (binders + members, valid GB 11643 IDs, loaded with
``python -m server registry import``); the harness's config overlay raises the per-user
family rate limits (bench/services.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import Command, Load, Wrk
from bench.procs import LOOPBACK
from bench.scenario import Scenario
from bench.scenarios import bearer_rotation
from bench.services import Target
from server.domain.identity import make_resident_id

MEMBERS_PER_BINDER = 5
HEADER = "name,id_type,id_number,insurance_type,region_code,has_personal_account,voucher_activated,status,balance_fen"
# A valid 1x1 PNG (what a 户口本 photo upload looks like to the server, minus the size).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c6360"
    "6060000000040001f61738550000000049454e44ae426082"
)
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
    # the privacy notice first, every purpose consented to (face, documents ...)
    notice = await call(s, "GET", f"{base}/api/v1/privacy/notice")
    consent = {
        "version": notice["version"],
        "sha256": notice["sha256"],
        "purposes": [p["id"] for p in notice["purposes"]],
    }
    await call(s, "POST", f"{base}/api/v1/privacy/consents", tokens["access_token"], json=consent)
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
    latencies.sort()
    n = len(latencies)
    return {
        "rps": n / elapsed if elapsed else 0.0,
        "p50_ms": latencies[n // 2] * 1000 if n else 0.0,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        "requests": n,
        "errors": 0,
    }


def _seed(target: Target) -> None:
    """Load ``SEED_BINDERS`` binders and their members into this server's registry, once."""
    if target.base_url in _seeded:
        return
    work = Path(tempfile.mkdtemp(prefix="qq-bench-family-"))
    try:
        csv_path = work / "registry.csv"
        seed_csv(csv_path, SEED_BINDERS)
        subprocess.run([sys.executable, "-m", "server", "registry", "import", str(csv_path)],
                       env={**os.environ, "APP_ENV": "local", **target.env}, cwd=ROOT,
                       check=True, capture_output=True, timeout=600)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _seeded.add(target.base_url)


def members(target: Target, round_no: int) -> Load:
    """50 binders with 5 bound members each (bound once per server, not timed)."""
    _seed(target)
    tag = f"m{round_no}{secrets.token_hex(3)}"
    if target.base_url not in _listed:
        asyncio.run(run_flows(target.base_url, binders=LIST_BINDERS, duration=None,
                              connections=16, tag=tag))
        _listed.add(target.base_url)
    tokens = [target.login(f"fb{i}", tag + "l")["access_token"] for i in LIST_BINDERS]
    return Wrk(path="/api/v1/family/members", lua=bearer_rotation("/api/v1/family/members", tokens))


def flows(target: Target, round_no: int) -> Load:
    """Fresh binders every round: round r binds the members of ``FLOW_BINDERS`` of its own."""
    _seed(target)
    first = LIST_BINDERS.stop + (round_no - 1) * FLOW_BINDERS
    return Command([sys.executable, str(Path(__file__).resolve()), "flows", "--first", str(first),
                    "--binders", str(FLOW_BINDERS), "--tag", f"f{round_no}{secrets.token_hex(3)}"])


def _flows_command(argv: list[str] | None = None) -> int:
    """The external generator: BENCH_URL, BENCH_DURATION, BENCH_CONNECTIONS from the harness."""
    p = argparse.ArgumentParser(prog="scenario_family.py flows")
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--binders", type=int, required=True)
    p.add_argument("--tag", required=True)
    args = p.parse_args(argv)
    base = os.environ["BENCH_URL"]
    if not base.startswith(f"http://{LOOPBACK}:"):
        raise SystemExit(f"refusing a non-loopback target {base}")
    # a browser-like client count: each flow is 4 requests, 16 flows in flight ≈ 64 requests
    connections = max(1, min(int(os.environ.get("BENCH_CONNECTIONS", "32")) // 2, 64))
    r = asyncio.run(run_flows(base, binders=range(args.first, args.first + args.binders),
                              duration=float(os.environ.get("BENCH_DURATION", "5")),
                              connections=connections, tag=args.tag))
    print(json.dumps({"name": "family_flows", **r}))
    return 0


LIST_BINDERS = range(50)
FLOW_BINDERS = 200  # 1,000 (binder, member) pairs a round: > 10 s at 100 bindings/s
SEED_BINDERS = LIST_BINDERS.stop + 9 * FLOW_BINDERS  # --rounds is at most 9
_seeded: set[str] = set()
_listed: set[str] = set()

SCENARIOS = [
    Scenario("family_members", "GET /api/v1/family/members, 5 members (PostgreSQL)", "pg", members),
    Scenario("family_flows", "bindings/s: create → material → commitment → submit (SQLite)",
             "sqlite", flows),
]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "flows":
        sys.exit(_flows_command(sys.argv[2:]))
    sys.exit("usage: python -m bench --only family_members,family_flows")
