"""Fixtures: the fake WeChat as a real aiohttp server and a gateway on one ClientSession."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from fakes.wechat import FakeWeChatState, start_fake_wechat
from server.gateways.wechat import WeChatGateway


class FakeClock:
    """A settable clock for the fake's token expiry."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class WeChatEnv:
    base_url: str
    state: FakeWeChatState
    clock: FakeClock
    session: aiohttp.ClientSession
    gateway: WeChatGateway


@pytest.fixture
async def wx() -> AsyncIterator[WeChatEnv]:
    clock = FakeClock()
    runner, base_url, state = await start_fake_wechat(
        "127.0.0.1", 0, FakeWeChatState(clock=clock)
    )
    try:
        async with aiohttp.ClientSession() as session:
            gateway = WeChatGateway(
                session,
                api_base=base_url,
                mp_appid="wxdemo_mp",
                mp_secret="demo-mp-secret",
                oa_appid="wxdemo_oa",
                oa_secret="demo-oa-secret",
                timeout=0.5,
            )
            yield WeChatEnv(base_url, state, clock, session, gateway)
    finally:
        await runner.cleanup()
