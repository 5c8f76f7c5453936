"""The worker's loop: outages (Redis, the database) it backs off from and recovers, the
leases it gives back when it stops, and time on the dispatcher's clock."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from fakes.wechat import P_TEMPLATE, FakeWeChatState
from server import keys
from server.app import create_app
from server.domain.models import Notice
from server.push.worker import outage_backoff
from server.redis_client import is_cluster_url
from server.settings import Settings
from tests.conftest import PG_URL, REDIS_URL, serving
from tests.push.conftest import FAST
from tests.push.factories import (
    MovedClock,
    make_notice,
    make_notices,
    make_user,
    notice_id_of,
    until,
    worker,
)
from tests.push.outage import EmbeddedRedisOutage, Outage, relayed


def test_outage_backoff_doubles_up_to_half_a_minute() -> None:
    assert [outage_backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


# ---- outages ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def redis_that_can_fail(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[web.Application, Outage]]:
    """The app on a Redis that a test can take away: real Redis through a relay, or the
    embedded store switched off."""
    if is_cluster_url(REDIS_URL):
        # the cluster client learns the nodes' own addresses and would go round a relay
        pytest.skip("a relay cannot cut a Redis Cluster (tests/reliability covers its nodes)")
    if REDIS_URL:
        async with relayed(REDIS_URL) as (url, relay):
            app = create_app(make_settings(**{**FAST, "redis.url": url}))
            async with serving(app):
                yield app, relay
    else:
        app = create_app(make_settings(**FAST))
        async with serving(app):
            yield app, await EmbeddedRedisOutage.of(app[keys.redis_key])


@contextlib.asynccontextmanager
async def database_that_can_fail(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[web.Application, Outage]]:
    """The app on a PostgreSQL reached through a relay that a test can cut."""
    async with relayed(PG_URL) as (url, relay):
        app = create_app(make_settings(**{**FAST, "database.url": url}))
        async with serving(app):
            yield app, relay


async def _outage_then_recovery(
    app: web.Application, outage: Outage, wechat_state: FakeWeChatState
) -> None:
    """Down before the worker starts: every round fails, each pause longer than the last
    (the lanes count their failures in a row); the loop survives, nothing is sent or
    lost; back up, every notice goes out exactly once."""
    users = [await make_user(f"o{i}", follower=True) for i in range(3)]
    await make_notices(users, 12)
    failures: list[int] = []
    third_in_a_row = asyncio.Event()

    def backoff(failed: int) -> float:
        failures.append(failed)
        if failed >= 3:
            third_in_a_row.set()
        return outage_backoff(failed) / 100  # the production curve, 100 × faster

    w = worker(app, backoff=backoff)
    stop = asyncio.Event()
    outage.cut()
    task = asyncio.create_task(w.run(stop))
    try:
        await asyncio.wait_for(third_in_a_row.wait(), timeout=10)
        assert not task.done()  # the loop is alive
        assert wechat_state.sent_counts["template"] == 0
        outage.restore()

        async def all_sent() -> bool:
            return await Notice.filter(state="sent").count() == 12

        await until(all_sent, what="delivery after the outage")
    finally:
        outage.restore()
        stop.set()
        await task
        await w.close()
    # per lane 1, 2, 3, …: the pause grew with every failure in a row
    for lane_count in (1, 2, 3):
        assert lane_count in failures
    counts = collections.Counter(notice_id_of(m) for m in wechat_state.sent_messages())
    assert len(counts) == 12 and set(counts.values()) == {1}
    assert await Notice.filter(attempts=1).count() == 12  # an outage costs no attempt


async def test_redis_outage_backs_off_and_recovers(
    make_settings: Callable[..., Settings], wechat_state: FakeWeChatState
) -> None:
    async with redis_that_can_fail(make_settings) as (app, outage):
        await _outage_then_recovery(app, outage, wechat_state)


@pytest.mark.skipif(not PG_URL, reason="an embedded SQLite file has no server to lose")
async def test_database_outage_backs_off_and_recovers(
    make_settings: Callable[..., Settings], wechat_state: FakeWeChatState
) -> None:
    async with database_that_can_fail(make_settings) as (app, outage):
        await _outage_then_recovery(app, outage, wechat_state)


# ---- leases -------------------------------------------------------------------------------


async def test_a_stopping_worker_gives_back_what_it_has_not_sent(
    app: web.Application, wechat_state: FakeWeChatState
) -> None:
    """Stopped mid-batch (SIGTERM, app shutdown): the chunk in flight finishes, the rest of
    its claim is given back at once — another worker claims it now, not when the 60 s
    lease ends — and nothing is sent twice."""
    users = [await make_user(f"g{i}", follower=True) for i in range(4)]
    await make_notices(users, 1)
    await _drain(app)  # the access token is cached: the sends are what we watch
    await make_notices(users, 40)
    a = worker(app, concurrency=4)
    a.dispatcher.config = dataclasses.replace(a.dispatcher.config, lanes=1)  # one claim of 40
    stop = asyncio.Event()
    wechat_state.configure(stall_seconds=0.05)
    task = asyncio.create_task(a.run(stop))
    try:
        await until(lambda: wechat_state.calls[P_TEMPLATE] >= 2, what="the first chunk")
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    finally:
        stop.set()
        wechat_state.configure(stall_seconds=0)
        await a.close()

    sent = await Notice.filter(state="sent").count()
    left = await Notice.filter(state="pending")
    assert 1 < sent < 41 and len(left) == 41 - sent
    assert all(
        (n.leased_by, n.lease_until, n.attempts) == (None, None, 0) for n in left
    ), "given back unsent, attempts unchanged"

    b = worker(app, concurrency=8)
    try:
        claimed, _ = await b.dispatcher.run_once()
        assert claimed == len(left)  # at once: no lease to wait out
        await b.drain(timeout=10)
    finally:
        await b.close()
    assert await Notice.filter(state="sent").count() == 41
    counts = collections.Counter(notice_id_of(m) for m in wechat_state.sent_messages())
    assert len(counts) == 41 and set(counts.values()) == {1}
    by = collections.Counter(await Notice.all().values_list("leased_by", flat=True))
    assert {a.dispatcher.worker_id, b.dispatcher.worker_id} <= set(by)


async def test_a_lease_about_to_run_out_is_given_back_unsent(
    app: web.Application, wechat_state: FakeWeChatState
) -> None:
    """Less than one send's budget left on the lease (the dispatcher's clock moved on):
    sending could outlive the lease and race its next owner, so the chunk goes back."""
    clock = MovedClock()
    user = await make_user("lena", follower=True)
    notices = [await make_notice(user) for _ in range(3)]
    w = worker(app, clock=clock)
    try:
        claimed = await w.dispatcher.claim(10)
        assert {n.id for n in claimed} == {n.id for n in notices}
        config = w.dispatcher.config
        clock.move(config.lease_seconds - config.send_budget_seconds)  # 4 s left, 5 needed
        await w.dispatcher.process(claimed)
    finally:
        await w.close()
    assert wechat_state.sent_messages() == []
    for n in await Notice.all():
        assert (n.state, n.attempts, n.leased_by, n.lease_until) == ("pending", 0, None, None)

    other = worker(app, clock=clock)  # the same time: it claims them at once
    try:
        assert (await other.dispatcher.run_once())[0] == 3
    finally:
        await other.close()
    assert await Notice.filter(state="sent").count() == 3


async def test_a_retry_comes_due_on_the_dispatchers_clock(
    app: web.Application, wechat_state: FakeWeChatState
) -> None:
    """A transient error schedules the retry 30–60 s later (attempt 1, base 60 s, equal
    jitter): not claimed before, claimed once the clock has moved past it."""
    clock = MovedClock()
    notice = await make_notice(await make_user("rita", follower=True))
    w = worker(app, clock=clock)
    w.dispatcher.config = dataclasses.replace(
        w.dispatcher.config, backoff_base_seconds=60.0, backoff_cap_seconds=600.0
    )
    wechat_state.inject(P_TEMPLATE, -1, times=1)
    try:
        assert (await w.dispatcher.run_once())[0] == 1
        n = await Notice.get(id=notice.id)
        assert (n.state, n.attempts, n.errcode) == ("pending", 1, -1)
        assert n.next_attempt_at is not None
        delay = (n.next_attempt_at - clock.now).total_seconds()
        assert 30 <= delay <= 60, delay
        clock.move(29.9)
        assert (await w.dispatcher.run_once())[0] == 0  # not due yet
        clock.move(delay - 29.9 + 0.1)
        assert (await w.dispatcher.run_once())[0] == 1
    finally:
        await w.close()
    n = await Notice.get(id=notice.id)
    assert (n.state, n.attempts) == ("sent", 2)
    assert n.sent_at == clock.now  # recorded on the dispatcher's clock


async def _drain(app: web.Application) -> None:
    w = worker(app)
    try:
        await w.drain(timeout=10)
    finally:
        await w.close()
