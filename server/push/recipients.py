"""How a person can be reached: what the bot and the mini-program report to the push side.

* Official-account followers (bot subscribe / unsubscribe events, user/info): a follower
  whose unionid is a mini-program user's gets template messages.
* One-time subscribe grants (wx.requestSubscribeMessage results the mini-program posts):
  each ``accept`` is one subscribe message for that template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from server.domain.errors import DomainError
from server.domain.models import OfficialFollower, SubscriptionGrant
from server.push.config import PushConfig

__all__ = ["SUBSCRIBE_RESULTS", "record_subscription_results", "remember_follower"]

SUBSCRIBE_RESULTS = ("accept", "reject", "ban", "filter")


async def remember_follower(*, oa_openid: str, unionid: str | None, subscribed: bool) -> None:
    """Upsert an official-account follower (bot subscribe / unsubscribe events, user info).

    An unsubscribe event carries no unionid: the known one is kept.
    """
    values: dict[str, Any] = {"subscribed": subscribed}
    if unionid:
        values["unionid"] = unionid
    if await OfficialFollower.filter(oa_openid=oa_openid).update(**values):
        return
    try:
        await OfficialFollower.create(oa_openid=oa_openid, **values)
    except IntegrityError:  # created meanwhile by a concurrent event
        await OfficialFollower.filter(oa_openid=oa_openid).update(**values)


async def record_subscription_results(
    *, user_id: int, results: Mapping[str, str], config: PushConfig
) -> tuple[dict[str, int], list[str]]:
    """wx.requestSubscribeMessage results → one more one-time grant per ``accept``.

    ``ban`` (the user switched the template off) clears the grants; ``reject`` and
    ``filter`` change nothing. Keys that are not our templates (e.g. ``errMsg``) are
    ignored and listed. Returns (remaining per reported template, ignored keys).
    """
    ours = config.mp_templates()
    bad = {
        tid: "INVALID_SUBSCRIBE_RESULT"
        for tid, result in results.items()
        if tid in ours and result not in SUBSCRIBE_RESULTS
    }
    if bad:
        raise DomainError(
            "VALIDATION_FAILED", "订阅结果只能是 accept、reject、ban 或 filter", fields=bad
        )
    ignored = sorted(tid for tid in results if tid not in ours)
    grants: dict[str, int] = {}
    for tid, result in results.items():
        if tid not in ours:
            continue
        grant = SubscriptionGrant.filter(user_id=user_id, template_id=tid)
        if result == "accept":
            if not await grant.update(remaining=F("remaining") + 1):
                try:
                    await SubscriptionGrant.create(user_id=user_id, template_id=tid, remaining=1)
                except IntegrityError:
                    await grant.update(remaining=F("remaining") + 1)
        elif result == "ban":
            await grant.update(remaining=0)
        row = await grant.first()
        grants[tid] = row.remaining if row else 0
    return grants, ignored
