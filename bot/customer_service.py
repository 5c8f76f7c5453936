"""Customer-service messages (客服消息) within WeChat's limits.

The only way to answer after the passive-reply window: allowed within 48 hours after
the follower last wrote (or clicked a menu, or subscribed), at most 5 messages in that
window; beyond it WeChat answers 45015 (out of time) or 45047 (out of count) —
客服消息下发规则. The window and its count live in Redis (``bot:cs:<openid>``, TTL 48 h),
so every process sees the same quota; a send first takes one unit atomically.
"""

from __future__ import annotations

import logging
from typing import Any

from server.gateways.token_cache import TokenCache
from server.gateways.wechat import WeChatError, WeChatGateway
from server.redis_client import tag

__all__ = ["CustomerService", "WINDOW_SECONDS", "QUOTA"]

log = logging.getLogger(__name__)

WINDOW_SECONDS = 48 * 3600
QUOTA = 5

# -1: no open window, -2: quota used up, else the number of units taken so far.
_TAKE = """
local used = redis.call('GET', KEYS[1])
if not used then return -1 end
if tonumber(used) >= tonumber(ARGV[1]) then return -2 end
return redis.call('INCR', KEYS[1])
"""


class CustomerService:
    """Sends customer-service text messages, never beyond the window or the quota."""

    def __init__(
        self,
        redis: Any,
        gateway: WeChatGateway,
        tokens: TokenCache,
    ) -> None:
        self._redis = redis
        self._gateway = gateway
        self._tokens = tokens

    @staticmethod
    def key(openid: str) -> str:
        return f"bot:cs:{tag(openid)}"  # the bot's claim script touches it (one slot)

    @classmethod
    def open_window(cls, pipe: Any, openid: str) -> None:
        """Queue on a pipeline: the follower just interacted — a fresh 48 h window, 0 used."""
        pipe.set(cls.key(openid), 0, ex=WINDOW_SECONDS)

    async def send(self, openid: str, text: str) -> bool:
        """Send one message if the window and quota allow; True when WeChat accepted it."""
        key = self.key(openid)
        taken = int(await self._redis.eval(_TAKE, 1, key, QUOTA))
        if taken < 0:
            why = "no window" if taken == -1 else "quota used"
            log.info("customer-service message not sent: %s", why)
            return False
        token = await self._tokens.get()
        for attempt in range(2):
            try:
                await self._gateway.send_custom_text(token, openid=openid, content=text)
                return True
            except WeChatError as exc:
                if exc.token_invalid and attempt == 0:
                    token = await self._tokens.invalidate(token)  # one retry, shared refresh
                    continue
                if exc.errcode == 45015:  # window closed (or unsubscribed): stop trying
                    await self._redis.delete(key)
                elif exc.errcode == 45047:  # WeChat counted more than we did: quota is gone
                    await self._redis.set(key, QUOTA, keepttl=True, xx=True)
                elif exc.transient:  # not delivered: the unit is not used
                    await self._redis.decr(key)
                log.warning("customer-service message failed: errcode=%s", exc.errcode)
                return False
        return False
