"""Who gets what: the channel of each notice, per attempt, and the subscribe grants it uses.

* An official-account follower with the recipient's unionid gets a template message;
* else a remaining one-time subscription for the kind's mini-program template gets a
  subscribe message (the grant is taken in the same transaction that records the channel,
  given back on a transient failure);
* else the notice ends ``undeliverable`` ("用户未关注公众号且未订阅消息").

A notice without a recipient ends ``undeliverable``; one of a kind without templates, or
whose message cannot be built from its data, ends ``failed``: every notice leaves the
queue with a state and a reason a person can read (GET /api/v1/notices).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from server.domain.models import Notice, OfficialFollower, SubscriptionGrant, User
from server.push.config import PushConfig
from server.push.templates import Unbuildable, build_data

__all__ = [
    "REASON_NO_RECIPIENT",
    "REASON_NO_TEMPLATE",
    "REASON_UNBUILDABLE",
    "REASON_UNREACHABLE",
    "Ending",
    "FollowerLookup",
    "Plan",
    "give_back_grants",
    "plan",
    "reserve_grants",
]

REASON_UNREACHABLE = "用户未关注公众号且未订阅消息"
REASON_NO_RECIPIENT = "通知没有接收人"
REASON_NO_TEMPLATE = "未配置该类通知的消息模板"
REASON_UNBUILDABLE = "通知内容无法生成消息"

#: unionid → official-account openid of a follower our table does not know (the embedded
#: demo's rule, wired by server.demo; never in production).
FollowerLookup = Callable[[str], str | None]


@dataclass
class Plan:
    """One send to make: a notice, its channel and the message."""

    notice: Notice
    channel: Literal["template", "subscribe"]
    openid: str
    template_id: str
    data: dict[str, str]
    grant_id: int | None = None


@dataclass(frozen=True)
class Ending:
    """A notice that ends here without a send: its final state and why."""

    notice: Notice
    state: Literal["failed", "undeliverable"]
    reason: str


async def plan(
    notices: Sequence[Notice],
    config: PushConfig,
    *,
    follower_fallback: FollowerLookup | None = None,
) -> tuple[list[Plan], list[Ending]]:
    """Choose each notice's channel in a few bulk queries; the ones that cannot be sent
    end here (see the module docstring)."""
    user_ids = {n.recipient_id for n in notices if n.recipient_id}
    users = {
        u["id"]: u for u in await User.filter(id__in=user_ids).values("id", "openid", "unionid")
    } if user_ids else {}
    unionids = {u["unionid"] for u in users.values() if u["unionid"]}
    followers: dict[str, str] = {}
    if unionids:
        for f in await OfficialFollower.filter(unionid__in=unionids, subscribed=True).values(
            "oa_openid", "unionid"
        ):
            followers[f["unionid"]] = f["oa_openid"]
    wanted = {
        config.kinds[n.kind].mp_template
        for n in notices
        if n.kind in config.kinds and config.kinds[n.kind].mp_template
    }
    grants: dict[tuple[int, str], int] = {}
    if wanted and user_ids:
        for g in await SubscriptionGrant.filter(
            user_id__in=user_ids, template_id__in=wanted, remaining__gt=0
        ).values("id", "user_id", "template_id"):
            grants[(g["user_id"], g["template_id"])] = g["id"]

    med_types = config.med_types
    plans: list[Plan] = []
    endings: list[Ending] = []
    for n in notices:
        user = users.get(n.recipient_id)
        templates = config.kinds.get(n.kind)
        if user is None:
            endings.append(Ending(n, "undeliverable", REASON_NO_RECIPIENT))
            continue
        if templates is None:
            endings.append(Ending(n, "failed", REASON_NO_TEMPLATE))
            continue
        unionid = user["unionid"]
        oa_openid = followers.get(unionid) if unionid else None
        if oa_openid is None and unionid and follower_fallback is not None:
            oa_openid = follower_fallback(unionid)
        try:
            if oa_openid and templates.oa_template:
                data = build_data(templates.oa_data, n.data, med_types=med_types)
                plans.append(Plan(n, "template", oa_openid, templates.oa_template, data))
                continue
            grant_id = grants.get((user["id"], templates.mp_template))
            if grant_id is not None:
                data = build_data(templates.mp_data, n.data, med_types=med_types)
                plans.append(
                    Plan(n, "subscribe", user["openid"], templates.mp_template, data, grant_id)
                )
                continue
        except Unbuildable:
            endings.append(Ending(n, "failed", REASON_UNBUILDABLE))
            continue
        endings.append(Ending(n, "undeliverable", REASON_UNREACHABLE))
    return plans, endings


async def reserve_grants(chunk: Sequence[Plan]) -> tuple[list[Plan], list[Ending]]:
    """Take one subscribe grant per subscribe plan, in the transaction that records the
    channel; a grant used up meanwhile makes the notice undeliverable."""
    ready: list[Plan] = []
    lost: list[Ending] = []
    for p in chunk:
        if p.channel != "subscribe":
            ready.append(p)
            continue
        async with in_transaction() as conn:
            taken = await SubscriptionGrant.filter(id=p.grant_id, remaining__gt=0).using_db(
                conn
            ).update(remaining=F("remaining") - 1)
            if taken:
                await Notice.filter(id=p.notice.id).using_db(conn).update(channel="subscribe")
        if taken:
            p.notice.channel = "subscribe"
            ready.append(p)
        else:
            lost.append(Ending(p.notice, "undeliverable", REASON_UNREACHABLE))
    return ready, lost


async def give_back_grants(failed: Iterable[tuple[int, int]]) -> None:
    """WeChat uses a one-time grant only on success: a failed subscribe send (grant id,
    errcode) gets its grant back, except 43101 (refused), which says WeChat holds none:
    ours are cleared."""
    for grant_id, errcode in failed:
        grant = SubscriptionGrant.filter(id=grant_id)
        if errcode == 43101:
            await grant.update(remaining=0)
        else:
            await grant.update(remaining=F("remaining") + 1)
