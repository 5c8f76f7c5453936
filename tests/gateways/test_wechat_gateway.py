"""The WeChat gateway against the fake WeChat, both for real over loopback HTTP."""

from __future__ import annotations

import json
import time

import aiohttp
import pytest

from fakes.wechat import (
    FORCE_REFRESH_PER_DAY,
    P_CODE2SESSION,
    P_CUSTOM,
    P_STABLE_TOKEN,
    P_SUBSCRIBE,
    P_TEMPLATE,
)
from server.gateways.wechat import (
    AccessToken,
    Code2Session,
    WeChatError,
    WeChatGateway,
    WeChatUnavailable,
)

from .conftest import WeChatEnv


def _gateway(wx: WeChatEnv, **overrides: object) -> WeChatGateway:
    kwargs: dict[str, object] = {
        "api_base": wx.base_url,
        "mp_appid": "wxdemo_mp",
        "mp_secret": "demo-mp-secret",
        "oa_appid": "wxdemo_oa",
        "oa_secret": "demo-oa-secret",
        "timeout": 0.5,
    }
    kwargs.update(overrides)
    return WeChatGateway(wx.session, **kwargs)  # type: ignore[arg-type]


async def _raises(coro: object) -> WeChatError:
    with pytest.raises(WeChatError) as info:
        await coro  # type: ignore[misc]
    return info.value


# ---- login ------------------------------------------------------------------------------


async def test_code2session_maps_demo_code_to_openid_and_unionid(wx: WeChatEnv) -> None:
    result = await wx.gateway.code2session("demo-alice-abc123")
    assert isinstance(result, Code2Session)
    assert result.openid == "demo-alice"
    assert result.unionid == "union-alice"
    assert len(result.session_key) == 24  # base64 of 16 random bytes, like WeChat's
    assert wx.state.session_keys["demo-alice"] == result.session_key
    assert result.session_key not in repr(result)


async def test_one_user_logs_in_many_times_with_fresh_codes(wx: WeChatEnv) -> None:
    first = await wx.gateway.code2session("demo-bob7-1")
    second = await wx.gateway.code2session("demo-bob7-2")
    assert first.openid == second.openid == "demo-bob7"


async def test_code_reuse_is_40163(wx: WeChatEnv) -> None:
    await wx.gateway.code2session("demo-alice-once")
    err = await _raises(wx.gateway.code2session("demo-alice-once"))
    assert err.errcode == 40163
    assert "code been used" in err.errmsg
    assert not err.transient
    assert err.message_zh.startswith("登录凭证已被使用")


@pytest.mark.parametrize("code", ["nonsense", "demo-al_ice-1", "demo-alice-", "demo-alice", ""])
async def test_bad_code_is_40029(wx: WeChatEnv, code: str) -> None:
    err = await _raises(wx.gateway.code2session(code))
    # An empty js_code is "missing code" on WeChat; everything else is "invalid code".
    assert err.errcode == (41008 if code == "" else 40029)
    if code:
        assert err.message_zh.startswith("登录凭证无效")


async def test_wrong_credentials_as_wechat_reports_them(wx: WeChatEnv) -> None:
    bad_secret = _gateway(wx, mp_secret="leaked-nowhere", oa_secret="leaked-nowhere")
    err = await _raises(bad_secret.code2session("demo-alice-x"))
    assert err.errcode == 40125
    assert "leaked-nowhere" not in str(err)
    assert (await _raises(bad_secret.stable_token("oa"))).errcode == 40125
    bad_appid = _gateway(wx, mp_appid="wxnope", oa_appid="wxnope")
    assert (await _raises(bad_appid.code2session("demo-alice-y"))).errcode == 40013
    assert (await _raises(bad_appid.stable_token("mp"))).errcode == 40013
    # A failed login does not use the code up.
    assert (await wx.gateway.code2session("demo-alice-x")).openid == "demo-alice"


