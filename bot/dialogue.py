"""Guided binding-failure troubleshooting: a few numbered questions, state in Redis.

Used when a follower's binding failed and we do not know why (no recent failed
application of theirs on record). Each question has numbered choices; a choice leads to
another question or to a failure code, whose fix comes from the knowledge base. The state
(current question) lives under ``bot:dlg:<openid>`` with a TTL, so an abandoned dialogue
simply expires; "退出" (or 0) ends it at once, and any other non-number text leaves it
and is answered as a new question.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.nlu import KnowledgeBase
from server.redis_client import tag

__all__ = ["Dialogue", "Question", "TREE", "EXIT_WORDS", "NOT_READ", "NotRead"]

EXIT_WORDS = frozenset({"退出", "取消", "结束", "不用了", "算了", "0", "q", "quit", "exit"})


class NotRead:
    """The dialogue state was not read ahead (``step`` reads it itself)."""


NOT_READ = NotRead()


@dataclass(frozen=True)
class Question:
    text: str
    # (choice label, next question id or a failure code in UPPER_SNAKE)
    choices: tuple[tuple[str, str], ...]


# Causes from seed 000 「医保亲情账号绑定不了什么原因」 and SPEC.md's failure reasons
# (with API.md v1.1's FACE_CHECK_FAILED, MATERIALS_MISSING, MEMBER_NOT_INSURED); the order
# asks what the follower most likely saw first (new choices go last: followers' numbers
# stay what they were).
TREE: dict[str, Question] = {
    "start": Question(
        "绑定失败时,页面提示的是哪一类?",
        (
            ("信息不一致 / 查无此人", "INFO_MISMATCH"),
            ("家人未实名或医保码未激活", "MEMBER_NOT_ACTIVATED"),
            ("本人未完成实名认证", "BINDER_NOT_VERIFIED"),
            ("人数已满 / 次数上限", "limit"),
            ("缺少材料 / 材料被驳回", "materials"),
            ("系统繁忙,或没有具体提示", "who"),
            ("家人刷脸没通过", "FACE_CHECK_FAILED"),
            ("家人未参保或参保状态异常", "MEMBER_NOT_INSURED"),
        ),
    ),
    "limit": Question(
        "是哪一种上限?",
        (
            ("我已经绑定了5位家人", "MEMBER_LIMIT_REACHED"),
            ("这位家人本月已被2人绑定", "MONTHLY_BINDER_LIMIT"),
        ),
    ),
    "materials": Question(
        "是哪一种情况?",
        (
            ("给16岁以下孩子绑定,提示缺材料", "MINOR_DOCUMENTS_MISSING"),
            ("16岁及以上的家人,提示缺少材料", "MATERIALS_MISSING"),
            ("审核没通过,或被要求补充材料", "MATERIALS_REJECTED"),
        ),
    ),
    "who": Question(
        "要绑定的家人是您的?",
        (
            ("父母或配偶", "verified"),
            ("子女", "child_age"),
            ("孙子女、兄弟姐妹等其他亲属", "RELATIONSHIP_NOT_ALLOWED"),
        ),
    ),
    "child_age": Question(
        "孩子多大?",
        (("16岁以下", "MINOR_DOCUMENTS_MISSING"), ("16岁及以上", "verified")),
    ),
    "verified": Question(
        "您本人已在小程序完成实名认证并激活了自己的医保码吗?",
        (("已完成", "member_active"), ("没有或不确定", "BINDER_NOT_VERIFIED")),
    ),
    # an unactivated voucher is no blocker where 代激活 is on (SPEC.md): ask about the
    # insurance itself instead
    "member_active": Question(
        "这位家人现在正常参保吗(没有停保、断缴)?",
        (("正常参保", "info"), ("停保、断缴或不确定", "MEMBER_NOT_INSURED")),
    ),
    "info": Question(
        "填写的姓名、身份证号,和家人身份证原件逐字核对过吗?",
        (("核对过,完全一致", "SYSTEM_BUSY"), ("没有核对过", "INFO_MISMATCH")),
    ),
}

_NUMBER_RE = re.compile(r"^\s*(\d{1,2})\s*$")


def _is_code(target: str) -> bool:
    return target.isupper()


class Dialogue:
    """One follower's troubleshooting dialogue, kept in Redis. ``run`` executes one raw
    Redis command (``RedisBatcher.run``: the dialogue's reads and writes share the reply
    path's round trips)."""

    def __init__(self, run: Callable[..., Awaitable[Any]], kb: KnowledgeBase, *,
                 ttl_seconds: int = 600) -> None:
        self._run = run
        self._kb = kb
        self._ttl = ttl_seconds
        for node in TREE.values():  # a broken tree is a programming error: fail at start
            for _, target in node.choices:
                if _is_code(target):
                    if kb.by_error_code(target) is None:
                        raise ValueError(f"troubleshooting outcome {target} has no intent")
                elif target not in TREE:
                    raise ValueError(f"troubleshooting step {target} is not defined")

    @staticmethod
    def key(openid: str) -> str:
        return f"bot:dlg:{tag(openid)}"  # the bot's claim script reads it (one slot)

    async def start(self, openid: str, *, intro: str = "") -> str:
        """Begin (or restart) the dialogue; answers the first question."""
        await self._run("SET", self.key(openid), "start", "EX", self._ttl)
        head = intro or "我来帮您一步步排查绑定失败的原因。"
        return f"{head}\n{self._ask('start')}"

    async def active(self, openid: str) -> str | None:
        """The current question id, or None when there is no dialogue."""
        return self.decode(await self._run("GET", self.key(openid)))

    @staticmethod
    def decode(raw: bytes | str | None) -> str | None:
        """The question id from a raw Redis value (read ahead in a pipeline)."""
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def end(self, openid: str) -> None:
        await self._run("DEL", self.key(openid))

    async def step(
        self, openid: str, text: str, *, node_id: str | None | NotRead = NOT_READ
    ) -> str | None:
        """Answer a message inside the dialogue; None when it is not one of ours
        (no dialogue, or a new question: the dialogue is left and the caller answers it).
        ``node_id``: the state when the caller read it ahead (None: no dialogue)."""
        if isinstance(node_id, NotRead):
            node_id = await self.active(openid)
        if node_id is None or node_id not in TREE:
            return None
        word = unicodedata.normalize("NFKC", text).strip().lower()
        if word in EXIT_WORDS:
            await self.end(openid)
            return "已结束排查。有其他问题可以直接发给我,回复“菜单”查看常见问题。"
        number = _NUMBER_RE.match(word)
        if number is None:
            await self.end(openid)
            return None
        node = TREE[node_id]
        choice = int(number.group(1))
        if not 1 <= choice <= len(node.choices):
            await self._run("EXPIRE", self.key(openid), self._ttl)
            return f"请回复 1-{len(node.choices)} 之间的数字。\n{self._ask(node_id)}"
        target = node.choices[choice - 1][1]
        if _is_code(target):
            await self.end(openid)
            intent = self._kb.by_error_code(target)
            assert intent is not None  # checked in __init__
            return f"排查结果:{intent.title}\n{self._kb.render(intent)}"
        await self._run("SET", self.key(openid), target, "EX", self._ttl)
        return self._ask(target)

    @staticmethod
    def _ask(node_id: str) -> str:
        node = TREE[node_id]
        lines = [node.text]
        lines += [f"{i}. {label}" for i, (label, _) in enumerate(node.choices, 1)]
        lines.append("回复数字选择,回复“退出”结束排查。")
        return "\n".join(lines)
