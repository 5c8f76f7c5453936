"""WeChat answering 5xx, and WeChat stalling, under the push worker (issue #15, "Faults").

The fake WeChat (a real aiohttp server) answers every template send with a mix of 502,
500 and 504 — or holds every request longer than our client's timeout — while a worker
delivers 50 notices; then WeChat is healthy again. (``tests/push/test_delivery.py`` has
the all-503 outage with its call bounds; these are the other two ways WeChat fails.)

Pass rule:
* the breaker opens (sending pauses fleet-wide) and a failed probe re-opens it; while it
  is open no notice is given up (none ``failed``);
* once WeChat answers, the breaker closes by itself (``gate()`` is ``closed``, no trip
  count left in Redis) and every notice is ``sent``;
* none lost: every notice reached WeChat — exactly once after 5xx (WeChat did not take
  those), at least once after timeouts (a request we gave up on may still have been
  taken: the at-least-once edge every WeChat client has).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

import pytest
from aiohttp import web

from fakes.wechat import P_TEMPLATE, FakeWeChatState
from server import keys
from server.domain.models import Notice
from server.settings import Settings
from tests.push.conftest import FAST
from tests.push.factories import make_notices, make_user, notice_id_of, until, worker

NOTICES = 50


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # our client gives WeChat 0.3 s: the stalling fake holds requests for 3 s
    return make_settings(**{**FAST, "wechat.timeout_seconds": 0.3})


def _break(state: FakeWeChatState, fault: str) -> None:
    if fault == "http_5xx":
        for status in (502, 500, 504):  # consumed in order, far more than the run uses
            state.inject_http(P_TEMPLATE, status, 10_000)
    else:
        state.configure(stall_seconds=3.0)


def _mend(state: FakeWeChatState) -> None:
    state.faults.clear()
    state.configure(stall_seconds=0.0)


@pytest.mark.parametrize("fault", ["http_5xx", "stall"])
async def test_breaker_opens_and_closes_and_no_notice_is_lost(
    app: web.Application, wechat_state: FakeWeChatState, fault: str
) -> None:
    registry = app[keys.metrics_key].registry

    def trips() -> float:
        return registry.get_sample_value("push_breaker_trips_total") or 0.0

    users = [await make_user(f"wf{i}", follower=True) for i in range(5)]
    await make_notices(users, 1)
    warm = worker(app)
    try:
        await warm.drain(timeout=10)  # the access token cached: the fault hits the sends
    finally:
        await warm.close()
    notices = await make_notices(users, NOTICES)
    _break(wechat_state, fault)
    w = worker(app, concurrency=8)
    breaker = w.dispatcher.breaker
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        # opened, and re-opened by a failed probe
        await until(lambda: trips() >= 2, what="the breaker to open, probe, and open again")
        assert await Notice.filter(state="failed").count() == 0
        assert await Notice.filter(state="pending").count() > 0
        _mend(wechat_state)

        async def drained() -> bool:
            return not await Notice.filter(state="pending").exists()

        await until(drained, timeout=20, what="the queue to drain once WeChat is back")
        assert await breaker.gate() == ("closed", 0.0)
        assert not await breaker._redis.exists(breaker.TRIPS, breaker.OPEN)
    finally:
        stop.set()
        await task
        await w.close()

    ids = {str(n.id) for n in notices}
    assert await Notice.filter(id__in=list(ids), state="sent").count() == NOTICES
    counts: collections.Counter[str] = collections.Counter(
        notice_id_of(m) for m in wechat_state.sent_messages()
    )
    assert ids <= set(counts), "a notice never reached WeChat"
    if fault == "http_5xx":
        assert all(counts[i] == 1 for i in ids), {i: counts[i] for i in ids if counts[i] != 1}
