"""微信人脸核身 through the gateway against the fake WeChat, both for real over loopback HTTP:
getuseridkey, the user's check (played by the fake), getinfo, and the demo convention."""

from __future__ import annotations

import hashlib
import logging

import pytest

from fakes.wechat import EMPTY_MD5, P_FACE_GETINFO, P_FACE_USERIDKEY
from server.gateways.wechat import (
    FaceExpectation,
    FaceIdentifyInfo,
    FaceUserIdKey,
    WeChatError,
    WeChatGateway,
    face_person_md5s,
)
from server.settings import WeChatSettings

from .conftest import WeChatEnv

NAME = "王秀英"
ID_NUMBER = "11010519491231002x"  # lower-case x on purpose: WeChat hashes it upper-case
OTHER_ID = "110105194912310037"


async def _mp_token(wx: WeChatEnv) -> str:
    return (await wx.gateway.stable_token("mp")).token


def _demo_gateway(wx: WeChatEnv) -> WeChatGateway:
    """The gateway as the app builds it for a WeChat on loopback (our fake): demo hints on."""
    settings = WeChatSettings(
        mp_appid="wxdemo_mp", mp_secret="demo-mp-secret",
        oa_appid="wxdemo_oa", oa_secret="demo-oa-secret", timeout_seconds=0.5,
    )
    return WeChatGateway.from_settings(wx.session, settings, api_base=wx.base_url)


async def _errcode(coro: object) -> WeChatError:
    with pytest.raises(WeChatError) as info:
        await coro  # type: ignore[misc]
    return info.value


def test_person_md5s_are_lower_hex_of_utf8_name_and_upper_x_id() -> None:
    id_md5, name_md5 = face_person_md5s(" 曾浩 ", ID_NUMBER)
    # a real getinfo answer quoted on the WeChat developer community: md5("曾浩")
    assert name_md5 == "ee075aef91ddd81394b6f68d7ff998cb"
    assert id_md5 == hashlib.md5(ID_NUMBER.upper().encode()).hexdigest()
    assert id_md5 != hashlib.md5(ID_NUMBER.encode()).hexdigest()


async def test_a_check_made_for_a_session_is_reported_truthfully(wx: WeChatEnv) -> None:
    token = await _mp_token(wx)
    key = await wx.gateway.face_user_id_key(token, name=NAME, id_card_number=ID_NUMBER)
    assert isinstance(key, FaceUserIdKey) and key.expires_in == 3600
    assert len(key.user_id_key) == 32 and key.user_id_key not in repr(key)
    # the user's phone runs wx.startFacialRecognitionVerify({userIdKey}) as demo-alice
    verify_result = wx.state.face.verify(key.user_id_key, "demo-alice")
    info = await wx.gateway.face_identify_info(token, verify_result)
    assert isinstance(info, FaceIdentifyInfo)
    assert info.passed and info.identify_ret == 0
    assert info.openid == "demo-alice" and info.user_id_key == key.user_id_key
    assert info.finish_time == info.identify_time == int(wx.clock.now)
    assert info.is_person(NAME, ID_NUMBER.upper()) and info.is_person(NAME, ID_NUMBER)
    assert not info.is_person(NAME, OTHER_ID) and not info.is_person("王秀", ID_NUMBER)
    assert info.name_utf8_md5 == info.name_utf8_md5.lower()
    assert info.id_card_number_md5 not in repr(info)


async def test_a_failed_check_still_names_its_person(wx: WeChatEnv) -> None:
    token = await _mp_token(wx)
    key = await wx.gateway.face_user_id_key(token, name=NAME, id_card_number=ID_NUMBER)
    verify_result = wx.state.face.verify(key.user_id_key, "demo-alice", identify_ret=10004)
    info = await wx.gateway.face_identify_info(token, verify_result)
    assert not info.passed and info.identify_ret == 10004
    assert info.is_person(NAME, ID_NUMBER)


async def test_a_verify_result_is_redeemed_once_and_expires_after_5_minutes(
    wx: WeChatEnv,
) -> None:
    token = await _mp_token(wx)
    key = await wx.gateway.face_user_id_key(token, name=NAME, id_card_number=ID_NUMBER)
    first = wx.state.face.verify(key.user_id_key, "demo-alice")
    assert (await wx.gateway.face_identify_info(token, first)).passed
    again = await _errcode(wx.gateway.face_identify_info(token, first))
    assert again.errcode == 84002 and again.message_zh == "人脸核身结果已过期，请重新进行人脸识别"
    assert not again.transient

    # WeChat's docs only promise 5 minutes; the knob lets tests check our own replay guard
    wx.state.configure(face_single_use=False)
    second = wx.state.face.verify(key.user_id_key, "demo-alice")
    one = await wx.gateway.face_identify_info(token, second)
    assert await wx.gateway.face_identify_info(token, second) == one
    wx.clock.advance(301)
    late = await _errcode(wx.gateway.face_identify_info(token, second))
    assert late.errcode == 84002


async def test_refusals_carry_wechat_errcodes(wx: WeChatEnv) -> None:
    token = await _mp_token(wx)
    empty = await _errcode(wx.gateway.face_user_id_key(token, name=" ", id_card_number=ID_NUMBER))
    assert empty.errcode == 84006 and empty.path == P_FACE_USERIDKEY
    assert empty.message_zh == "缺少姓名或身份证号，无法进行人脸核身"
    unknown = await _errcode(wx.gateway.face_identify_info(token, ""))
    assert unknown.errcode == 84001 and unknown.path == P_FACE_GETINFO
    # the official account's token is not the mini-program's
    oa_token = (await wx.gateway.stable_token("oa")).token
    wrong = await _errcode(wx.gateway.face_identify_info(oa_token, "ok-1"))
    assert wrong.errcode == 48001
    # a session key a check was never opened for
    with pytest.raises(ValueError):
        wx.state.face.verify("no-such-key", "demo-alice")
    # and a session that expired (an hour) can no longer be checked
    key = await wx.gateway.face_user_id_key(token, name=NAME, id_card_number=ID_NUMBER)
    wx.clock.advance(3601)
    with pytest.raises(ValueError):
        wx.state.face.verify(key.user_id_key, "demo-alice")


