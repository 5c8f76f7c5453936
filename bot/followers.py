"""Followers and push receipts: what the bot tells the push side.

The push feature owns follower records and notices (``server.push``): the bot
reports subscribes and TEMPLATESENDJOBFINISH receipts to it.

``learn_follower`` runs OFF the reply path (a background task): it asks WeChat's
user/info for the follower's unionid — the link to a mini-program user — and stores it.

``FollowerBudget``: forged openids once made 400 user/info calls and 400 follower rows
(issue #17 finding 4). Look-ups and new rows spend a global budget per minute and per
hour (``[bot] user_info_per_*``, ``new_followers_per_*``); beyond it the push is still
answered, but nothing is looked up and no row is created.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from server.domain.models import OfficialFollower
from server.gateways.wechat import WeChatError, WeChatGateway
from server.push.receipts import on_template_send_finished
from server.push.recipients import remember_follower
from server.ratelimit import RateLimited, hit

__all__ = ["FollowerBudget", "learn_follower", "remember", "template_finished"]

log = logging.getLogger(__name__)


class _Limits(Protocol):
    @property
    def user_info_per_minute(self) -> int: ...
    @property
    def user_info_per_hour(self) -> int: ...
    @property
    def new_followers_per_minute(self) -> int: ...
    @property
    def new_followers_per_hour(self) -> int: ...


class FollowerBudget:
    """Global (every process, every follower) budgets for user/info and new follower rows."""

    def __init__(self, redis: Any, limits: _Limits) -> None:
        self.redis = redis
        self.limits = limits

    async def _spend(self, name: str, per_minute: int, per_hour: int) -> bool:
        try:
            await hit(self.redis, f"bot:budget:{name}:m", limit=per_minute, per_seconds=60)
            await hit(self.redis, f"bot:budget:{name}:h", limit=per_hour, per_seconds=3600)
        except RateLimited:
            log.warning("bot %s budget spent: skipped", name)
            return False
        return True

    async def lookup(self) -> bool:
        """One user/info call may be made (False: the budget is spent)."""
        return await self._spend(
            "user_info", self.limits.user_info_per_minute, self.limits.user_info_per_hour
        )

    async def new_row(self) -> bool:
        """One follower row may be created (False: the budget is spent)."""
        return await self._spend(
            "new_follower", self.limits.new_followers_per_minute, self.limits.new_followers_per_hour
        )


async def remember(
    *, oa_openid: str, unionid: str | None, subscribed: bool, budget: FollowerBudget
) -> None:
    """Record a follower (un)subscribing; a known unionid is kept when ``unionid`` is None.
    A follower we have no row for spends the new-row budget (spent: nothing is stored)."""
    if not await OfficialFollower.exists(oa_openid=oa_openid) and not await budget.new_row():
        return
    await remember_follower(oa_openid=oa_openid, unionid=unionid, subscribed=subscribed)


async def template_finished(*, msgid: int, status: str, redis: Any) -> None:
    """WeChat reports the fate of a template message we sent (TEMPLATESENDJOBFINISH);
    ``redis`` keeps a receipt that beat the worker's record of the send."""
    await on_template_send_finished(msgid=msgid, status=status, redis=redis)


async def learn_follower(
    *,
    gateway: WeChatGateway,
    access_token: Callable[[], Awaitable[str]],
    oa_openid: str,
    budget: FollowerBudget,
) -> str | None:
    """Ask WeChat for the follower's unionid and store it; returns it (None: unknown, or
    the look-up budget is spent)."""
    if not await budget.lookup():
        return None
    return await look_up(gateway=gateway, access_token=access_token, oa_openid=oa_openid, budget=budget)


async def look_up(
    *,
    gateway: WeChatGateway,
    access_token: Callable[[], Awaitable[str]],
    oa_openid: str,
    budget: FollowerBudget,
) -> str | None:
    """``learn_follower`` for a caller that has spent the look-up budget itself."""
    try:
        info = await gateway.user_info(await access_token(), oa_openid)
    except WeChatError as exc:
        log.warning("user/info failed for a follower: errcode=%s", exc.errcode)
        return None
    unionid = info.get("unionid") or None
    subscribed = bool(info.get("subscribe", 1))
    await remember(oa_openid=oa_openid, unionid=unionid, subscribed=subscribed, budget=budget)
    return unionid
