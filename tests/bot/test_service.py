"""The bot without HTTP: router dispatch, answering once under concurrent retries, the
5 s budget with the customer-service fallback and its limits (45015 / 45047, 5 per 48 h)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from aiohttp.web import Application
from wechatpy import parse_message
from wechatpy.messages import BaseMessage

from bot.batching import RedisBatcher
from bot.customer_service import QUOTA, CustomerService
from bot.handlers import build_router
from bot.menu import build_menu, click_keys
from bot.router import Router
from bot.service import BotService
from fakes.wechat import FakeWeChatState
from fakes.wechat.simulator import event_xml, text_xml
from server import keys


def test_router_dispatches_without_http() -> None:
    router = Router()
    seen: list[str] = []

    @router.text
    async def text(message: BaseMessage, ctx: Any) -> str:
        seen.append("text")
        return "t:" + message.content

    @router.event("subscribe")
    async def subscribe(message: BaseMessage, ctx: Any) -> str:
        return "welcome"

    @router.click("A")
    async def click_a(message: BaseMessage, ctx: Any) -> str:
        return "a"

    @router.click("KB:", prefix=True)
    async def click_kb(message: BaseMessage, ctx: Any) -> str:
        return "kb"

    async def run() -> list[str | None]:
        return [
            await router.get_reply(parse_message(text_xml("hi", openid="o")), None),
            await router.get_reply(parse_message(event_xml("subscribe", openid="o")), None),
            await router.get_reply(parse_message(event_xml("CLICK", openid="o", key="A")), None),
            await router.get_reply(parse_message(event_xml("CLICK", openid="o", key="KB:x")), None),
            await router.get_reply(parse_message(event_xml("CLICK", openid="o", key="B")), None),
            await router.get_reply(parse_message(event_xml("VIEW", openid="o", key="u")), None),
        ]

    assert asyncio.run(run()) == ["t:hi", "welcome", "a", "kb", None, None]


def test_every_menu_click_has_a_handler_and_an_answer() -> None:
    from bot.nlu import KnowledgeBase

    router, kb = build_router(), KnowledgeBase.load()
    menu = build_menu(miniprogram_appid="wx", miniprogram_path="p")
    for key in click_keys(menu):
        handler = router.resolve(parse_message(event_xml("CLICK", openid="o", key=key)))
        assert handler is not None and handler.__name__ != "on_other", key
        if key.startswith("KB:"):
            kb.get(key[3:])  # raises KeyError for a stale intent id


def _with_router(bot: BotService, router: Router, **config: Any) -> BotService:
    return BotService(
        config=replace(bot.config, **config),
        codec=bot.codec,
        kb=bot.kb,
        router=router,
        redis=bot.redis,
        pii=bot.pii,
        wechat=bot.wechat,
    )


def _slow_router(delay: float, calls: list[str]) -> Router:
    router = Router()

    @router.text
    async def slow(message: BaseMessage, ctx: Any) -> str:
        calls.append(message.content)
        await asyncio.sleep(delay)
        return f"答:{message.content}"

    return router


async def test_a_retry_during_a_slow_answer_gets_the_same_answer(bot: BotService) -> None:
    """Three deliveries of one message reach three workers (separate BotServices, as in
    separate processes, sharing only Redis): computed once, the same reply thrice."""
    calls: list[str] = []
    workers = [_with_router(bot, _slow_router(0.3, calls)) for _ in range(3)]
    xml = text_xml("慢问题", openid="oa-xena", msg_id=31337)
    replies = await asyncio.gather(*(w.answer(parse_message(xml)) for w in workers))
    for worker in workers:
        await worker.close()
    assert calls == ["慢问题"]
    assert replies[0] is not None and "答:慢问题" in replies[0]
    assert len(set(replies)) == 1


async def test_over_budget_answers_success_then_sends_a_customer_service_message(
    bot: BotService, wechat_state: FakeWeChatState
) -> None:
    calls: list[str] = []
    slow = _with_router(bot, _slow_router(0.3, calls), reply_budget_seconds=0.05)
    xml = text_xml("慢问题", openid="oa-yuri", msg_id=1)
    assert await slow.answer(parse_message(xml)) is None
    # A retry while it is still being computed: also nothing, and not computed again.
    assert await slow.answer(parse_message(xml)) is None
    await slow.drain()
    sent = wechat_state.sent_messages(kind="custom", openid="oa-yuri")
    assert [m["content"] for m in sent] == ["答:慢问题"]
    assert calls == ["慢问题"]


async def _follower_wrote(redis: Any, openid: str) -> None:
    pipe = redis.pipeline()
    CustomerService.open_window(pipe, openid)
    await pipe.execute()


async def test_customer_service_respects_the_quota_and_wechat_refusals(
    bot: BotService, app: Application, wechat_state: FakeWeChatState
) -> None:
    redis = app[keys.redis_key]
    cs = bot.customer_service
    assert cs is not None
    # No interaction yet: no window, nothing sent.
    assert not await cs.send("oa-zoe", "x")
    await _follower_wrote(redis, "oa-zoe")
    results = [await cs.send("oa-zoe", f"m{i}") for i in range(QUOTA + 2)]
    assert results == [True] * QUOTA + [False, False]
    assert len(wechat_state.sent_messages(kind="custom", openid="oa-zoe")) == QUOTA

    # 45015: the window closed on WeChat's side — stop trying until the follower writes.
    await _follower_wrote(redis, "oa-zoe")
    wechat_state.inject("/cgi-bin/message/custom/send", 45015)
    assert not await cs.send("oa-zoe", "late")
    assert not await cs.send("oa-zoe", "later")
    assert await redis.get(CustomerService.key("oa-zoe")) is None

    # 45047: WeChat counted the quota as used up.
    await _follower_wrote(redis, "oa-zoe")
    wechat_state.inject("/cgi-bin/message/custom/send", 45047)
    assert not await cs.send("oa-zoe", "one")
    assert not await cs.send("oa-zoe", "two")
    sent = [m["content"] for m in wechat_state.sent_messages(kind="custom", openid="oa-zoe")]
    assert "two" not in sent and "later" not in sent

    # A transient error does not use up a unit.
    await _follower_wrote(redis, "oa-zoe")
    wechat_state.inject("/cgi-bin/message/custom/send", -1)
    assert not await cs.send("oa-zoe", "busy")
    assert int(await redis.get(CustomerService.key("oa-zoe"))) == 0


async def test_a_handler_error_is_an_apology_not_a_crash(bot: BotService) -> None:
    router = Router()

    @router.text
    async def broken(message: BaseMessage, ctx: Any) -> str:
        raise RuntimeError("boom")

    reply = await _with_router(bot, router).answer(parse_message(text_xml("?", openid="oa-a")))
    assert reply is not None and "稍后再试" in reply


async def test_redis_down_gets_a_short_apology_not_a_500(bot: BotService) -> None:
    from redis.asyncio import Redis

    router = build_router()
    down = Redis.from_url("redis://127.0.0.1:1")  # nothing listens
    worker = BotService(
        config=bot.config, codec=bot.codec, kb=bot.kb, router=router,
        redis=down, pii=bot.pii, wechat=bot.wechat,
        batch_redis=RedisBatcher.dedicated_client("redis://127.0.0.1:1"),  # as in production
    )
    try:
        # within the reply budget: WeChat must not time out waiting for the apology
        reply = await asyncio.wait_for(
            worker.answer(parse_message(text_xml("怎么解绑", openid="oa-b"))),
            bot.config.reply_budget_seconds,
        )
    finally:
        await worker.close()
        await down.aclose()
    assert reply is not None and "系统繁忙" in reply


async def test_a_redis_that_never_answers_gets_the_apology_within_the_budget(
    bot: BotService,
) -> None:
    """A Redis that accepts connections and then says nothing (frozen, a black hole): the
    claim is bounded by the reply budget — the follower reads "系统繁忙" before WeChat's
    5 s run out (issue #15: 5.0 s before, the batcher's own deadline)."""
    from redis.asyncio import Redis

    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # held open, never answered

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    url = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    hung = Redis.from_url(url)
    worker = BotService(
        config=replace(bot.config, reply_budget_seconds=0.3), codec=bot.codec, kb=bot.kb,
        router=build_router(), redis=hung, pii=bot.pii, wechat=bot.wechat,
        batch_redis=RedisBatcher.dedicated_client(url),
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        reply = await worker.answer(parse_message(text_xml("怎么解绑", openid="oa-hung")))
        elapsed = loop.time() - started
    finally:
        await worker.close()
        await hung.aclose()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
    assert reply is not None and "系统繁忙" in reply
    assert accepted  # it did reach the silent server
    assert 0.3 <= elapsed < 1.0, elapsed


async def test_claims_survive_a_flushed_redis_script_cache(bot: BotService) -> None:
    """The claim goes by EVALSHA once Redis has the script; after SCRIPT FLUSH (or a Redis
    restart) the next push is still answered once, and a retry still deduplicated."""
    first = await bot.answer(parse_message(text_xml("菜单", openid="oa-zed", msg_id=41)))
    assert first is not None and bot._claim_cached
    await bot.redis.script_flush()
    xml = text_xml("菜单", openid="oa-zed", msg_id=42)
    reply = await bot.answer(parse_message(xml))
    assert reply is not None and "常见问题" in reply
    assert await bot.answer(parse_message(xml)) == reply  # the retry: the stored reply
