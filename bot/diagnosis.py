"""Personalised diagnosis: "your binding of 张*华 on 11月20日 failed because ...".

A follower is the same person as a mini-program user when their unionids match. The
follower's unionid is learnt off the reply path (subscribe → user/info, see
``bot.followers``) and kept in ``OfficialFollower``; here we only read our own database:
OfficialFollower → User (by unionid) → that user's latest application that failed or
waits for review within ``diagnosis_days`` (SPEC.md "The bot": "the answer names that
attempt and its actual reason").

The follower → user link (the first two lookups) is kept briefly in ``Links``: an openid's
unionid and a unionid's user never change once known, so a found link is reused for five
minutes; "not linked yet" is asked again after ten seconds. The applications are always
read fresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from cryptography.exceptions import InvalidTag

from bot.nlu import KnowledgeBase
from server.domain.models import Application, ApplicationEvent, OfficialFollower, User
from server.domain.pii import PiiCipher, mask_name

__all__ = ["Attempt", "Diagnosis", "Links", "diagnose", "explain"]

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


class Links:
    """Follower → mini-program user, per process: ``(unionid known, user id or None)``."""

    def __init__(self, *, ttl: float = 300.0, unlinked_ttl: float = 10.0,
                 max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.unlinked_ttl = unlinked_ttl
        self.max_entries = max_entries
        self._clock = clock
        self._links: dict[str, tuple[float, bool, int | None]] = {}

    def get(self, openid: str) -> tuple[bool, int | None] | None:
        entry = self._links.get(openid)
        if entry is None:
            return None
        expires, unionid_known, user_id = entry
        if expires <= self._clock():
            del self._links[openid]
            return None
        return unionid_known, user_id

    def put(self, openid: str, unionid_known: bool, user_id: int | None) -> None:
        if len(self._links) >= self.max_entries:
            self._links.clear()  # rare (that many followers asking within minutes): start over
        ttl = self.ttl if user_id is not None else self.unlinked_ttl
        self._links[openid] = (self._clock() + ttl, unionid_known, user_id)

    def forget(self, openid: str) -> None:
        """The follower was (re)learnt or unsubscribed in this process: look again."""
        self._links.pop(openid, None)


async def _link(openids: list[str], links: Links | None) -> dict[str, tuple[bool, int | None]]:
    """OfficialFollower → User (by unionid, the newest) for each follower."""
    out: dict[str, tuple[bool, int | None]] = {}
    missing: list[str] = []
    for openid in openids:
        cached = links.get(openid) if links is not None else None
        if cached is None:
            missing.append(openid)
        else:
            out[openid] = cached
    if not missing:
        return out
    # values_list, not .only(): Tortoise builds a model class per .only() call (~2 ms).
    unionid_of: dict[str, str] = {}
    for openid, unionid in await OfficialFollower.filter(oa_openid__in=missing).values_list(
        "oa_openid", "unionid"
    ):
        if unionid and openid not in unionid_of:
            unionid_of[openid] = unionid
    user_of: dict[str, int] = {}  # the newest user with that unionid
    if unionid_of:
        for unionid, user_id in await User.filter(
            unionid__in=sorted(set(unionid_of.values()))
        ).values_list("unionid", "id"):
            if user_id > user_of.get(unionid, -1):
                user_of[unionid] = user_id
    for openid in missing:
        unionid = unionid_of.get(openid)
        link = (unionid is not None, user_of.get(unionid) if unionid is not None else None)
        out[openid] = link
        if links is not None:
            links.put(openid, *link)
    return out


async def diagnose(
    oa_openids: Sequence[str], *, pii: PiiCipher, days: int = 30, now: datetime | None = None,
    links: Links | None = None,
) -> dict[str, Diagnosis]:
    """For each follower: OfficialFollower → User (by unionid, the newest) → that user's
    latest failed or pending-review application within ``days``.

    Batched (bot.batching.Coalescer): three queries for any number of followers, not three
    per follower. On SQLite every query holds the one connection's lock for a thread hop
    and two event-loop turns, so per-follower queries queued behind each other under load
    (p99 ≈ 0.2 s on bench/scenario_bot.py)."""
    openids = list(dict.fromkeys(oa_openids))
    link_of = await _link(openids, links)
    out = {openid: Diagnosis(known, None) for openid, (known, _) in link_of.items()}
    user_ids = sorted({user_id for _, user_id in link_of.values() if user_id is not None})
    if not user_ids:
        return out
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    latest: dict[int, Application] = {}
    for app in await Application.filter(
        binder_id__in=user_ids,
        state__in=(FAILED, PENDING_REVIEW),
        updated_at__gte=since,
    ).order_by("-updated_at", "-id"):
        latest.setdefault(app.binder_id, app)
    attempts: dict[int, Attempt] = {}
    for binder_id, app in latest.items():
        attempts[binder_id] = await _attempt(app, pii)
    for openid, (_, user_id) in link_of.items():
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
