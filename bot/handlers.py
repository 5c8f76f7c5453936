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

__all__ = ["build_router", "fallback_text", "spoken", "topics_text"]

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
        key = f"bot:learn:{openid}"
        if await bot.redis.set(key, 1, nx=True, ex=86_400):
            if not await bot.budget.lookup():
                # the global budget is spent (a flood): not this follower's daily look-up,
                # which a later message may still make
                await bot.redis.delete(key)
                return
            assert bot.wechat is not None
            await followers.look_up(
                gateway=bot.wechat, access_token=bot.access_token, oa_openid=openid,
                budget=bot.budget,
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
    """A typed question (see ``answer_question``)."""
    text = unicodedata.normalize("NFKC", str(getattr(message, "content", "") or ""))
    return await answer_question(turn, message.source, text)


async def on_voice(message: BaseMessage, turn: Turn) -> str | None:
    """A spoken question: WeChat's speech recognition (``Recognition``, when the account
    has it switched on) is answered like typed text — many elderly followers only speak
    (SPEC.md "The bot"). No words recognised: say so kindly, and how else to ask."""
    heard = spoken(str(getattr(message, "recognition", "") or ""))
    if not heard:
        return turn.bot.kb.replies["voice_not_heard"].text
    return await answer_question(turn, message.source, heard)


# A spoken choice: "二", "第二个", "选2", "3号" → "2" / "3" (the menu and the dialogue take digits)
_CN_DIGITS = {"零": 0, "幺": 1, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
              "六": 6, "七": 7, "八": 8, "九": 9}
_SPOKEN_CHOICE_RE = re.compile(
    r"^(?:第|选|选择|我选)?([零幺一二两三四五六七八九十]{1,3}|\d{1,2})(?:个|号|项|条|个吧)?$"
)
# What recognition adds around words: punctuation, spaces, a filler at the start.
_SPOKEN_TRIM = "。，,.!！?？、~～ "
_FILLERS = ("嗯", "呃", "额", "啊", "那个", "就是", "喂")


def _cn_number(word: str) -> int | None:
    """1–99 written in Chinese numerals ("十二", "二十", "二十三"), else None."""
    if word.isdigit():
        return int(word)
    if "十" not in word:
        return _CN_DIGITS.get(word) if len(word) == 1 else None
    tens, _, units = word.partition("十")
    if (tens and tens not in _CN_DIGITS) or (units and units not in _CN_DIGITS):
        return None
    return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[units] if units else 0)


def spoken(text: str) -> str:
    """Recognised speech as a typed message: NFKC, trimmed of punctuation and a leading
    filler; a bare spoken number becomes digits ("第二个。" → "2") so it picks a topic or
    a troubleshooting choice like a typed one. Empty when nothing was recognised."""
    text = unicodedata.normalize("NFKC", text).strip(_SPOKEN_TRIM)
    for filler in _FILLERS:
        if text.startswith(filler) and len(text) > len(filler):
            text = text[len(filler):].lstrip(_SPOKEN_TRIM)
    choice = _SPOKEN_CHOICE_RE.match(text)
    if choice is not None:
        number = _cn_number(choice.group(1))
        if number is not None and 0 <= number <= 99:
            return str(number)
    return text


async def answer_question(turn: Turn, openid: str, text: str) -> str | None:
    """A question, typed or spoken. In order: an open troubleshooting dialogue, "菜单", a
    topic number, then intent matching; a binding failure without a known reason starts
    the dialogue."""
    bot = turn.bot
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


async def personal_refusal(bot: BotService, openid: str) -> str | None:
    """The follower's own recent refused 家庭共济 request, explained (None: none known)."""
    known = await bot.diagnoses.get(openid)
    if not known.unionid_known:
        learn_in_background(bot, openid)
        return None
    return diagnosis.explain_refusal(known.refusal, bot.kb) if known.refusal is not None else None


async def answer_intent(bot: BotService, openid: str, intent_id: str) -> str:
    """An intent's answer; "why did it fail" is answered personally when we know why."""
    if intent_id == "bind_fail_general":
        return await troubleshoot(bot, openid)
    if intent_id == "gongji_fail_general":
        personal = await personal_refusal(bot, openid)
        if personal is not None:
            return personal
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
                gateway=bot.wechat, access_token=bot.access_token, oa_openid=openid,
                budget=bot.budget,
            )
        if unionid is None:  # WeChat unreachable or no unionid: still a follower
            await followers.remember(
                oa_openid=openid, unionid=None, subscribed=True, budget=bot.budget
            )
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
    await followers.remember(
        oa_openid=message.source, unionid=None, subscribed=False, budget=bot.budget
    )
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
    """Images, videos, locations: ask for words. Events we do not know: nothing."""
    bot = turn.bot
    if is_event(message):
        return None
    return topics_text(bot, "目前我只能看懂文字和语音消息,请把问题打字或说给我,或回复数字:")


def build_router() -> Router:
    """The bot's dispatch table."""
    router = Router()
    router.text(on_text)
    router.message("voice")(on_voice)
    router.event("subscribe")(on_subscribe)
    router.event("unsubscribe")(on_unsubscribe)
    router.event("view")(on_view)
    router.event("templatesendjobfinish")(on_template_finished)
    router.click("TROUBLESHOOT")(on_click_troubleshoot)
    router.click("TOPICS")(on_click_topics)
    router.click(KB_PREFIX, prefix=True)(on_click_intent)
    router.default(on_other)
    return router
