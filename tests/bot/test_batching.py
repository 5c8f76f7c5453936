"""RedisBatcher: concurrent requests' commands share a round trip, each gets its own reply.

Runs on the app's Redis: the embedded store, or the real server when TEST_REDIS_URL is set.
On a Redis Cluster the batch goes through redis-py's cluster pipeline, which parses replies
as redis-py does (SET → True); the bot reads only GET and EVAL replies, the same either way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.web import Application
from redis.exceptions import NoScriptError, ResponseError

from bot.batching import RedisBatcher
from server import keys
from server.redis_client import is_cluster
from tests.conftest import REDIS_URL


@pytest.fixture
def redis(app: Application) -> Any:
    return app[keys.redis_key]


def ok(redis: Any) -> object:
    """SET's reply as the batcher hands it on (see above)."""
    return True if is_cluster(redis) else b"OK"


async def test_concurrent_commands_each_get_their_own_reply(redis: Any) -> None:
    batcher = RedisBatcher(redis)
    try:
        sets = [batcher.submit("SET", f"bt:{i}", f"v{i}", "EX", 60) for i in range(50)]
        gets = [batcher.run("GET", f"bt:{i}") for i in range(50)]
        assert await asyncio.gather(*sets) == [ok(redis)] * 50
        # submitted after the SETs, so never overtaking them
        assert await asyncio.gather(*gets) == [f"v{i}".encode() for i in range(50)]
        assert await batcher.run("INCR", "bt:n") == 1
        assert await batcher.run("EVAL", "return {1, ARGV[1], ''}", 0, "x") == [1, b"x", b""]
    finally:
        await batcher.close()


async def test_an_error_reply_fails_only_its_own_command(redis: Any) -> None:
    batcher = RedisBatcher(redis)
    try:
        await redis.set("bt:str", "text")
        before = batcher.submit("SET", "bt:a", "1")
        script = batcher.submit("EVALSHA", "0" * 40, 0)
        wrong = batcher.submit("LPUSH", "bt:str", "x")  # WRONGTYPE
        after = batcher.submit("GET", "bt:a")
        results = await asyncio.gather(before, script, wrong, after, return_exceptions=True)
        assert results[0] == ok(redis)
        assert isinstance(results[1], NoScriptError)
        assert isinstance(results[2], ResponseError) and "WRONGTYPE" in str(results[2])
        assert results[3] == b"1"
        # the connection went back to the pool in a clean state
        assert await batcher.run("GET", "bt:a") == b"1"
    finally:
        await batcher.close()


@pytest.mark.skipif(not REDIS_URL, reason="needs a real Redis server (TEST_REDIS_URL)")
async def test_a_stalled_round_trip_times_out_and_the_next_batch_works(redis: Any) -> None:
    batcher = RedisBatcher(redis, timeout=0.3)
    try:
        # a server-side script busy for 0.8 s stalls the whole batch past its deadline
        stall = (
            "local function now() local t = redis.call('TIME') "
            "return tonumber(t[1]) * 1000000 + tonumber(t[2]) end "
            "local stop = now() + 800000 while now() < stop do end return 1"
        )
        slow = batcher.submit("EVAL", stall, 0)
        other = batcher.submit("SET", "bt:late", "1")
        results = await asyncio.gather(slow, other, return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in results), results
        await asyncio.sleep(1.0)  # the script finishes; the half-read connection was dropped
        assert await batcher.run("SET", "bt:after", "2") == ok(redis)
        assert await batcher.run("GET", "bt:after") == b"2"
    finally:
        await batcher.close()


async def test_close_cancels_queued_commands(redis: Any) -> None:
    batcher = RedisBatcher(redis)
    pending = batcher.submit("GET", "bt:x")
    await batcher.close()
    assert pending.cancelled()
