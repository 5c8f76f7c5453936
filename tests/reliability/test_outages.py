"""A dependency down is 503 with Retry-After, never 500; everything recovers by itself
(issue #17 finding 5). Our server runs as a child process against its own Redis and
PostgreSQL, which the test stops and starts."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import aiohttp

from tests.reliability.servers import private_postgres, private_redis, server_process, wait_ready

_codes = itertools.count()


async def _login(s: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, str]]:
    code = f"demo-outage{next(_codes)}-x"
    async with s.post(f"{base}/api/v1/auth/login", json={"code": code}) as r:
        body = await r.json()
        if r.status == 200:
            return 200, {"Authorization": f"Bearer {body['access_token']}"}
        assert body["error"]["code"], body
        if r.status == 503:
            assert int(r.headers["Retry-After"]) >= 1
            assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
        return r.status, {}


async def _statuses(s: aiohttp.ClientSession, base: str, h: dict[str, str]) -> list[int]:
    out = []
    async with s.get(f"{base}/api/v1/me", headers=h) as r:
        out.append(r.status)
    body = {"name": "李秀英", "id_type": "resident_id", "id_number": "420102195806122242",
            "relationship": "parent"}  # fmt: skip
    async with s.post(f"{base}/api/v1/family/precheck", json=body, headers=h) as r:
        out.append(r.status)
    return out


async def _until(pred_coro, seconds: float = 20) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds * 10)):
        if await pred_coro():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("did not recover")


async def test_redis_and_postgres_outages_answer_503_and_recover(tmp_path: Path) -> None:
    with private_redis() as redis, private_postgres() as pg:
        env = {"REDIS_URL": redis.url, "DATABASE_URL": pg.url, "DEMO_DATA": "true"}
        with server_process(env, tmp_path) as base:
            async with aiohttp.ClientSession() as s:
                await wait_ready(s, base)
                status, h = await _login(s, base)
                assert status == 200
                assert await _statuses(s, base, h) == [200, 200]

                # Redis stopped: login answers 503, nothing is a 500
                redis.stop()
                assert (await _login(s, base))[0] == 503
                assert 500 not in await _statuses(s, base, h)
                # Redis back on the same port: the pooled connections that died are
                # re-made transparently — 40 parallel requests, every one served
                redis.start()

                async def all_ok() -> bool:
                    got = await asyncio.gather(*(_login(s, base) for _ in range(40)))
                    assert 500 not in [st for st, _ in got]
                    return all(st == 200 for st, _ in got)

                await _until(all_ok)

                # PostgreSQL stopped: 503 with Retry-After, never 500
                pg.stop()
                assert (await _login(s, base))[0] == 503
                got = await _statuses(s, base, h)
                assert 500 not in got and 503 in got, got
                pg.start()

                async def served() -> bool:
                    st = await _statuses(s, base, h)
                    assert 500 not in st, st
                    return st == [200, 200]

                await _until(served)
                assert (await _login(s, base))[0] == 200
