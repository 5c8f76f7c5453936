"""Redis stopped, and Redis hung, under the bot and the API (issue #15, "Faults injected").

Our server runs as a child process on a Redis of the test's own; WeChat's side is played
by the simulator (signed and encrypted pushes, safe and compatible mode, to /wechat/official).

Pass rule, for Redis shut down (connections refused) and for Redis frozen (SIGSTOP: the
connections stay open and nothing answers — the worse case for a 5-second budget):
* the bot answers every push with a passive reply saying "系统繁忙" (read after decryption) within WeChat's 5 s — measured from the request's start;
* the API answers 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After`` within 5 s, never a 500;
* once Redis is back, without touching the server, the bot answers the question itself
  and logins succeed again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
from wechatpy import parse_message

from fakes.wechat.simulator import Mode, WeChatSimulator, text_xml
from tests.reliability.servers import (
    PrivateRedis,
    private_redis,
    server_alive,
    server_process,
    wait_ready,
)

WECHAT_BUDGET = 5.0  # WeChat gives up on a passive reply after 5 s
# config/default.toml [wechat] demo values: the account WeChat pushes for
SIM = WeChatSimulator(
    token="demo-oa-token",
    appid="wxdemo_oa",
    encoding_aes_key="iqS4l4jViU4PAsuSeCBLJCWxCOFcg94dZb8HB7LkskE",
)
# a 503 comes quickly, not after every retry of every command (redis-py's defaults: 15 s)
API_BOUND = 5.0
_codes = itertools.count()
# the server runs on the default config: safe mode only ([bot] allow_plain_mode = false)
MODES: tuple[Mode, ...] = ("safe", "compat")


async def _ask(s: aiohttp.ClientSession, base: str, text: str, mode: Mode) -> tuple[str, float]:
    """The reply's text to a typed question, and how long the answer took."""
    push = SIM.push(text_xml(text, openid=f"oa-fault{next(_codes)}"), mode)
    started = time.monotonic()
    async with s.post(f"{base}/wechat/official", params=push.query, data=push.body) as r:
        body = await r.text()
        elapsed = time.monotonic() - started
        assert r.status == 200, (r.status, body)
    assert body not in ("", "success"), "no reply"
    if mode != "plain":
        body = SIM.open_reply(body, push)
    return str(parse_message(body).content), elapsed


async def _login(s: aiohttp.ClientSession, base: str) -> int:
    async with s.post(f"{base}/api/v1/auth/login", json={"code": f"demo-rf{next(_codes)}-x"}) as r:
        body = await r.json()
        assert r.status in (200, 503), (r.status, body)
        if r.status == 503:
            assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert int(r.headers["Retry-After"]) >= 1
        return r.status


async def _recovers(check: Callable[[], object], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not await check():  # type: ignore[misc]
        if time.monotonic() > deadline:
            raise AssertionError("did not recover by itself")
        await asyncio.sleep(0.1)


def _freeze(redis: PrivateRedis) -> Callable[[], None]:
    pid = int((redis.workdir / "redis.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    return lambda: os.kill(pid, signal.SIGCONT)


async def test_redis_down_or_hung_bot_says_busy_in_time_api_503_then_recovers(
    tmp_path: Path,
) -> None:
    with private_redis() as redis:
        env = {"REDIS_URL": redis.url, "DEMO_DATA": "true"}
        with server_process(env, tmp_path) as base:
            timeout = aiohttp.ClientTimeout(total=WECHAT_BUDGET + 10)
            async with aiohttp.ClientSession(timeout=timeout) as s:
                await wait_ready(s, base)
                normal, _ = await _ask(s, base, "怎么解绑", "safe")
                assert "系统繁忙" not in normal
                assert await _login(s, base) == 200

                async def back() -> bool:
                    texts = [await _ask(s, base, "怎么解绑", m) for m in MODES]
                    return all("系统繁忙" not in t for t, _ in texts) and await _login(s, base) == 200

                for outage in ("shutdown", "frozen"):
                    if outage == "shutdown":
                        redis.stop()
                        resume = redis.start
                    else:
                        resume = _freeze(redis)
                    try:
                        for mode in MODES:
                            text, elapsed = await _ask(s, base, "怎么解绑", mode)
                            assert "系统繁忙" in text, (outage, mode, text)
                            assert elapsed < WECHAT_BUDGET, (outage, mode, elapsed)
                        started = time.monotonic()
                        assert await _login(s, base) == 503
                        assert time.monotonic() - started < API_BOUND, outage
                    finally:
                        resume()
                    await _recovers(back)
                server_alive(base)