async def test_name_and_number_stay_out_of_logs_and_errors(
    wx: WeChatEnv, caplog: pytest.LogCaptureFixture
) -> None:
    token = await _mp_token(wx)
    wx.state.inject(P_FACE_USERIDKEY, -1)
    with caplog.at_level(logging.DEBUG):
        busy = await _errcode(
            wx.gateway.face_user_id_key(token, name=NAME, id_card_number=ID_NUMBER)
        )
    assert busy.transient
    for text in (str(busy), repr(busy), caplog.text):
        assert NAME not in text and ID_NUMBER.upper() not in text and ID_NUMBER not in text


# ---- the demo convention (API.md "Demo mode"): verify results the fake did not issue ----


async def test_demo_result_without_expectation_names_nobody(wx: WeChatEnv) -> None:
    token = await _mp_token(wx)
    info = await wx.gateway.face_identify_info(token, "ok-1")
    assert info.passed
    assert (info.openid, info.user_id_key) == ("", "")
    assert info.id_card_number_md5 == info.name_utf8_md5 == EMPTY_MD5
    assert not info.is_person(NAME, ID_NUMBER)  # a caller that compares fails safe
    # a gateway without demo hints (real WeChat's) never sends the expectation
    hinted = await wx.gateway.face_identify_info(
        token, "ok-2", expect=FaceExpectation("demo-alice", name=NAME, id_card_number=ID_NUMBER)
    )
    assert hinted.openid == "" and not hinted.is_person(NAME, ID_NUMBER)


async def test_demo_ok_passes_for_the_expected_person(wx: WeChatEnv) -> None:
    gateway = _demo_gateway(wx)
    token = await _mp_token(wx)
    expect = FaceExpectation("demo-alice", name=NAME, id_card_number=ID_NUMBER)
    info = await gateway.face_identify_info(token, "ok-1", expect=expect)
    assert info.passed and info.openid == "demo-alice" and info.user_id_key == ""
    assert info.is_person(NAME, ID_NUMBER)
    assert info.finish_time == int(wx.clock.now)
    failed = await gateway.face_identify_info(token, "bad-1", expect=expect)
    assert failed.identify_ret == 10004 and failed.is_person(NAME, ID_NUMBER)
    # the same demo result for the same caller and person is one check: redeemed once
    replay = await _errcode(gateway.face_identify_info(token, "ok-1", expect=expect))
    assert replay.errcode == 84002
    # ... another caller's "ok-1" is another check; and after 5 minutes it is new again
    bob = FaceExpectation("demo-bob", name="李四", id_card_number=OTHER_ID)
    assert (await gateway.face_identify_info(token, "ok-1", expect=bob)).is_person(
        "李四", OTHER_ID
    )
    wx.clock.advance(301)
    assert (await gateway.face_identify_info(token, "ok-1", expect=expect)).passed


async def test_demo_result_for_a_session_is_for_the_session_person(wx: WeChatEnv) -> None:
    gateway = _demo_gateway(wx)
    token = await _mp_token(wx)
    key = await gateway.face_user_id_key(token, name=NAME, id_card_number=ID_NUMBER)
    info = await gateway.face_identify_info(
        token, "ok-7", expect=FaceExpectation("demo-alice", user_id_key=key.user_id_key)
    )
    assert info.passed and info.user_id_key == key.user_id_key
    assert info.openid == "demo-alice" and info.is_person(NAME, ID_NUMBER)
    # a key the fake never issued: the check fails as WeChat's jsapi would (非法user_id_key)
    bogus = await gateway.face_identify_info(
        token, "ok-8", expect=FaceExpectation("demo-alice", user_id_key="0" * 32)
    )
    assert bogus.identify_ret == 10041 and not bogus.is_person(NAME, ID_NUMBER)


async def test_control_endpoint_plays_the_users_check(wx: WeChatEnv) -> None:
    """Other processes (benchmarks, the mini-program team) drive the check over HTTP."""
    token = await _mp_token(wx)
    # straight to the fake, with a lower-case x: it hashes the number as WeChat does
    async with wx.session.post(
        f"{wx.base_url}{P_FACE_USERIDKEY}",
        params={"access_token": token},
        json={"name": NAME, "id_card_number": ID_NUMBER},
    ) as resp:
        answer = await resp.json(content_type=None)
    assert answer["errcode"] == 0 and answer["expires_in"] == 3600
    url = f"{wx.base_url}/_fake/face/verify"
    body = {"user_id_key": answer["user_id_key"], "openid": "demo-alice"}
    async with wx.session.post(url, json=body) as resp:
        assert resp.status == 200
        verify_result = (await resp.json())["verify_result"]
    async with wx.session.post(url, json={"user_id_key": "nope", "openid": "x"}) as resp:
        assert resp.status == 400
    info = await wx.gateway.face_identify_info(token, verify_result)
    assert info.passed and info.is_person(NAME, ID_NUMBER)
    async with wx.session.post(f"{wx.base_url}/_fake/config", json={"face_single_use": False}) as r:
        assert (await r.json())["face_single_use"] is False