async def test_jscode2session_answers_text_plain_and_gateway_parses_it(wx: WeChatEnv) -> None:
    params = {
        "appid": "wxdemo_mp",
        "secret": "demo-mp-secret",
        "js_code": "demo-carol-1",
        "grant_type": "authorization_code",
    }
    async with wx.session.get(wx.base_url + P_CODE2SESSION, params=params) as resp:
        assert resp.content_type == "text/plain"
        assert json.loads(await resp.read())["openid"] == "demo-carol"
    # The gateway must not care about the content type either.
    assert (await wx.gateway.code2session("demo-carol-2")).openid == "demo-carol"


async def test_risky_user_login_is_blocked_40226(wx: WeChatEnv) -> None:
    wx.state.risky_users.add("mallory")
    assert (await _raises(wx.gateway.code2session("demo-mallory-1"))).errcode == 40226


# ---- tokens -------------------------------------------------------------------------------


async def test_stable_token_is_stable_in_normal_mode(wx: WeChatEnv) -> None:
    first = await wx.gateway.stable_token("oa")
    assert isinstance(first, AccessToken) and first.expires_in == 7200
    assert first.token not in repr(first)
    wx.clock.advance(100)
    second = await wx.gateway.stable_token("oa")
    assert second.token == first.token
    assert second.expires_in == 7100
    other = await wx.gateway.stable_token("mp")
    assert other.token != first.token


async def test_normal_mode_renews_in_last_five_minutes_and_old_token_still_works(
    wx: WeChatEnv,
) -> None:
    old = await wx.gateway.stable_token("oa")
    wx.clock.advance(7200 - 200)
    new = await wx.gateway.stable_token("oa")
    assert new.token != old.token and new.expires_in == 7200
    await wx.gateway.send_template(old.token, openid="oa-alice", template_id="T", data={})
    wx.clock.advance(201)
    err = await _raises(
        wx.gateway.send_template(old.token, openid="oa-alice", template_id="T", data={})
    )
    assert err.errcode == 42001 and err.token_invalid
    await wx.gateway.send_template(new.token, openid="oa-alice", template_id="T", data={})


async def test_force_refresh_invalidates_old_token_and_honours_wechat_limits(
    wx: WeChatEnv,
) -> None:
    old = await wx.gateway.stable_token("oa")
    new = await wx.gateway.stable_token("oa", force_refresh=True)
    assert new.token != old.token
    err = await _raises(wx.gateway.user_info(old.token, "oa-alice"))
    assert err.errcode == 40001 and err.token_invalid and not err.transient
    # Within 30 s of the last forced refresh WeChat does not refresh again.
    again = await wx.gateway.stable_token("oa", force_refresh=True)
    assert again.token == new.token
    # 20 forced refreshes a day, then 45009.
    for _ in range(FORCE_REFRESH_PER_DAY - 1):
        wx.clock.advance(31)
        await wx.gateway.stable_token("oa", force_refresh=True)
    wx.clock.advance(31)
    err = await _raises(wx.gateway.stable_token("oa", force_refresh=True))
    assert err.errcode == 45009 and err.transient
    # Normal mode still answers, and the mini-program's quota is separate.
    await wx.gateway.stable_token("oa")
    await wx.gateway.stable_token("mp", force_refresh=True)
    assert wx.state.stats()["force_refreshes"] == {"oa": FORCE_REFRESH_PER_DAY, "mp": 1}


async def test_expired_token_is_42001_invalid_is_40001_wrong_app_is_48001(
    wx: WeChatEnv,
) -> None:
    token = (await wx.gateway.stable_token("oa")).token
    wx.clock.advance(7200)
    err = await _raises(
        wx.gateway.send_template(token, openid="oa-alice", template_id="T", data={"a": "b"})
    )
    assert err.errcode == 42001 and err.token_invalid
    fresh = (await wx.gateway.stable_token("oa")).token
    assert fresh != token
    err = await _raises(
        wx.gateway.send_template("garbage", openid="oa-alice", template_id="T", data={})
    )
    assert err.errcode == 40001
    err = await _raises(wx.gateway.send_template("", openid="oa-alice", template_id="T", data={}))
    assert err.errcode == 41001
    mp_token = (await wx.gateway.stable_token("mp")).token
    err = await _raises(
        wx.gateway.send_template(mp_token, openid="oa-alice", template_id="T", data={})
    )
    assert err.errcode == 48001


