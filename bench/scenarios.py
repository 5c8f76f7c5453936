"""The core scenarios: bare, /healthz, login, authenticated GET /api/v1/me (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path

from bench.load import Command, Load, Wrk, lua_string
from bench.scenario import Scenario
from bench.services import Target

TOKEN_USERS = 50  # distinct logged-in users whose tokens the /me load rotates through


def bare(target: Target, round_no: int) -> Load:
    return Wrk(path="/")


def healthz(target: Target, round_no: int) -> Load:
    return Wrk(path="/healthz")


def login(target: Target, round_no: int) -> Load:
    """POST /api/v1/auth/login with a fresh demo code per request (codes work once)."""
    lua = f"""
local n = 0
local hdrs = {{["Content-Type"] = "application/json"}}
request = function()
  n = n + 1
  local body = string.format('{{"code":"demo-bench%d-%s-%d"}}', n % {TOKEN_USERS}, bench_run, n)
  return wrk.format("POST", "/api/v1/auth/login", hdrs, body)
end
"""
    return Wrk(path="/api/v1/auth/login", method="POST", lua=lua)


def bearer_rotation(path: str, tokens: list[str]) -> str:
    """Lua for wrk: GET ``path`` with ``Authorization: Bearer`` cycling through ``tokens``."""
    table = ",\n".join(lua_string("Bearer " + t) for t in tokens)
    return f"""
local auths = {{
{table}
}}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", {lua_string(path)}, {{["Authorization"] = auths[(n % #auths) + 1]}})
end
"""


def login_users(target: Target, round_no: int, count: int = TOKEN_USERS) -> list[str]:
    """Fresh access tokens of ``count`` demo users (one login each, not timed)."""
    tag = secrets.token_hex(4)
    return [target.login(f"bench{i}", f"{tag}-r{round_no}")["access_token"] for i in range(count)]


def me(target: Target, round_no: int) -> Load:
    tokens = login_users(target, round_no)
    return Wrk(path="/api/v1/me", lua=bearer_rotation("/api/v1/me", tokens))


_settlement_seeds: dict[int, Path] = {}


def settlements(target: Target, round_no: int) -> Load:
    """Signed 2207 settlements with 共济 splits: bench/scenario_settlements.py's own generator
    (``load`` mode, an aiohttp client in its own process) on families it seeds once per server."""
    seed_file = _settlement_seeds.get(target.port)
    if seed_file is None:
        from bench import scenario_settlements

        data = asyncio.run(
            scenario_settlements.seed(target.env["DATABASE_URL"], 200, 2, secrets.token_hex(3))
        )
        seed_file = target.log.parent / f"settlements-seed-{target.port}.json"
        seed_file.write_text(json.dumps(data))
        _settlement_seeds[target.port] = seed_file
    return Command([sys.executable, "-m", "bench.scenario_settlements", "load"],
                   env={"BENCH_SETTLEMENT_SEED": str(seed_file)})


SCENARIOS = [
    Scenario("bare", "bare aiohttp JSON (baseline vs itself)", "bare", bare),
    Scenario("healthz", "GET /healthz", "pg", healthz),
    Scenario("login", "POST /api/v1/auth/login (PostgreSQL)", "pg", login),
    Scenario("me_sqlite", "GET /api/v1/me, authenticated (SQLite)", "sqlite", me),
    Scenario("me_pg", "GET /api/v1/me, authenticated (PostgreSQL)", "pg", me),
    Scenario("settlements", "POST /api/v1/institution/settlements, signed, 共济 split (PostgreSQL)",
             "pg", settlements),
]
