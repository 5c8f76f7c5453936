"""Followers and push receipts: what the bot tells the push side.

Two seams into ``server.domain.delivery`` (the push feature owns follower records and
notices): ``remember_follower`` and ``on_template_send_finished``. While that module is
not there, the fallbacks below write the same rows (OfficialFollower, Notice) directly.

``learn_follower`` runs OFF the reply path (a background task): it asks WeChat's
user/info for the follower's unionid — the link to a mini-program user — and stores it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from server.domain.models import Notice, OfficialFollower
from server.gateways.wechat import WeChatError, WeChatGateway

__all__ = ["learn_follower", "remember", "template_finished"]

log = logging.getLogger(__name__)

# TEMPLATESENDJOBFINISH Status → (notice state, reason) (模板消息 事件推送 docs).
_TEMPLATE_STATUS: dict[str, tuple[str, str | None]] = {
    "success": ("delivered", None),
    "failed:user block": ("undeliverable", "用户拒收公众号消息"),
    "failed: system failed": ("failed", "微信系统原因发送失败"),
}


async def remember(*, oa_openid: str, unionid: str | None, subscribed: bool) -> None:
    """Record a follower (un)subscribing; a known unionid is kept when ``unionid`` is None."""
    try:
        from server.domain.delivery import remember_follower
    except ImportError:
        await _upsert_follower(oa_openid=oa_openid, unionid=unionid, subscribed=subscribed)
        return
    await remember_follower(oa_openid=oa_openid, unionid=unionid, subscribed=subscribed)


async def _upsert_follower(*, oa_openid: str, unionid: str | None, subscribed: bool) -> None:
    for _ in range(2):  # a concurrent insert of the same openid: update it on the retry
        try:
            async with in_transaction():
                row = await OfficialFollower.get_or_none(oa_openid=oa_openid).select_for_update()
                if row is None:
                    await OfficialFollower.create(
                        oa_openid=oa_openid, unionid=unionid, subscribed=subscribed
                    )
                    return
                row.subscribed = subscribed
                if unionid:
                    row.unionid = unionid
                await row.save(update_fields=["subscribed", "unionid", "updated_at"])
                return
        except IntegrityError:
            continue


async def template_finished(*, msgid: int, status: str) -> None:
    """WeChat reports the fate of a template message we sent (TEMPLATESENDJOBFINISH)."""
    try:
        from server.domain.delivery import on_template_send_finished
    except ImportError:
        state, reason = _TEMPLATE_STATUS.get(status, ("failed", f"微信返回:{status[:60]}"))
        await Notice.filter(wx_msgid=msgid, state="sent").update(state=state, reason=reason)
        return
    await on_template_send_finished(msgid=msgid, status=status)


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
