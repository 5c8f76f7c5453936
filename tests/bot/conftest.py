"""Bot fixtures: WeChat's side of the webhook (signing, encryption) against the real app."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application
from wechatpy import parse_message
from wechatpy.messages import BaseMessage

from bot.service import BotService
from fakes.wechat.simulator import Mode, Push, WeChatSimulator
from server import keys
from server.settings import Settings

PATH = "/wechat/official"


@pytest.fixture
def sim(settings: Settings) -> WeChatSimulator:
    return WeChatSimulator(
        token=settings.wechat.oa_token,
        appid=settings.wechat.oa_appid,
        encoding_aes_key=settings.wechat.oa_encoding_aes_key,
    )


@pytest.fixture
def bot(app: Application) -> BotService:
    return app[keys.bot_key]


class Wx:
    """Sends pushes like WeChat and reads the passive reply."""

    def __init__(self, client: TestClient, sim: WeChatSimulator) -> None:
        self.client = client
        self.sim = sim

    async def send(self, xml: str, mode: Mode = "plain", **kw: Any) -> tuple[int, str, Push]:
        push = self.sim.push(xml, mode, **kw)
        resp = await self.client.post(PATH, params=push.query, data=push.body)
        return resp.status, await resp.text(), push

    async def reply(self, xml: str, mode: Mode = "plain", **kw: Any) -> BaseMessage | None:
        """The parsed reply message (None when WeChat would show nothing)."""
        status, body, push = await self.send(xml, mode, **kw)
        assert status == 200, (status, body)
        if body in ("", "success"):
            return None
        if mode != "plain":
            assert "<Encrypt>" in body and "<Content>" not in body
            body = self.sim.open_reply(body, push)
        return parse_message(body)

    async def say(self, text: str, openid: str = "oa-alice", mode: Mode = "plain") -> str:
        from fakes.wechat.simulator import text_xml

        message = await self.reply(text_xml(text, openid=openid), mode)
        assert message is not None, "no reply"
        return str(message.content)


@pytest.fixture
def wx(client: TestClient, sim: WeChatSimulator) -> Wx:
    return Wx(client, sim)
