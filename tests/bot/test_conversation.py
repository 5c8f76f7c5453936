"""What followers are told: personal diagnosis, guided troubleshooting, privacy, flooding."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp.web import Application

from bot.service import BotService
from fakes.wechat import FakeWeChatState
from fakes.wechat.simulator import event_xml
from server import keys
from server.domain.models import Application as BindingApplication
from server.domain.models import OfficialFollower, User
from tests.bot.conftest import Wx

ASK = "我给我妈绑定亲情账户一直失败怎么办"


async def _failed_application(
    app: Application,
    *,
    user: str = "alice",
    member: str = "张三华",
    state: str = "failed",
    code: str | None = "MONTHLY_BINDER_LIMIT",
    submitted: datetime | None = None,
) -> BindingApplication:
    """A binder (mini-program user, unionid ``union-<user>``) and an application of theirs."""
    pii = app[keys.pii_key]
    binder, _ = await User.get_or_create(
        openid=f"demo-{user}", defaults={"unionid": f"union-{user}"}
    )
    submitted = submitted or datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)
    row = await BindingApplication.create(
        binder=binder,
        member_name_enc=pii.encrypt(member, purpose="name"),
        member_name_hash=pii.blind_index(member, purpose="name"),
        id_type="resident_id",
        id_number_enc=pii.encrypt("110101195001011234", purpose="id_number"),
        id_hash=pii.blind_index("110101195001011234", purpose="id_number"),
        relationship="parent",
        reason="为了方便家人代办医保业务",
        state=state,
        failure_code=code,
        submitted_at=submitted,
    )
    return row


async def test_a_follower_with_a_failed_binding_hears_its_real_reason(
    wx: Wx, app: Application
) -> None:
    await OfficialFollower.create(oa_openid="oa-alice", unionid="union-alice")
    await _failed_application(app)
    answer = await wx.say(ASK, "oa-alice")
    assert "11月20日" in answer and "张*华" in answer
    assert "该家人本月已被2人绑定" in answer
    assert "张三华" not in answer and "110101" not in answer


async def test_unionid_learnt_on_subscribe_links_follower_and_user(
    wx: Wx, app: Application, bot: BotService
) -> None:
    """End to end: subscribe → user/info in the background → the next question is personal."""
    await _failed_application(app, user="nina", member="李四", code="INFO_MISMATCH")
    await wx.reply(event_xml("subscribe", openid="oa-nina"))
    await bot.drain()
    answer = await wx.say("为什么绑定不了", "oa-nina")
    assert "李*" in answer and "信息不一致" in answer


async def test_a_pending_review_is_reported_as_such(wx: Wx, app: Application) -> None:
    await OfficialFollower.create(oa_openid="oa-olga", unionid="union-olga")
    await _failed_application(app, user="olga", state="pending_review", code=None)
    answer = await wx.say("亲情账户绑定不上是什么原因", "oa-olga")
    assert "人工审核" in answer and "张*华" in answer


async def test_old_or_unknown_attempts_lead_to_guided_troubleshooting(
    wx: Wx, app: Application, bot: BotService, wechat_state: FakeWeChatState
) -> None:
    await OfficialFollower.create(oa_openid="oa-pete", unionid="union-pete")
    row = await _failed_application(app, user="pete")
    # Older than diagnosis_days: not "recent".
    await BindingApplication.filter(id=row.id).update(
        updated_at=datetime.now(timezone.utc) - timedelta(days=40)
    )
    assert "页面提示的是哪一类" in await wx.say(ASK, "oa-pete")
    # A follower we know nothing about: the dialogue, and user/info in the background.
    assert "页面提示的是哪一类" in await wx.say(ASK, "oa-quinn")
    await bot.drain()
    assert wechat_state.calls["/cgi-bin/user/info"] == 1
    assert (await OfficialFollower.get(oa_openid="oa-quinn")).unionid == "union-quinn"


async def test_guided_troubleshooting_walks_to_a_fix(wx: Wx, bot: BotService, app: Any) -> None:
    assert "页面提示的是哪一类" in await wx.say(ASK, "oa-rose")
    assert "要绑定的家人是您的" in await wx.say("6", "oa-rose")
    assert "孩子多大" in await wx.say("2", "oa-rose")
    assert "实名认证" in await wx.say("2", "oa-rose")
    assert "请回复 1-2" in await wx.say("9", "oa-rose")
    ttl = await app[keys.redis_key].ttl(bot.dialogue.key("oa-rose"))
    assert 0 < ttl <= bot.config.dialogue_ttl_seconds
    assert "正常参保" in await wx.say("1", "oa-rose")
    assert "逐字核对" in await wx.say("１", "oa-rose")  # full-width digit
    result = await wx.say("1", "oa-rose")
    assert result.startswith("排查结果:系统繁忙")
    assert await bot.dialogue.active("oa-rose") is None


async def test_the_dialogue_can_be_left_at_any_time(wx: Wx, bot: BotService) -> None:
    await wx.say(ASK, "oa-sam")
    assert "已结束排查" in await wx.say("退出", "oa-sam")
    assert await bot.dialogue.active("oa-sam") is None
    await wx.say(ASK, "oa-sam")
    # A new question leaves the dialogue and is answered as such.
    answer = await wx.say("亲情账户和家庭共济有什么区别", "oa-sam")
    assert "共济" in answer and "排查" not in answer
    assert await bot.dialogue.active("oa-sam") is None


async def test_topics_menu_and_fallback(wx: Wx) -> None:
    menu = await wx.say("菜单", "oa-tina")
    assert "1. 绑定失败的常见原因" in menu
    assert "手机" in await wx.say("6", "oa-tina")  # topic 6: 家人没有智能手机怎么办
    fallback = await wx.say("今天天气怎么样", "oa-tina")
    assert "没太明白" in fallback and "1. 绑定失败的常见原因" in fallback


async def test_an_id_number_is_never_echoed_or_logged(
    wx: Wx, caplog: pytest.LogCaptureFixture
) -> None:
    id_number = "11010119900307123X"
    with caplog.at_level(logging.DEBUG):
        answer = await wx.say(f"我妈身份证{id_number}绑定失败怎么办", "oa-uma")
        safe_answer = await wx.say(f"帮我查下{id_number}", "oa-uma", mode="safe")
    for text in (answer, safe_answer):
        assert "隐私" in text
        assert id_number not in text and "19900307" not in text
    assert id_number not in caplog.text


async def test_a_flooding_follower_is_warned_once_then_ignored(
    wx: Wx, bot: BotService
) -> None:
    limit = bot.config.rate_limit_per_minute
    for _ in range(limit):
        await wx.say("你好", "oa-vic")
    assert "太频繁" in await wx.say("你好", "oa-vic")
    from fakes.wechat.simulator import text_xml

    assert await wx.reply(text_xml("你好", openid="oa-vic")) is None
    # Others are not affected.
    assert "太频繁" not in await wx.say("你好", "oa-walt")


async def test_a_link_found_later_is_used_after_the_short_unlinked_wait(
    wx: Wx, app: Application, bot: BotService
) -> None:
    """The follower → user link is cached per process; "not linked" only briefly, and the
    applications themselves are always read fresh."""
    now = [1000.0]
    bot.links._clock = lambda: now[0]
    await OfficialFollower.create(oa_openid="oa-olga", unionid="union-olga")
    first = await wx.say(ASK, "oa-olga")
    assert "排查" in first  # no user yet: the guided questions
    # the mini-program user appears (another process): this one has "not linked" cached
    row = await _failed_application(app, user="olga", member="王小红", code="INFO_MISMATCH")
    assert "王*红" not in await wx.say(ASK, "oa-olga")
    now[0] += bot.links.unlinked_ttl + 0.1
    linked = await wx.say(ASK, "oa-olga")
    assert "王*红" in linked and "11月20日" in linked
    # the link is kept, the application is not: a decision shows at once
    row.state = "effective"
    await row.save()
    assert "王*红" not in await wx.say(ASK, "oa-olga")
    assert bot.links.get("oa-olga") is not None
