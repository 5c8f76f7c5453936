"""Personalised diagnosis: "your binding of 张*华 on 11月20日 failed because ...".

A follower is the same person as a mini-program user when their unionids match. The
follower's unionid is learnt off the reply path (subscribe → user/info, see
``bot.followers``) and kept in ``OfficialFollower``; here we only read our own database:
OfficialFollower → User (by unionid) → that user's latest application that failed or
waits for review within ``diagnosis_days`` (SPEC.md "The bot": "the answer names that
attempt and its actual reason").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidTag

from bot.nlu import KnowledgeBase
from server.domain.models import Application, ApplicationEvent, OfficialFollower, User
from server.domain.pii import PiiCipher, mask_name

__all__ = ["Attempt", "Diagnosis", "diagnose", "explain"]

SHANGHAI = ZoneInfo("Asia/Shanghai")
FAILED = "failed"
PENDING_REVIEW = "pending_review"


@dataclass(frozen=True)
class Attempt:
    """A recent binding attempt worth talking about."""

    state: str  # failed | pending_review
    member_masked: str
    at: datetime  # when it was submitted (or created), UTC
    failure_code: str | None
    failure_message: str | None


@dataclass(frozen=True)
class Diagnosis:
    """What we know about one follower: whether their unionid is learnt, and the attempt."""

    unionid_known: bool
    attempt: Attempt | None


async def diagnose(
    oa_openids: Sequence[str], *, pii: PiiCipher, days: int = 30, now: datetime | None = None
) -> dict[str, Diagnosis]:
    """For each follower: OfficialFollower → User (by unionid, the newest) → that user's
    latest failed or pending-review application within ``days``.

    Batched (bot.batching.Coalescer): three queries for any number of followers, not three
    per follower. On SQLite every query holds the one connection's lock for a thread hop
    and two event-loop turns, so per-follower queries queued behind each other under load
    (p99 ≈ 0.2 s on bench/scenario_bot.py)."""
    openids = list(dict.fromkeys(oa_openids))
    out = {openid: Diagnosis(False, None) for openid in openids}
    # values_list, not .only(): Tortoise builds a model class per .only() call (~2 ms).
    unionid_of: dict[str, str] = {}
    for openid, unionid in await OfficialFollower.filter(oa_openid__in=openids).values_list(
        "oa_openid", "unionid"
    ):
        if unionid and openid not in unionid_of:
            unionid_of[openid] = unionid
    if not unionid_of:
        return out
    for openid in unionid_of:
        out[openid] = Diagnosis(True, None)
    user_of: dict[str, int] = {}  # the newest user with that unionid
    for unionid, user_id in await User.filter(
        unionid__in=sorted(set(unionid_of.values()))
    ).values_list("unionid", "id"):
        if user_id > user_of.get(unionid, -1):
            user_of[unionid] = user_id
    if not user_of:
        return out
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    latest: dict[int, Application] = {}
    for app in await Application.filter(
        binder_id__in=sorted(set(user_of.values())),
        state__in=(FAILED, PENDING_REVIEW),
        updated_at__gte=since,
    ).order_by("-updated_at", "-id"):
        latest.setdefault(app.binder_id, app)
    attempts: dict[int, Attempt] = {}
    for binder_id, app in latest.items():
        attempts[binder_id] = await _attempt(app, pii)
    for openid, unionid in unionid_of.items():
        user_id = user_of.get(unionid)
        if user_id is not None:
            out[openid] = Diagnosis(True, attempts.get(user_id))
    return out


async def _attempt(app: Application, pii: PiiCipher) -> Attempt:
    code = app.failure_code
    if app.state == FAILED and not code:
        # The state history records the code of the transition into "failed".
        event = (
            await ApplicationEvent.filter(application_id=app.id, to_state=FAILED)
            .exclude(code=None)
            .order_by("-id")
            .first()
        )
        code = event.code if event is not None else None
    try:
        member = mask_name(pii.decrypt(app.member_name_enc, purpose="name"))
    except (InvalidTag, ValueError, KeyError):  # unreadable with the configured keys
        member = "家人"
    return Attempt(
        state=app.state,
        member_masked=member,
        at=app.submitted_at or app.created_at,
        failure_code=code,
        failure_message=app.failure_message,
    )


def explain(attempt: Attempt, kb: KnowledgeBase) -> str | None:
    """The personal answer for an attempt; None when we cannot say more than the FAQ."""
    day = attempt.at.astimezone(SHANGHAI)
    when = f"{day.month}月{day.day}日"
    if attempt.state == PENDING_REVIEW:
        return (
            f"您{when}为{attempt.member_masked}提交的亲情账户绑定申请正在人工审核中"
            "(材料需经办人员核对),审核结果会通过本公众号通知您,无需重复提交。\n"
            "进度可在小程序「我的-亲情账户-申请记录」查看。"
        )
    intent = kb.by_error_code(attempt.failure_code) if attempt.failure_code else None
    if intent is None:
        return None
    return (
        f"查到您{when}为{attempt.member_masked}提交的绑定没有成功,原因是「{intent.title}」。\n"
        f"{kb.render(intent)}"
    )
