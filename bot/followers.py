"""Followers and push receipts: what the bot tells the push side.

The push feature owns follower records and notices (``server.push``): the bot
reports subscribes and TEMPLATESENDJOBFINISH receipts to it.

``learn_follower`` runs OFF the reply path (a background task): it asks WeChat's
user/info for the follower's unionid — the link to a mini-program user — and stores it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from server.gateways.wechat import WeChatError, WeChatGateway
from server.push.receipts import on_template_send_finished
from server.push.recipients import remember_follower

__all__ = ["learn_follower", "remember", "template_finished"]

log = logging.getLogger(__name__)

async def remember(*, oa_openid: str, unionid: str | None, subscribed: bool) -> None:
    """Record a follower (un)subscribing; a known unionid is kept when ``unionid`` is None."""
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
) -> str | None:
    """Ask WeChat for the follower's unionid and store it; returns it (None: unknown)."""
    try:
        info = await gateway.user_info(await access_token(), oa_openid)
    except WeChatError as exc:
        log.warning("user/info failed for a follower: errcode=%s", exc.errcode)
        return None
    unionid = info.get("unionid") or None
    subscribed = bool(info.get("subscribe", 1))
    await remember(oa_openid=oa_openid, unionid=unionid, subscribed=subscribed)
    return unionid
