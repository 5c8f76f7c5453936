"""Bot fixtures: WeChat's side of the webhook (signing, encryption) against the real app."""

from __future__ import annotations

import itertools
import time
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
_voice_ids = itertools.count(int(time.time()) % 10**9 * 1000)


def voice_xml(
    recognition: str | None,
    *,
    openid: str,
    to: str = "gh_demo",
    msg_id: int | None = None,
    id_tag: str = "MsgId",
    media_id: str | None = None,
) -> str:
    """A voice message as WeChat pushes it when the account has speech recognition on
    (``Recognition``, UTF-8); ``recognition=None``: recognition off (no element).
    ``id_tag``: WeChat's documentation writes both ``MsgId`` and ``MsgID``."""
    n = msg_id if msg_id is not None else next(_voice_ids)
    parts = [
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName>",
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>",
        f"<CreateTime>{int(time.time())}</CreateTime>",
        "<MsgType><![CDATA[voice]]></MsgType>",
        f"<MediaId><![CDATA[{media_id or f'media-{n}'}]]></MediaId>",
        "<Format><![CDATA[amr]]></Format>",
    ]
    if recognition is not None:
        parts.append(f"<Recognition><![CDATA[{recognition}]]></Recognition>")
    if id_tag:
        parts.append(f"<{id_tag}>{n}</{id_tag}>")
    parts.append("</xml>")
    return "".join(parts)


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

    async def speak(
        self, recognition: str | None, openid: str = "oa-alice", mode: Mode = "plain", **kw: Any
    ) -> str:
        """A voice message; the reply's text."""
        message = await self.reply(voice_xml(recognition, openid=openid, **kw), mode)
        assert message is not None, "no reply"
        return str(message.content)

    async def say(self, text: str, openid: str = "oa-alice", mode: Mode = "plain") -> str:
        from fakes.wechat.simulator import text_xml

        message = await self.reply(text_xml(text, openid=openid), mode)
        assert message is not None, "no reply"
        return str(message.content)


@pytest.fixture
def wx(client: TestClient, sim: WeChatSimulator) -> Wx:
    return Wx(client, sim)