async def test_expire_all_tokens(wx: WeChatEnv) -> None:
    token = (await wx.gateway.stable_token("mp")).token
    wx.state.expire_all_tokens()
    err = await _raises(
        wx.gateway.send_subscribe(token, openid="demo-alice", template_id="S", data={})
    )
    assert err.errcode == 42001
    fresh = (await wx.gateway.stable_token("mp")).token
    await wx.gateway.send_subscribe(fresh, openid="demo-alice", template_id="S", data={})


# ---- template / subscribe / custom messages -----------------------------------------------


async def test_template_send_wraps_data_and_returns_msgid(wx: WeChatEnv) -> None:
    token = (await wx.gateway.stable_token("oa")).token
    msgid = await wx.gateway.send_template(
        token,
        openid="oa-alice",
        template_id="TPL-settle",
        data={"thing1": "门诊结算", "amount2": "12.50元"},
        url="https://example.invalid/n/1",
        miniprogram={"appid": "wxdemo_mp", "pagepath": "pages/notice?id=1"},
    )
    assert isinstance(msgid, int)
    [sent] = wx.state.sent_messages(kind="template")
    assert sent["openid"] == "oa-alice" and sent["template_id"] == "TPL-settle"
    assert sent["data"] == {"thing1": "门诊结算", "amount2": "12.50元"}
    assert sent["msgid"] == msgid
    assert sent["miniprogram"]["pagepath"] == "pages/notice?id=1"
    second = await wx.gateway.send_template(token, openid="oa-bob", template_id="T", data={})
    assert second != msgid


async def test_template_to_unknown_or_unfollowed_openid(wx: WeChatEnv) -> None:
    token = (await wx.gateway.stable_token("oa")).token
    err = await _raises(
        wx.gateway.send_template(token, openid="demo-alice", template_id="T", data={})
    )
    assert err.errcode == 40003
    wx.state.block("oa-alice")
    err = await _raises(
        wx.gateway.send_template(token, openid="oa-alice", template_id="T", data={})
    )
    assert err.errcode == 43004 and not err.transient
    assert err.message_zh.startswith("用户未关注")
    wx.state.template_ids = {"KNOWN"}
    err = await _raises(wx.gateway.send_template(token, openid="oa-bob", template_id="T", data={}))
    assert err.errcode == 40037
    assert wx.state.sent_messages() == []


async def test_subscribe_send(wx: WeChatEnv) -> None:
    token = (await wx.gateway.stable_token("mp")).token
    await wx.gateway.send_subscribe(
        token,
        openid="demo-alice",
        template_id="SUB-1",
        data={"thing1": "共济账户支出", "amount2": "¥30.00", "time3": "2026-01-10 10:00"},
        page="pages/notices/index",
    )
    [sent] = wx.state.sent_messages(kind="subscribe", openid="demo-alice")
    assert sent["page"] == "pages/notices/index"
    assert sent["data"]["thing1"] == "共济账户支出"
    err = await _raises(
        wx.gateway.send_subscribe(token, openid="oa-alice", template_id="SUB-1", data={})
    )
    assert err.errcode == 40003


async def test_subscribe_refused_43101_and_strict_grants(wx: WeChatEnv) -> None:
    token = (await wx.gateway.stable_token("mp")).token
    wx.state.block("demo-bob")
    err = await _raises(
        wx.gateway.send_subscribe(token, openid="demo-bob", template_id="S", data={})
    )
    assert err.errcode == 43101 and not err.transient
    wx.state.configure(strict_subscribe=True)
    err = await _raises(
        wx.gateway.send_subscribe(token, openid="demo-alice", template_id="S", data={})
    )
    assert err.errcode == 43101
    wx.state.grant_subscribe("demo-alice", "S")
    await wx.gateway.send_subscribe(token, openid="demo-alice", template_id="S", data={})
    err = await _raises(
        wx.gateway.send_subscribe(token, openid="demo-alice", template_id="S", data={})
    )
    assert err.errcode == 43101  # one-time subscription used up


