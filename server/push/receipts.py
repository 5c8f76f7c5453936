"""TEMPLATESENDJOBFINISH: WeChat's receipt for a template message we sent.

The bot's webhook receives the event (``bot.followers.template_finished``) and hands it
here; a subscribe message has no receipt (it is ``delivered`` once WeChat accepts it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from server.domain.clock import Clock, utc_now
from server.domain.models import Notice
from server.redis_client import mget

__all__ = [
    "EARLY_RECEIPT_TTL",
    "REASON_SYSTEM_FAILED",
    "REASON_USER_BLOCK",
    "apply_early_receipts",
    "on_template_send_finished",
]

log = logging.getLogger(__name__)

REASON_USER_BLOCK = "用户拒收"
REASON_SYSTEM_FAILED = "微信系统发送失败"

#: How long a receipt that came before its send was recorded is kept (seconds).
EARLY_RECEIPT_TTL = 3600


def _early_receipt_key(msgid: int) -> str:
    return f"push:receipt:{int(msgid)}"


def _receipt_values(status: str, msgid: int) -> dict[str, Any] | None:
    normalized = " ".join(status.lower().replace(":", ": ").split())
    if normalized == "success":
        return {"state": "delivered"}
    if "user block" in normalized:
        return {"state": "failed", "reason": REASON_USER_BLOCK}
    if normalized.startswith("failed"):
        return {"state": "failed", "reason": REASON_SYSTEM_FAILED}
    log.warning("TEMPLATESENDJOBFINISH with unknown status %r (msgid %s)", status, msgid)
    return None


async def on_template_send_finished(
    *, msgid: int, status: str, redis: Any = None, clock: Clock = utc_now
) -> bool:
    """TEMPLATESENDJOBFINISH: ``success`` → delivered; ``failed:user block`` → failed
    (用户拒收); ``failed: system failed`` → failed. Returns whether a notice changed.

    Only a ``sent`` notice moves: replays and late events change nothing. WeChat's receipt
    can arrive before the worker has written the send it reports (msgid and ``sent`` are
    stored when the send call returns): with ``redis``, a receipt for a msgid no notice
    carries yet is kept for an hour and applied by the worker right after it writes the
    send (:func:`apply_early_receipts`); the update is tried again after parking, so
    whichever side comes second applies it.
    """
    values = _receipt_values(status, msgid)
    if values is None:
        return False

    async def apply() -> bool:
        return bool(
            await Notice.filter(wx_msgid=msgid, state="sent").update(
                **values, updated_at=clock()
            )
        )

    if await apply():
        return True
    if redis is None or await Notice.filter(wx_msgid=msgid).exists():
        return False
    await redis.set(_early_receipt_key(msgid), status, ex=EARLY_RECEIPT_TTL)
    return await apply()


async def apply_early_receipts(
    redis: Any, msgids: Sequence[int], *, clock: Clock = utc_now
) -> int:
    """Receipts that came before the worker wrote their sends (see above): apply them."""
    if not msgids:
        return 0
    keys = [_early_receipt_key(m) for m in msgids]
    applied = 0
    for msgid, raw in zip(msgids, await mget(redis, keys), strict=True):
        if raw is None:
            continue
        status = raw.decode() if isinstance(raw, bytes) else str(raw)
        applied += await on_template_send_finished(msgid=msgid, status=status, clock=clock)
        await redis.delete(_early_receipt_key(msgid))
    return applied
