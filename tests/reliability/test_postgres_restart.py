"""PostgreSQL restarted in the middle of a settlement load (issue #15, "Faults injected").

Our server runs as a child process on a PostgreSQL and a Redis of the test's own; eight
clients send signed 2207 settlements (each a new ``setl_id``, 0.01 yuan from the
member's own account) while the test stops PostgreSQL and starts it again.

Pass rule:
* every answer is 201 (settled) or 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After`` —
  never a 500, never a dropped connection — and there were 503s while it was down;
* the same server process serves settlements again once PostgreSQL is back (no restart);
* every acknowledged settlement is in the database exactly once, and the refused ones,
  sent again after the restart, are applied once (201) or found already applied (200);
* nothing is half-applied: each settlement's ledger entries add up to what it took from
  the accounts, and each account's balance is the sum of its ledger.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from tests.factories import signed_headers
from tests.reliability.servers import (
    private_postgres,
    private_redis,
    server_alive,
    server_errors,
    server_process,
    wait_ready,
)

INSTITUTION = ("H00001", "demo-institution-secret")  # the demo hospital (config/default.toml)
MEMBERS = ("420102199003071232", "420103199208152622")  # 张伟, 王芳: demo registry, with balances
CLIENTS = 8


def _body(n: int) -> bytes:
    payload = {
        "setl_id": f"PGR-{n:05d}",
        "mdtrt_id": f"MD-PGR-{n:05d}",
        "med_type": "11",
        "certno": MEMBERS[n % len(MEMBERS)],
        "setl_time": "2026-11-20T10:30:00+08:00",
        "medfee_sumamt": "1.01",
        "hifp_pay": "1.00",
        "fund_pay_sumamt": "1.00",
        "psn_part_amt": "0.01",
    }
    return json.dumps(payload).encode()


async def _settle(s: aiohttp.ClientSession, base: str, n: int) -> int:
    body = _body(n)
    headers = signed_headers(*INSTITUTION, body)
    async with s.post(f"{base}/api/v1/institution/settlements", data=body, headers=headers) as r:
        payload = await r.json()
        if r.status == 503:
            assert payload["error"]["code"] == "SERVICE_UNAVAILABLE", payload
            assert int(r.headers["Retry-After"]) >= 1
        elif r.status not in (200, 201):
            raise AssertionError(f"settlement {n}: {r.status} {payload}")
        return r.status


class Load:
    """CLIENTS loops sending settlements until stopped; every answer recorded."""

    def __init__(self, s: aiohttp.ClientSession, base: str) -> None:
        self.s, self.base = s, base
        self.next = 0
        self.answers: dict[int, int] = {}
        self.down = False
        self.while_down: list[int] = []
        self.acked_after_restart = 0
        self.restarted = False
        self.stop = asyncio.Event()

    async def client(self) -> None:
        deadline = time.monotonic() + 45  # bounded whatever happens
        while not self.stop.is_set() and time.monotonic() < deadline:
            n = self.next
            self.next += 1
            status = await _settle(self.s, self.base, n)
            self.answers[n] = status
            if self.down:
                self.while_down.append(status)
            elif self.restarted and status == 201:
                self.acked_after_restart += 1
            if status == 503:
                await asyncio.sleep(0.05)  # a client honouring a (shortened) Retry-After

    def acked(self) -> int:
        return sum(1 for st in self.answers.values() if st == 201)


async def _until(pred: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_postgres_restart_mid_settlement_load(tmp_path: Path) -> None:
    with private_redis() as redis, private_postgres() as pg:
        env = {"REDIS_URL": redis.url, "DATABASE_URL": pg.url, "DEMO_DATA": "true"}
        with server_process(env, tmp_path) as base:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s:
                await wait_ready(s, base)
                load = Load(s, base)
                clients = [asyncio.create_task(load.client()) for _ in range(CLIENTS)]
                try:
                    await _until(lambda: load.acked() >= 40, "40 settlements before the restart")
                    load.down = True
                    await asyncio.to_thread(pg.stop, "fast")  # in-flight transactions cut
                    await _until(lambda: len(load.while_down) >= 10, "answers while it is down")
                    await asyncio.to_thread(pg.start)
                    load.down, load.restarted = False, True
                    await _until(lambda: load.acked_after_restart >= 40, "settlements after it")
                finally:
                    load.stop.set()
                    done = await asyncio.gather(*clients, return_exceptions=True)
                failed = [e for e in done if isinstance(e, BaseException)]
                assert not failed, f"{failed[0]}\n--- server log ---\n{server_errors(base)}"

                assert 503 in load.while_down, load.while_down
                assert set(load.answers.values()) <= {201, 503}
                # the refused ones, sent again (new nonce, same body): applied exactly once
                refused = sorted(n for n, st in load.answers.items() if st == 503)
                again = [await _settle(s, base, n) for n in refused]
                assert set(again) <= {200, 201}, again
                server_alive(base)  # the same process: recovered without a restart

        sent = {f"PGR-{n:05d}" for n in load.answers}
        conn = await asyncpg.connect(pg.url)
        try:
            rows = await conn.fetch("SELECT setl_id, count(*) AS c FROM settlements GROUP BY setl_id")
            stored = {r["setl_id"]: r["c"] for r in rows}
            assert stored.keys() == sent and set(stored.values()) == {1}
            # each settlement's ledger entries are exactly what it took from the accounts
            half = await conn.fetch(
                """
                SELECT s.setl_id, s.acct_pay_fen + s.acct_mulaid_pay_fen AS took,
                       coalesce(-sum(e.amount_fen), 0) AS entries
                FROM settlements s LEFT JOIN ledger_entries e ON e.settlement_id = s.id
                GROUP BY s.id HAVING s.acct_pay_fen + s.acct_mulaid_pay_fen
                                     <> coalesce(-sum(e.amount_fen), 0) OR count(e.id) = 0
                """
            )
            assert half == [], half
            orphans = await conn.fetchval(
                "SELECT count(*) FROM ledger_entries WHERE kind = 'settlement' AND settlement_id IS NULL"
            )
            assert orphans == 0
            # every balance is its ledger's sum
            drift = await conn.fetch(
                """
                SELECT a.id, a.balance_fen, sum(e.amount_fen) AS ledger
                FROM accounts a JOIN ledger_entries e ON e.account_id = a.id
                GROUP BY a.id HAVING a.balance_fen <> sum(e.amount_fen)
                """
            )
            assert drift == [], drift
            spent = await conn.fetchval(
                "SELECT -sum(amount_fen) FROM ledger_entries WHERE kind = 'settlement'"
            )
            assert spent == len(sent)  # 1 分 each, every settlement once
        finally:
            await conn.close()