@pytest.mark.parametrize(
    "data",
    [
        {"thing1": "这是一段超过二十个字符的事项说明文字会被微信拒绝的"},
        {"thing1": ""},
        {"amount2": "三十元"},
        {"phrase3": "太长的短语了"},
        {"number4": "12a"},
    ],
)
async def test_subscribe_data_limits_are_47003(wx: WeChatEnv, data: dict[str, str]) -> None:
    token = (await wx.gateway.stable_token("mp")).token
    err = await _raises(
        wx.gateway.send_subscribe(token, openid="demo-alice", template_id="S", data=data)
    )
    assert err.errcode == 47003
    assert "argument invalid" in err.errmsg


async def test_custom_text(wx: WeChatEnv) -> None:
    token = (await wx.gateway.stable_token("oa")).token
    text = "您好，绑定失败原因：信息不一致"
    await wx.gateway.send_custom_text(token, openid="oa-alice", content=text)
    [sent] = wx.state.sent_messages(kind="custom")
    assert sent["content"] == text and sent["app"] == "oa"
    err = await _raises(wx.gateway.send_custom_text(token, openid="oa-alice", content=""))
    assert err.errcode == 44004
    err = await _raises(wx.gateway.send_custom_text(token, openid="nobody", content="x"))
    assert err.errcode == 40003


async def test_custom_window_45015_and_count_limit_45047(wx: WeChatEnv) -> None:
    token = (await wx.gateway.stable_token("oa")).token
    wx.state.configure(strict_custom_window=True)
    err = await _raises(wx.gateway.send_custom_text(token, openid="oa-alice", content="hi"))
    assert err.errcode == 45015
    wx.state.record_interaction("oa-alice")
    for i in range(5):
        await wx.gateway.send_custom_text(token, openid="oa-alice", content=f"#{i}")
    err = await _raises(wx.gateway.send_custom_text(token, openid="oa-alice", content="#6"))
    assert err.errcode == 45047
    wx.state.record_interaction("oa-alice")
    wx.clock.advance(48 * 3600 + 1)
    token = (await wx.gateway.stable_token("oa")).token  # the old one expired meanwhile
    err = await _raises(wx.gateway.send_custom_text(token, openid="oa-alice", content="late"))
    assert err.errcode == 45015


# ---- official account ------------------------------------------------------------------------


