"""Factories for push tests: people reachable (or not) on WeChat, and notices addressed to them."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from server.domain.models import Notice, OfficialFollower, SubscriptionGrant, User
from server.push.worker import Worker

_seq = itertools.count(1)

DATA: dict[str, Any] = {
    "member_name": "张*华",
    "institution": "武汉市第一人民医院（汉口院区）门诊部特需专家诊室",  # longer than 20
    "setl_time": "2026-11-23T06:05:00+00:00",
    "med_type": "11",
    "medfee_fen": 12_345,
    "psn_part_amt_fen": 2_345,
    "acct_pay_fen": 10_000,
    "mulaid_fen": 10_000,
    "cash_fen": 0,
    "setl_id": "S20261123-0001",
}


async def make_user(
    name: str,
    *,
    follower: bool = False,
    grants: int = 0,
    template: str = "DEMO_MP_FAMILY_SETTLEMENT",
) -> User:
    """A mini-program user ``demo-<name>``; optionally an OA follower ``oa-<name>`` and grants."""
    user = await User.create(openid=f"demo-{name}", unionid=f"union-{name}")
    if follower:
        await OfficialFollower.create(
            oa_openid=f"oa-{name}", unionid=f"union-{name}", subscribed=True
        )
    if grants:
        await SubscriptionGrant.create(user=user, template_id=template, remaining=grants)
    return user


async def make_notice(user: User | None, *, kind: str = "family_settlement", **data: Any) -> Notice:
    n = next(_seq)
    return await Notice.create(
        recipient=user,
        kind=kind,
        dedupe_key=f"test:{uuid.uuid4()}:{n}",
        title="家人就医结算通知",
        data={**DATA, **data},
    )


async def make_notices(
    users: list[User], count: int, *, kind: str = "family_settlement"
) -> list[Notice]:
    rows = [
        Notice(
            id=uuid.uuid4(),
            recipient_id=users[i % len(users)].id,
            kind=kind,
            dedupe_key=f"bulk:{uuid.uuid4()}",
            title="家人就医结算通知",
            data=dict(DATA),
        )
        for i in range(count)
    ]
    await Notice.bulk_create(rows, batch_size=500)
    return rows


class MovedClock:
    """A clock tests move by hand (``Clock``: an aware UTC ``datetime``)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def move(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def worker(
    app: web.Application,
    *,
    concurrency: int = 8,
    clock: Callable[[], datetime] | None = None,
    backoff: Callable[[int], float] | None = None,
) -> Worker:
    extra: dict[str, Any] = {}
    if clock is not None:
        extra["clock"] = clock
    if backoff is not None:
        extra["backoff"] = backoff
    return Worker.from_app(
        app, concurrency=concurrency, worker_id=f"test-{next(_seq)}", **extra
    )


async def until(
    condition: Callable[[], Awaitable[bool] | bool], *, timeout: float = 10.0, what: str = ""
) -> None:
    """Wait for ``condition`` (checked every 10 ms, bounded by ``timeout``): the state a
    test waits on, not a guess of how long it takes."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = condition()
                if not isinstance(result, bool):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"still waiting after {timeout} s: {what or condition}") from None


def notice_id_of(message: dict[str, Any]) -> str:
    """The notice id a sent message links to (template: miniprogram.pagepath; subscribe: page)."""
    page = (message.get("miniprogram") or {}).get("pagepath") or message.get("page") or ""
    return page.rsplit("id=", 1)[-1]
