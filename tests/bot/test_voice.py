"""Voice messages: WeChat's speech recognition (``Recognition``) answered like typed text,
through signed XML in plain and safe mode (API.md v1.1 "Official account")."""

from __future__ import annotations

from aiohttp.web import Application

from bot.handlers import spoken
from bot.service import BotService
from server.domain.models import OfficialFollower
from tests.bot.conftest import Wx, voice_xml
from tests.bot.test_conversation import ASK, _failed_application


async def test_a_recognised_question_is_answered_like_text(wx: Wx) -> None:
    for mode in ("plain", "safe"):
        spoken_answer = await wx.speak("嗯，亲情账户花的是谁的钱啊？", "oa-vera", mode)  # type: ignore[arg-type]
        typed_answer = await wx.say("亲情账户花的是谁的钱", "oa-vera", mode)  # type: ignore[arg-type]
        assert "被绑定人" in spoken_answer and "自己的医保" in spoken_answer, mode
        assert spoken_answer == typed_answer, mode


async def test_nothing_recognised_is_answered_kindly(wx: Wx, bot: BotService) -> None:
    kind = bot.kb.replies["voice_not_heard"].text
    for recognition in ("", "。", None):  # empty, only punctuation, recognition switched off
        for mode in ("plain", "safe"):
            answer = await wx.speak(recognition, "oa-walt", mode)  # type: ignore[arg-type]
            assert answer == kind
            assert "没听清" in answer and "打字" in answer and "菜单" in answer


async def test_spoken_choices_walk_the_troubleshooting_dialogue(wx: Wx, bot: BotService) -> None:
    assert "页面提示的是哪一类" in await wx.say(ASK, "oa-xiao")
    assert "要绑定的家人是您的" in await wx.speak("第六个。", "oa-xiao")
    assert "孩子多大" in await wx.speak("二", "oa-xiao", mode="safe")
    assert "退出" not in await wx.speak("退出。", "oa-xiao")
    assert await bot.dialogue.active("oa-xiao") is None
    # a spoken topic number and "菜单" work like typed ones
    assert "1. 绑定失败的常见原因" in await wx.speak("菜单。", "oa-xiao")
    assert "手机" in await wx.speak("六。", "oa-xiao")


async def test_a_follower_with_a_failed_binding_hears_its_reason_by_voice(
    wx: Wx, app: Application
) -> None:
    await OfficialFollower.create(oa_openid="oa-yan", unionid="union-yan")
    await _failed_application(app, user="yan", code="MONTHLY_BINDER_LIMIT")
    answer = await wx.speak("我给我妈绑定亲情账户，为什么一直失败呀？", "oa-yan", mode="safe")
    assert "11月20日" in answer and "张*华" in answer and "该家人本月已被2人绑定" in answer


async def test_voice_is_answered_once_whichever_way_its_id_is_spelled(wx: Wx) -> None:
    """WeChat retries a push it got no answer to; a voice message's id comes as MsgId or
    MsgID, and two messages without one are still two messages."""
    for tag in ("MsgId", "MsgID"):
        xml = voice_xml("菜单", openid="oa-zhou", msg_id=9001 if tag == "MsgId" else 9002, id_tag=tag)
        first, retry = await wx.send(xml), await wx.send(xml)
        assert first[0] == retry[0] == 200 and first[1] == retry[1] and "常见问题" in first[1]
    a = await wx.speak("怎么解绑", "oa-zhou", id_tag="", media_id="m-1")
    b = await wx.speak("怎么解绑", "oa-zhou", id_tag="", media_id="m-2")
    assert a == b and "解除绑定" in a  # both answered: not taken for a retry


async def test_an_id_number_in_speech_is_never_echoed(wx: Wx) -> None:
    answer = await wx.speak("我妈身份证号是11010119900307123X，绑定失败怎么办？", "oa-zhu")
    assert "隐私" in answer and "11010119900307123X" not in answer


def test_spoken_numbers_and_fillers() -> None:
    assert [spoken(t) for t in ("第二个。", "十二", "二十三", "选3", "两个人", "退出。")] == [
        "2", "12", "23", "3", "两个人", "退出",
    ]
    assert spoken("  嗯，那个，亲情账户怎么绑定？") == "亲情账户怎么绑定"
    assert spoken("那个") == "那个"  # a filler alone is what was said
    assert spoken("。？") == ""
