"""What the bot says: text questions, menu clicks and events, registered on a Router.

Every handler gets the parsed wechatpy message and the ``BotService`` (knowledge base,
dialogue, Redis, database through the models) and answers text or None. None of them
calls WeChat on the reply path; what needs WeChat is handed to ``bot.spawn``.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import TYPE_CHECKING

from wechatpy.messages import BaseMessage

from bot import diagnosis, followers
from bot.menu import KB_PREFIX
from bot.router import Router, is_event

if TYPE_CHECKING:
    from bot.service import BotService, Turn

__all__ = ["build_router", "topics_text", "fallback_text"]

log = logging.getLogger(__name__)

# An 18-digit (or old 15-digit) ID number anywhere in a message: never echoed, never
# logged; the follower is told not to send it.
_ID_NUMBER_RE = re.compile(r"(?<![0-9])(\d{17}[\dXx]|\d{15})(?![0-9Xx])")
_MENU_WORDS = frozenset({"菜单", "帮助", "目录", "help", "menu", "?", "？", "常见问题"})
_TOPIC_NUMBER_RE = re.compile(r"^\s*(\d{1,2})\s*$")
_PRIVACY = "⚠️为保护您的隐私,请不要在公众号里发送身份证号码。"
_TROUBLESHOOT_INTRO = "绑定失败有多种原因,我帮您一步步排查:"


def topics_text(bot: BotService, head: str = "您可以回复数字查看常见问题:") -> str:
    lines = [head]
    lines += [f"{i}. {intent.title}" for i, intent in enumerate(bot.kb.topics(), 1)]
    return "\n".join(lines)


def fallback_text(bot: BotService) -> str:
    return topics_text(bot, "抱歉,我没太明白您的问题,可以换个说法再问我。或回复数字查看:")


async def personal_answer(bot: BotService, openid: str) -> str | None:
    """The follower's own recent failed / pending binding, explained (None: none known)."""
    known = await bot.diagnoses.get(openid)
    if not known.unionid_known:
        learn_in_background(bot, openid)
        return None
    return diagnosis.explain(known.attempt, bot.kb) if known.attempt is not None else None


def learn_in_background(bot: BotService, openid: str) -> None:
    """Look the follower's unionid up off the reply path (a follower from before the bot
    existed never sent us a subscribe event); at most once a day per follower."""
    if bot.wechat is None:
        return

    async def learn() -> None:
        if await bot.redis.set(f"bot:learn:{openid}", 1, nx=True, ex=86_400):
            assert bot.wechat is not None
            await followers.learn_follower(
                gateway=bot.wechat, access_token=bot.access_token, oa_openid=openid
            )
            bot.links.forget(openid)

    bot.spawn(learn())


async def troubleshoot(bot: BotService, openid: str) -> str:
    """Personal diagnosis when we know the attempt; guided questions when we do not."""
    personal = await personal_answer(bot, openid)
    if personal is not None:
        return personal
    return await bot.dialogue.start(openid, intro=_TROUBLESHOOT_INTRO)


async def on_text(message: BaseMessage, turn: Turn) -> str | None:
    """A question. In order: an open troubleshooting dialogue, "菜单", a topic number,
    then intent matching; a binding failure without a known reason starts the dialogue."""
    bot = turn.bot
    openid = message.source
    text = unicodedata.normalize("NFKC", str(getattr(message, "content", "") or ""))
    warning = ""
    if _ID_NUMBER_RE.search(text):
        text = _ID_NUMBER_RE.sub("身份证号", text)
        warning = _PRIVACY + "\n"

    in_dialogue = await bot.dialogue.step(openid, text, node_id=turn.dialogue_node)
    if in_dialogue is not None:
        return warning + in_dialogue
    word = text.strip().lower()
    if word in _MENU_WORDS:
        return warning + topics_text(bot)
    number = _TOPIC_NUMBER_RE.match(word)
    if number is not None:
        topics = bot.kb.topics()
        n = int(number.group(1))
        if 1 <= n <= len(topics):
            return warning + await answer_intent(bot, openid, topics[n - 1].id)
        return warning + fallback_text(bot)

    match = bot.match(text)
    if match is None:
        return warning + fallback_text(bot)
    return warning + await answer_intent(bot, openid, match.intent.id)


async def answer_intent(bot: BotService, openid: str, intent_id: str) -> str:
    if intent_id == "bind_fail_general":
        return await troubleshoot(bot, openid)
    return bot.kb.render(bot.kb.get(intent_id))


async def on_subscribe(message: BaseMessage, turn: Turn) -> str:
    """Welcome + topics; remember the follower and learn their unionid in the background
    (user/info is an outbound call: never on the reply path)."""
    bot = turn.bot
    openid = message.source

    async def remember_and_learn() -> None:
        unionid = None
        if bot.wechat is not None:
            unionid = await followers.learn_follower(
                gateway=bot.wechat, access_token=bot.access_token, oa_openid=openid
            )
        if unionid is None:  # WeChat unreachable or no unionid: still a follower
            await followers.remember(oa_openid=openid, unionid=None, subscribed=True)
        bot.links.forget(openid)

    bot.spawn(remember_and_learn())
    return topics_text(
        bot,
        "欢迎关注亲情医保!我可以解答亲情账户绑定、激活、使用、解绑和家庭共济的问题,"
        "绑定失败时还能帮您查原因。直接发问题给我,或回复数字:",
    )


async def on_unsubscribe(message: BaseMessage, turn: Turn) -> None:
    """No reply is possible; forget the dialogue, mark the follower (push stops)."""
    bot = turn.bot
    await bot.dialogue.end(message.source)
    await followers.remember(oa_openid=message.source, unionid=None, subscribed=False)
    bot.links.forget(message.source)
    return None


async def on_click_troubleshoot(message: BaseMessage, turn: Turn) -> str:
    return await troubleshoot(turn.bot, message.source)


async def on_click_topics(message: BaseMessage, turn: Turn) -> str:
    return topics_text(turn.bot)


async def on_click_intent(message: BaseMessage, turn: Turn) -> str:
    bot = turn.bot
    intent_id = str(getattr(message, "key", ""))[len(KB_PREFIX):]
    try:
        return await answer_intent(bot, message.source, intent_id)
    except KeyError:  # a menu published with a key this version does not know
        return topics_text(bot)


async def on_view(message: BaseMessage, turn: Turn) -> None:
    return None  # WeChat opens the page; nothing to say


async def on_template_finished(message: BaseMessage, turn: Turn) -> None:
    """Delivery receipt of a template message: mark the notice delivered / failed."""
    await followers.template_finished(
        msgid=int(getattr(message, "id", 0) or 0),
        status=str(getattr(message, "status", "")),
        redis=turn.bot.redis,
    )
    return None


async def on_other(message: BaseMessage, turn: Turn) -> str | None:
    """Images, voice, locations: ask for text. Events we do not know: nothing."""
    bot = turn.bot
    if is_event(message):
        return None
    return topics_text(bot, "目前我只能看懂文字消息,请把问题用文字发给我,或回复数字:")


def build_router() -> Router:
    """The bot's dispatch table."""
    router = Router()
    router.text(on_text)
    router.event("subscribe")(on_subscribe)
    router.event("unsubscribe")(on_unsubscribe)
    router.event("view")(on_view)
    router.event("templatesendjobfinish")(on_template_finished)
    router.click("TROUBLESHOOT")(on_click_troubleshoot)
    router.click("TOPICS")(on_click_topics)
    router.click(KB_PREFIX, prefix=True)(on_click_intent)
    router.default(on_other)
    return router
