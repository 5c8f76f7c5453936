"""Events: subscribe (welcome, follower + unionid learnt off the reply path),
unsubscribe, menu CLICK / VIEW, TEMPLATESENDJOBFINISH; WeChat stalling never delays us."""

from __future__ import annotations

import asyncio
import uuid

from bot.service import BotService
from fakes.wechat import FakeWeChatState
from fakes.wechat.simulator import event_xml, text_xml
from server.domain.models import Notice, OfficialFollower
from tests.bot.conftest import Wx


async def test_subscribe_welcomes_and_learns_the_unionid(
    wx: Wx, bot: BotService, wechat_state: FakeWeChatState
) -> None:
    for mode in ("plain", "safe"):
        openid = f"oa-grace{mode}"
        subscribe = event_xml("subscribe", openid=openid)
        reply = await wx.reply(subscribe, mode)  # type: ignore[arg-type]
        assert reply is not None and "欢迎关注" in reply.content
        assert "1. 绑定失败的常见原因" in reply.content
        await bot.drain()
        follower = await OfficialFollower.get(oa_openid=openid)
        assert follower.unionid == f"union-grace{mode}" and follower.subscribed


async def test_subscribe_while_wechat_stalls_replies_at_once(
    wx: Wx, bot: BotService, wechat_state: FakeWeChatState
) -> None:
    """The webhook makes no outbound call on the reply path (WeChat stalling 6 s)."""
    wechat_state.configure(stall_seconds=6)
    reply = await asyncio.wait_for(wx.reply(event_xml("subscribe", openid="oa-heidi")), 2.0)
    assert reply is not None and "欢迎关注" in reply.content
    answer = await asyncio.wait_for(wx.say("我给我妈绑定亲情账户一直失败怎么办", "oa-heidi"), 2.0)
    assert "排查" in answer
    wechat_state.configure(stall_seconds=0)
    await bot.close()  # the stalled user/info call is abandoned


async def test_subscribe_without_wechat_still_records_the_follower(
    wx: Wx, bot: BotService, wechat_state: FakeWeChatState
) -> None:
    wechat_state.configure(down=True)
    await wx.reply(event_xml("subscribe", openid="oa-ivan"))
    await bot.drain()
    follower = await OfficialFollower.get(oa_openid="oa-ivan")
    assert follower.subscribed and follower.unionid is None


async def test_unsubscribe_marks_the_follower_and_ends_the_dialogue(
    wx: Wx, bot: BotService
) -> None:
    await OfficialFollower.create(oa_openid="oa-judy", unionid="union-judy", subscribed=True)
    await wx.say("绑定失败怎么办", "oa-judy")
    assert await bot.dialogue.active("oa-judy") == "start"
    assert await wx.reply(event_xml("unsubscribe", openid="oa-judy"), "safe") is None
    follower = await OfficialFollower.get(oa_openid="oa-judy")
    assert not follower.subscribed and follower.unionid == "union-judy"
    assert await bot.dialogue.active("oa-judy") is None


async def test_menu_clicks(wx: Wx) -> None:
    topics = await wx.reply(event_xml("CLICK", openid="oa-ken", key="TOPICS"))
    assert topics is not None and "2. 怎么绑定亲情账户" in topics.content
    how = await wx.reply(event_xml("CLICK", openid="oa-ken", key="KB:how_to_bind"), "safe")
    assert how is not None and "小程序" in how.content
    trouble = await wx.reply(event_xml("CLICK", openid="oa-ken", key="TROUBLESHOOT"))
    assert trouble is not None and "1. 信息不一致" in trouble.content
    stale_key = await wx.reply(event_xml("CLICK", openid="oa-ken", key="KB:no_such_intent"))
    assert stale_key is not None and "1. 绑定失败的常见原因" in stale_key.content
    view = await wx.reply(event_xml("VIEW", openid="oa-ken", key="https://example.com/"))
    assert view is None


async def _notice(msgid: int) -> Notice:
    return await Notice.create(
        kind="family_settlement",
        dedupe_key=f"test:{uuid.uuid4()}",
        title="家人就医结算通知",
        state="sent",
        channel="template",
        wx_msgid=msgid,
    )


async def test_template_send_job_finish_marks_the_notice(wx: Wx) -> None:
    delivered, blocked, broken = await _notice(9001), await _notice(9002), await _notice(9003)
    for notice, status in (
        (delivered, "success"),
        (blocked, "failed:user block"),
        (broken, "failed: system failed"),
    ):
        push = event_xml(
            "TEMPLATESENDJOBFINISH",
            openid="oa-leo",
            extra={"MsgID": str(notice.wx_msgid), "Status": status},
        )
        for mode in ("plain", "safe"):
            assert await wx.reply(push, mode) is None  # type: ignore[arg-type]
    assert (await Notice.get(id=delivered.id)).state == "delivered"
    blocked = await Notice.get(id=blocked.id)
    # the push contract (issue #5): a user block is a failed delivery, reason 用户拒收
    assert blocked.state == "failed" and blocked.reason == "用户拒收"
    assert (await Notice.get(id=broken.id)).state == "failed"


async def test_non_text_messages_get_a_hint(wx: Wx) -> None:
    image = (
        "<xml><ToUserName>gh_demo</ToUserName><FromUserName>oa-mia</FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType>image</MsgType>"
        "<PicUrl>http://example.com/a.jpg</PicUrl><MediaId>m1</MediaId><MsgId>5150</MsgId></xml>"
    )
    reply = await wx.reply(image)
    assert reply is not None and "文字" in reply.content
    # An unknown event is answered with nothing rather than an error.
    assert await wx.reply(event_xml("some_future_event", openid="oa-mia")) is None
    assert await wx.reply(text_xml("", openid="oa-mia")) is not None
