"""The dynamic 医保码 (qr_token) a binder shows for a member: short-lived and single use.

A token is ``v1.<random>``; what it stands for lives in Redis under the token's hash for
``TTL_SECONDS`` and is deleted atomically when an institution consumes it (GETDEL), so a
screenshot cannot be used twice and a token cannot be forged (it names nothing by itself).
Rules: SPEC.md "after binding" (show the member's dynamic 医保码) and "misuse" (the token
always pays as the member, never as the binder).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from redis.asyncio import Redis

from server.domain.errors import DomainError

TTL_SECONDS = 60


@dataclass(frozen=True)
class VoucherClaim:
    """Who a consumed token pays as (always the member) and who showed it."""

    member_id: int  # InsuredPerson.id
    binding_id: str | None  # the 亲情账户 binding it was shown through, if any
    shown_by_user_id: int
    issued_at: float


def _key(token: str) -> str:
    return "voucher:" + hashlib.sha256(token.encode()).hexdigest()


async def issue(
    redis: Redis, *, member_id: int, shown_by_user_id: int, binding_id: str | None = None
) -> tuple[str, datetime]:
    """Mint a token for ``member_id``; returns it and when it expires."""
    token = "v1." + secrets.token_urlsafe(24)
    now = time.time()
    claim = {"m": member_id, "b": binding_id, "u": shown_by_user_id, "t": now}
    await redis.set(_key(token), json.dumps(claim), ex=TTL_SECONDS)
    return token, datetime.fromtimestamp(now + TTL_SECONDS, tz=timezone.utc)


async def consume(redis: Redis, token: str) -> VoucherClaim:
    """Use a token once. Unknown, expired or already used → 409 VOUCHER_INVALID."""
    raw = await redis.getdel(_key(token)) if token.startswith("v1.") else None
    return _claim(raw)


async def peek(redis: Redis, token: str) -> VoucherClaim:
    """Whom a live token stands for, leaving it usable: a payment password is checked
    first (a wrong one must not cost the patient their 医保码), and a 2206 preview comes
    before the 2207 that consumes it. Unknown, expired or already used → 409
    VOUCHER_INVALID as :func:`consume`; only ``consume`` decides who gets to use it."""
    raw = await redis.get(_key(token)) if token.startswith("v1.") else None
    return _claim(raw)


def _claim(raw: bytes | str | None) -> VoucherClaim:
    if raw is None:
        raise DomainError("VOUCHER_INVALID", "医保码已失效或已使用,请让患者刷新医保码后重新扫码")
    data = json.loads(raw)
    return VoucherClaim(
        member_id=int(data["m"]), binding_id=data["b"], shown_by_user_id=int(data["u"]), issued_at=float(data["t"])
    )
