"""The /wechat/official protocol: real WeChat XML, plain / compatible / safe mode."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp.test_utils import TestClient, TestServer

from bot.service import BotService
from fakes.wechat import FakeWeChatState
from fakes.wechat.simulator import WeChatSimulator, event_xml, text_xml
from server.app import create_app
from server.settings import Settings
from tests.bot.conftest import PATH, Wx

QUESTION = "亲情账户花的是谁的钱"


async def test_url_verification_echoes_echostr(client: TestClient, sim: WeChatSimulator) -> None:
    resp = await client.get(PATH, params=sim.verification("abc123"))
    assert resp.status == 200
    assert await resp.text() == "abc123"


async def test_url_verification_refuses_bad_or_stale_signature(
    client: TestClient, sim: WeChatSimulator
) -> None:
    bad = sim.verification("abc123") | {"signature": "0" * 40}
    stale = sim.verification("abc123", timestamp=int(time.time()) - 3600)
    for query in (bad, stale, {"echostr": "abc123"}):
        resp = await client.get(PATH, params=query)
        assert resp.status == 403
        assert "abc123" not in await resp.text()


async def test_text_is_answered_in_every_mode(wx: Wx) -> None:
    for mode in ("plain", "compat", "safe"):
        reply = await wx.reply(text_xml(QUESTION, openid="oa-bob"), mode)  # type: ignore[arg-type]
        assert reply is not None, mode
        assert reply.type == "text"
        assert "被绑定人" in reply.content and "自己的医保" in reply.content, mode
        # The reply goes back to the follower, from the account.
        assert reply.target == "oa-bob" and reply.source == "gh_demo"


async def test_bad_signature_stale_timestamp_and_garbage_get_no_reply(
    client: TestClient, sim: WeChatSimulator
) -> None:
    good = sim.push(text_xml(QUESTION, openid="oa-bob"))
    cases: list[tuple[int, dict[str, str], bytes]] = [
        (403, good.query | {"signature": "f" * 40}, good.body),
        (403, {k: v for k, v in good.query.items() if k != "signature"}, good.body),
    ]
    stale = sim.push(text_xml(QUESTION, openid="oa-bob"), timestamp=int(time.time()) - 301)
    cases.append((403, stale.query, stale.body))
    future = sim.push(text_xml(QUESTION, openid="oa-bob"), timestamp=int(time.time()) + 301)
    cases.append((403, future.query, future.body))
    garbage = sim.push("<xml><ToUserName>gh")
    cases.append((400, garbage.query, garbage.body))
    not_xml = sim.push("\x00\xff not xml at all")
    cases.append((400, not_xml.query, not_xml.body))
    no_type = sim.push("<xml><FromUserName>oa-bob</FromUserName></xml>")
    cases.append((400, no_type.query, no_type.body))
    cases.append((400, good.query, b"\xff\xfe\x00"))
    safe = sim.push(text_xml(QUESTION, openid="oa-bob"), "safe")
    cases.append((403, safe.query | {"msg_signature": "0" * 40}, safe.body))
    cases.append((403, {k: v for k, v in safe.query.items() if k != "msg_signature"}, safe.body))
    # Valid signatures over an <Encrypt> that is not ciphertext of ours.
    forged = sim.push("<xml><Encrypt>bm90IGNpcGhlcnRleHQ=</Encrypt></xml>")
    from fakes.wechat.simulator import signature

    forged_q = forged.query | {
        "encrypt_type": "aes",
        "msg_signature": signature(
            sim.token, forged.timestamp, forged.nonce, "bm90IGNpcGhlcnRleHQ="
        ),
    }
    cases.append((400, forged_q, forged.body))
    cases.append((413, good.query, b"<xml>" + b"a" * 70_000 + b"</xml>"))
    for status, query, body in cases:
        resp = await client.post(PATH, params=query, data=body)
        text = await resp.text()
        assert resp.status == status, (status, query, body[:40])
        assert text == "", text


async def test_previous_aes_key_is_accepted_and_used_for_the_reply(
    make_settings: Callable[..., Settings],
) -> None:
    old_key = "iqS4l4jViU4PAsuSeCBLJCWxCOFcg94dZb8HB7LkskE"
    new_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    settings = make_settings(
        **{
            "wechat.oa_encoding_aes_key": new_key,
            "wechat.oa_previous_encoding_aes_key": old_key,
        }
    )
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        for key in (old_key, new_key):
            sim = WeChatSimulator(
                token=settings.wechat.oa_token, appid=settings.wechat.oa_appid, encoding_aes_key=key
            )
            reply = await Wx(client, sim).reply(text_xml(QUESTION, openid="oa-bob"), "safe")
            assert reply is not None and "自己的医保" in reply.content
        stranger = WeChatSimulator(
            token=settings.wechat.oa_token,
            appid=settings.wechat.oa_appid,
            encoding_aes_key="Z" * 43,
        )
        status, body, _ = await Wx(client, stranger).send(
            text_xml(QUESTION, openid="oa-bob"), "safe"
        )
        assert (status, body) == (400, "")
    finally:
        await client.close()


async def test_a_retried_message_is_answered_once(wx: Wx) -> None:
    """WeChat retries with the same FromUserName + MsgId; the dialogue moves one step."""
    await wx.say("绑定失败了怎么办", openid="oa-carol")
    retry = text_xml("4", openid="oa-carol", msg_id=4242)
    results = await asyncio.gather(*(wx.send(retry) for _ in range(3)))
    bodies = {body for status, body, _ in results}
    assert {status for status, _, _ in results} == {200}
    assert len(bodies) == 1, bodies
    assert "是哪一种上限" in bodies.pop()
    # Answered once: a second processing would have taken "4" as an invalid choice of
    # the next question. A later retry gets the stored answer too.
    _, later, _ = await wx.send(retry)
    assert "是哪一种上限" in later
    assert "请回复" not in later


async def test_same_msgid_from_two_followers_is_two_messages(wx: Wx) -> None:
    a = await wx.reply(text_xml(QUESTION, openid="oa-dave", msg_id=777))
    b = await wx.reply(text_xml(QUESTION, openid="oa-erin", msg_id=777))
    assert a is not None and b is not None
    assert (a.target, b.target) == ("oa-dave", "oa-erin")


async def test_retried_event_is_handled_once(
    wx: Wx, bot: BotService, wechat_state: FakeWeChatState
) -> None:
    event = event_xml("subscribe", openid="oa-frank", create_time=1_700_000_123, key="")
    first = await wx.reply(event)
    second = await wx.reply(event)
    await bot.drain()
    assert first is not None and second is not None
    assert first.content == second.content and "欢迎" in first.content
    assert wechat_state.calls["/cgi-bin/user/info"] == 1


def test_fast_parser_matches_wechatpy() -> None:
    from wechatpy import parse_message

    from bot.codec import parse_xml

    pushes = [
        text_xml("你好 <b>&amp; ]]> 绑定", openid="oa-a", msg_id=5),
        event_xml("subscribe", openid="oa-a", key="qrscene_123"),
        event_xml("subscribe", openid="oa-a"),
        event_xml("unsubscribe", openid="oa-a"),
        event_xml("CLICK", openid="oa-a", key="KB:x"),
        event_xml("VIEW", openid="oa-a", key="https://example.com/?a=1&b=2"),
        event_xml("TEMPLATESENDJOBFINISH", openid="oa-a", extra={"MsgID": "1", "Status": "ok"}),
        event_xml("a_future_event", openid="oa-a"),
    ]
    for xml in pushes:
        ours, theirs = parse_xml(xml), parse_message(xml)
        assert type(ours) is type(theirs) and ours._data == theirs._data, xml


async def test_xml_bombs_and_entities_are_refused(client: TestClient, sim: WeChatSimulator) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">' for p, c in zip("abcdefg", "bcdefgh"))
        + "]><xml><ToUserName>gh</ToUserName><FromUserName>oa-x</FromUserName>"
        "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&h;</Content>"
        "<MsgId>1</MsgId></xml>"
    )
    external = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        "<xml><ToUserName>gh</ToUserName><FromUserName>oa-x</FromUserName>"
        "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&e;</Content>"
        "<MsgId>2</MsgId></xml>"
    )
    for body in (bomb, external):
        push = sim.push(body)
        resp = await client.post(PATH, params=push.query, data=push.body)
        text = await resp.text()
        assert resp.status == 400 and text == "", text[:100]
        assert "root:" not in text


async def test_an_envelope_without_cdata_is_still_opened(
    client: TestClient, sim: WeChatSimulator
) -> None:
    """<Encrypt> is found without an XML parse in WeChat's CDATA form; any other well-formed
    envelope goes through ElementTree; a body without <Encrypt> is refused."""
    import re

    push = sim.push(text_xml(QUESTION, openid="oa-cara", msg_id=777), "safe")
    plain_envelope = re.sub(
        rb"<Encrypt><!\[CDATA\[([^\]]+)\]\]></Encrypt>", rb"<Encrypt>\1</Encrypt>", push.body
    )
    assert plain_envelope != push.body and b"CDATA" not in plain_envelope.split(b"<Encrypt>")[1]
    resp = await client.post(PATH, params=push.query, data=plain_envelope)
    assert resp.status == 200
    body = await resp.text()
    assert "被绑定人" in sim.open_reply(body, push)
    missing = re.sub(rb"<Encrypt>.*</Encrypt>", b"", plain_envelope)
    resp = await client.post(PATH, params=push.query, data=missing)
    assert resp.status == 400 and await resp.text() == ""