async def test_user_info_resolves_oa_openid_to_unionid(wx: WeChatEnv) -> None:
    token = (await wx.gateway.stable_token("oa")).token
    info = await wx.gateway.user_info(token, "oa-alice")
    assert info["subscribe"] == 1
    assert info["openid"] == "oa-alice"
    assert info["unionid"] == "union-alice"
    assert "errcode" not in info
    assert (await _raises(wx.gateway.user_info(token, "stranger"))).errcode == 40003
    wx.state.block("oa-alice")
    assert (await wx.gateway.user_info(token, "oa-alice"))["subscribe"] == 0
    wx.state.add_follower("o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "union-zed")
    assert (await wx.gateway.user_info(token, "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"))[
        "unionid"
    ] == "union-zed"


async def test_create_menu(wx: WeChatEnv) -> None:
    token = (await wx.gateway.stable_token("oa")).token
    menu = {
        "button": [
            {"type": "click", "name": "绑定帮助", "key": "HELP_BIND"},
            {
                "name": "亲情医保",
                "sub_button": [
                    {"type": "miniprogram", "name": "打开小程序", "url": "https://x.invalid",
                     "appid": "wxdemo_mp", "pagepath": "pages/index"},
                ],
            },
        ]
    }
    await wx.gateway.create_menu(token, menu)
    assert wx.state.menu == menu
    too_many = {"button": [{"type": "click", "name": f"b{i}", "key": "K"} for i in range(4)]}
    assert (await _raises(wx.gateway.create_menu(token, too_many))).errcode == 40016
    assert (await _raises(wx.gateway.create_menu(token, {}))).errcode == 47001


# ---- faults ---------------------------------------------------------------------------------


async def test_injected_faults_are_queued_then_consumed(wx: WeChatEnv) -> None:
    token = (await wx.gateway.stable_token("mp")).token
    wx.state.inject(P_SUBSCRIBE, 45011)
    wx.state.inject(P_SUBSCRIBE, -1, times=2)
    wx.state.inject(P_SUBSCRIBE, 43101)

    async def send() -> None:
        await wx.gateway.send_subscribe(token, openid="demo-alice", template_id="S", data={})

    rate = await _raises(send())
    assert rate.errcode == 45011 and rate.transient
    assert rate.message_zh.startswith("操作过于频繁")
    for _ in range(2):
        busy = await _raises(send())
        assert busy.errcode == -1 and busy.transient
        assert busy.message_zh.startswith("微信系统繁忙")
    refused = await _raises(send())
    assert refused.errcode == 43101 and not refused.transient
    await send()
    assert len(wx.state.sent_messages()) == 1
    stats = wx.state.stats()
    assert stats["calls"][P_SUBSCRIBE] == 5 and stats["errors"][P_SUBSCRIBE] == 4


async def test_injected_fault_on_login_does_not_use_the_code(wx: WeChatEnv) -> None:
    wx.state.inject("sns/jscode2session", 45011)  # leading slash optional
    err = await _raises(wx.gateway.code2session("demo-alice-retry"))
    assert err.errcode == 45011
    assert (await wx.gateway.code2session("demo-alice-retry")).openid == "demo-alice"


async def test_down_is_unavailable(wx: WeChatEnv) -> None:
    wx.state.down = True
    err = await _raises(wx.gateway.code2session("demo-alice-1"))
    assert isinstance(err, WeChatUnavailable)
    assert err.http_status == 503 and err.errcode == -1 and err.transient
    assert err.message_zh.startswith("微信系统繁忙")
    wx.state.down = False
    assert (await wx.gateway.code2session("demo-alice-1")).openid == "demo-alice"


async def test_injected_http_errors_and_non_json_bodies(wx: WeChatEnv) -> None:
    wx.state.inject_http(P_STABLE_TOKEN, 502)
    err = await _raises(wx.gateway.stable_token("oa"))
    assert isinstance(err, WeChatUnavailable) and err.http_status == 502 and err.transient
    wx.state.inject_http(P_STABLE_TOKEN, 200)  # HTTP 200 with a non-JSON body
    err = await _raises(wx.gateway.stable_token("oa"))
    assert isinstance(err, WeChatUnavailable) and "non-JSON" in err.errmsg
    assert (await wx.gateway.stable_token("oa")).expires_in == 7200


async def test_stall_beyond_timeout_is_unavailable_without_leaking_secrets(
    wx: WeChatEnv,
) -> None:
    wx.state.stall_seconds = 2.0
    started = time.monotonic()
    err = await _raises(wx.gateway.code2session("demo-alice-slow"))
    assert time.monotonic() - started < 1.5  # the gateway's 0.5 s timeout, not the stall
    assert isinstance(err, WeChatUnavailable) and err.transient and err.errmsg == "timeout"
    assert "demo-mp-secret" not in str(err)
    assert err.__cause__ is None and err.__suppress_context__  # no URL with secrets in logs
    wx.state.stall_seconds = 0.0
    assert (await wx.gateway.code2session("demo-alice-fast")).openid == "demo-alice"


async def test_connection_refused_is_unavailable(wx: WeChatEnv, unused_tcp_port: int) -> None:
    gateway = _gateway(wx, api_base=f"http://127.0.0.1:{unused_tcp_port}")
    err = await _raises(gateway.stable_token("oa"))
    assert isinstance(err, WeChatUnavailable) and err.transient
    assert "demo-oa-secret" not in str(err)


async def test_transient_rate_is_seeded_and_bounded(wx: WeChatEnv) -> None:
    wx.state.configure(transient_rate=1.0)
    assert (await _raises(wx.gateway.stable_token("oa"))).errcode == -1
    wx.state.configure(transient_rate=0.3, seed=7)
    outcomes = []
    for _ in range(60):
        try:
            await wx.gateway.stable_token("oa")
            outcomes.append(True)
        except WeChatError as exc:
            assert exc.errcode == -1
            outcomes.append(False)
    failures = outcomes.count(False)
    assert 5 <= failures <= 35
    wx.state.configure(seed=7)
    again = []
    for _ in range(60):
        try:
            await wx.gateway.stable_token("oa")
            again.append(True)
        except WeChatError:
            again.append(False)
    assert again == outcomes


async def test_post_only_endpoint_rejects_get_with_43002(wx: WeChatEnv) -> None:
    async with wx.session.get(wx.base_url + P_TEMPLATE) as resp:
        assert resp.status == 200
        assert json.loads(await resp.read())["errcode"] == 43002


# ---- /_fake control endpoints -------------------------------------------------------------------


async def test_control_endpoints_drive_the_fake_over_http(wx: WeChatEnv) -> None:
    s, base = wx.session, wx.base_url

    async def post(path: str, body: object | None = None) -> aiohttp.ClientResponse:
        async with s.post(base + path, json=body) as resp:
            await resp.read()
            return resp

    async def get(path: str) -> dict:
        async with s.get(base + path) as resp:
            assert resp.status == 200
            return json.loads(await resp.read())

    # faults
    fault = {"path": P_CUSTOM, "errcode": 45047, "times": 1}
    assert (await post("/_fake/faults", fault)).status == 200
    token = (await wx.gateway.stable_token("oa")).token
    err = await _raises(wx.gateway.send_custom_text(token, openid="oa-alice", content="x"))
    assert err.errcode == 45047
    assert (await post("/_fake/faults", {"path": P_CUSTOM})).status == 400
    assert (await post("/_fake/faults", {"path": P_CUSTOM, "errcode": 1, "times": 0})).status == 400

    # config: down, then back up (the control paths keep answering while down)
    assert (await post("/_fake/config", {"down": True})).status == 200
    assert isinstance(await _raises(wx.gateway.stable_token("oa")), WeChatUnavailable)
    async with s.post(base + "/_fake/config", json={"down": False, "stall_seconds": 0}) as resp:
        config = json.loads(await resp.read())
    assert config["down"] is False and config["stall_seconds"] == 0.0
    assert (await post("/_fake/config", {"transient_rate": 2})).status == 400
    assert (await post("/_fake/config", {"bogus": 1})).status == 400

    # sent + stats
    await wx.gateway.send_template(token, openid="oa-alice", template_id="T", data={"k": "v"})
    await wx.gateway.send_custom_text(token, openid="oa-bob", content="你好")
    sent = await get("/_fake/sent")
    assert [m["kind"] for m in sent["items"]] == ["template", "custom"]
    only = await get("/_fake/sent?kind=custom&openid=oa-bob")
    assert only["total"] == 1 and only["items"][0]["content"] == "你好"
    stats = await get("/_fake/stats")
    assert stats["calls"][P_TEMPLATE] == 1 and stats["errors"][P_CUSTOM] == 1
    assert stats["sent"] == {"template": 1, "custom": 1}

    # expire tokens
    assert (await post("/_fake/expire_tokens")).status == 200
    err = await _raises(wx.gateway.send_custom_text(token, openid="oa-alice", content="x"))
    assert err.errcode == 42001

    # block / grants / interactions
    assert (await post("/_fake/block", {"openid": "demo-zoe"})).status == 200
    mp = (await wx.gateway.stable_token("mp")).token
    err = await _raises(wx.gateway.send_subscribe(mp, openid="demo-zoe", template_id="S", data={}))
    assert err.errcode == 43101
    assert (await post("/_fake/block", {"openid": "demo-zoe", "blocked": False})).status == 200
    await wx.gateway.send_subscribe(mp, openid="demo-zoe", template_id="S", data={})
    grant = {"openid": "demo-zoe", "template_id": "S"}
    assert (await post("/_fake/subscribe_grants", grant)).status == 200
    assert wx.state.subscribe_grants[("demo-zoe", "S")] == 1
    assert (await post("/_fake/interactions", {"openid": "oa-alice"})).status == 200
    assert "oa-alice" in wx.state.interactions

    # reset: codes usable again, records and counters gone, credentials kept
    await wx.gateway.code2session("demo-alice-r")
    assert (await post("/_fake/reset")).status == 200
    assert (await wx.gateway.code2session("demo-alice-r")).openid == "demo-alice"
    stats = await get("/_fake/stats")
    assert stats["sent"] == {} and stats["calls"] == {P_CODE2SESSION: 1}
    assert (await get("/_fake/sent"))["items"] == []
