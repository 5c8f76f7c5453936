"""Issue #17 finding 4: a captured plain-mode signature cannot carry another body, safe
mode means safe mode only, production needs safe mode or an explicit opt-in, and forged
followers cannot make unbounded user/info calls or follower rows."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

import pytest
from aiohttp.test_utils import TestClient

from bot.followers import FollowerBudget
from bot.service import BotService
from fakes.wechat import FakeWeChatState
from fakes.wechat.simulator import WeChatSimulator, event_xml, text_xml
from server import keys
from server.app import create_app
from server.domain.models import OfficialFollower
from server.settings import Settings
from tests.bot.conftest import PATH, Wx
from tests.conftest import serving
from tests.factories import production_env

QUESTION = "亲情账户花的是谁的钱"


async def test_a_signed_nonce_carries_only_its_first_body(
    client: TestClient, sim: WeChatSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    first = sim.push(text_xml(QUESTION, openid="oa-mallory"))
    resp = await client.post(PATH, params=first.query, data=first.body)
    answered = await resp.text()
    assert resp.status == 200 and "<Content>" in answered

    # the same signature / timestamp / nonce with another follower's message
    forged = text_xml("我给我妈绑定亲情账户一直失败怎么办", openid="oa-alice")
    caplog.set_level(logging.INFO, logger="bot.webhook")
    resp = await client.post(PATH, params=first.query, data=forged.encode())
    assert resp.status == 403
    assert await resp.text() == ""
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals == ["official-account POST refused: nonce reused with another body"]
    assert "oa-alice" not in caplog.text

    # WeChat's retry (same nonce, same body) is still answered, with the same reply
    resp = await client.post(PATH, params=first.query, data=first.body)
    assert resp.status == 200 and await resp.text() == answered


async def test_with_a_key_only_encrypted_pushes_are_taken(
    make_settings: Callable[..., Settings], sim: WeChatSimulator
) -> None:
    settings = make_settings(**{"bot.allow_plain_mode": False})
    assert settings.wechat.oa_encoding_aes_key
    async with serving(create_app(settings)) as client:
        wx = Wx(client, sim)
        status, body, _ = await wx.send(text_xml(QUESTION, openid="oa-bob"), "plain")
        assert (status, body) == (403, "")
        for mode in ("safe", "compat"):
            reply = await wx.reply(text_xml(QUESTION, openid="oa-bob"), mode)  # type: ignore[arg-type]
            assert reply is not None and "自己的医保" in reply.content, mode
    # without a key plain mode is the only mode there is
    plain_only = make_settings(
        **{"bot.allow_plain_mode": False, "wechat.oa_encoding_aes_key": ""}
    )
    async with serving(create_app(plain_only)) as client:
        status, body, _ = await Wx(client, sim).send(text_xml(QUESTION, openid="oa-bob"))
        assert status == 200 and "<Content>" in body


def test_production_refuses_plain_mode_unless_allowed() -> None:
    env = production_env()
    real = {"institution.demo_secret": ""}
    assert Settings.load(env=env, overrides=real).is_production  # safe mode: starts
    plain = {**real, "wechat.oa_encoding_aes_key": ""}
    with pytest.raises(ValueError, match="plain mode"):
        Settings.load(env=env, overrides=plain)
    assert Settings.load(env=env, overrides={**plain, "bot.allow_plain_mode": "true"})


async def test_forged_followers_spend_a_global_budget(
    make_settings: Callable[..., Settings], sim: WeChatSimulator, wechat_state: FakeWeChatState
) -> None:
    limits = {
        "bot.user_info_per_minute": 3, "bot.user_info_per_hour": 3,
        "bot.new_followers_per_minute": 4, "bot.new_followers_per_hour": 4,
    }
    async with serving(create_app(make_settings(**limits))) as client:
        bot: BotService = client.server.app[keys.bot_key]
        wx = Wx(client, sim)
        for n in range(12):
            welcome = await wx.reply(event_xml("subscribe", openid=f"oa-forged-{n}"))
            assert welcome is not None and "欢迎" in welcome.content  # still answered
        await bot.drain()
        assert wechat_state.calls["/cgi-bin/user/info"] == 3
        assert await OfficialFollower.all().count() == 4
        # a known follower is still updated when the budget is spent
        known = await OfficialFollower.first()
        assert known is not None
        await wx.reply(event_xml("unsubscribe", openid=known.oa_openid))
        await bot.drain()
        row = await OfficialFollower.get(oa_openid=known.oa_openid)
        assert row.subscribed is False
        assert await OfficialFollower.all().count() == 4


async def test_a_spent_budget_does_not_cost_a_follower_the_days_look_up(
    make_settings: Callable[..., Settings], sim: WeChatSimulator, wechat_state: FakeWeChatState
) -> None:
    """A follower we never heard subscribe is looked up once a day, when asking why a
    binding failed; when the global look-up budget is spent, that day's look-up is not
    used up: a later question (once the budget is back) makes it."""
    limits = {"bot.user_info_per_minute": 1, "bot.user_info_per_hour": 100}
    async with serving(create_app(make_settings(**limits))) as client:
        bot: BotService = client.server.app[keys.bot_key]
        wx = Wx(client, sim)
        await wx.reply(text_xml("为什么绑定不了?", openid="oa-first"))
        await bot.drain()
        assert wechat_state.calls["/cgi-bin/user/info"] == 1  # the minute's one look-up
        await wx.reply(text_xml("为什么绑定不了?", openid="oa-second"))
        await bot.drain()
        assert wechat_state.calls["/cgi-bin/user/info"] == 1  # spent: skipped
        bot.budget = FollowerBudget(bot.redis, dataclasses.replace(bot.config, user_info_per_minute=10))
        await wx.reply(text_xml("绑定失败了怎么办", openid="oa-second"))
        await bot.drain()
        assert wechat_state.calls["/cgi-bin/user/info"] == 2  # not a day later
        await wx.reply(text_xml("绑定失败了怎么办", openid="oa-second"))
        await bot.drain()
        assert wechat_state.calls["/cgi-bin/user/info"] == 2  # and then once a day
