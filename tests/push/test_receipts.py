"""Delivery receipts: the fake WeChat posts TEMPLATESENDJOBFINISH to our webhook over real
HTTP, signed like WeChat, and the notice the push worker sent ends ``delivered`` / ``failed``.

Both sides are real aiohttp servers on 127.0.0.1: the app under test (its
``/wechat/official``) and the fake WeChat (its template send and receipt callback).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from fakes.wechat import (
    RECEIPT_SYSTEM_FAILED,
    FakeWeChatState,
)
from server import keys
from server.__main__ import self_url
from server.app import create_app
from server.domain.models import Notice
from server.settings import Settings
from tests.conftest import serving
from tests.push.factories import make_notice, make_user, worker


async def deliver(app: web.Application) -> None:
    """One push worker sends every due notice, then stops."""
    w = worker(app)
    try:
        await w.drain(timeout=10)
    finally:
        await w.close()


async def receipts_settled(
    state: FakeWeChatState, *, expected: int, timeout: float = 5.0
) -> dict[str, int]:
    """Wait until ``expected`` receipts were scheduled and each one posted or failed."""
    deadline = time.monotonic() + timeout
    while True:
        r = state.stats()["receipts"]
        if r["scheduled"] >= expected and r["posted"] + r["failed"] >= r["scheduled"]:
            return r  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"receipts not settled: {r}"
        await asyncio.sleep(0.02)


def receipts_to(client: TestClient, settings: Settings, **knobs: Any) -> dict[str, Any]:
    """Point the fake's receipts at the app under test's webhook, with its secrets."""
    return {
        "receipt_url": str(client.make_url("/wechat/official")),
        "receipt_token": settings.wechat.oa_token,
        "receipt_aes_key": settings.wechat.oa_encoding_aes_key,
        **knobs,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
async def test_receipt_marks_the_sent_notice_delivered(
    client: TestClient,
    app: web.Application,
    settings: Settings,
    wechat_state: FakeWeChatState,
    mode: str,
) -> None:
    wechat_state.configure(**receipts_to(client, settings, receipt_mode=mode))
    notice = await make_notice(await make_user("alice", follower=True))
    await deliver(app)
    n = await Notice.get(id=notice.id)
    # the worker has recorded the accepted send before the receipt arrives
    assert (n.state, n.channel) == ("sent", "template")
    [sent] = wechat_state.sent_messages(kind="template")
    assert sent["msgid"] == n.wx_msgid

    assert await receipts_settled(wechat_state, expected=1) == {
        "scheduled": 1,
        "posted": 1,
        "failed": 0,
        "cancelled": 0,
    }
    n = await Notice.get(id=notice.id)
    assert (n.state, n.reason) == ("delivered", None)


@pytest.mark.parametrize(
    ("failures", "reason"),
    [
        (["oa-bob"], "用户拒收"),  # a list of openids: failed:user block
        ({"oa-bob": RECEIPT_SYSTEM_FAILED}, "微信系统发送失败"),
    ],
)
async def test_failed_receipt_marks_the_notice_failed(
    client: TestClient,
    app: web.Application,
    settings: Settings,
    wechat_state: FakeWeChatState,
    failures: Any,
    reason: str,
) -> None:
    wechat_state.configure(**receipts_to(client, settings, receipt_failures=failures))
    blocked = await make_notice(await make_user("bob", follower=True))
    fine = await make_notice(await make_user("carol", follower=True))
    await deliver(app)
    await receipts_settled(wechat_state, expected=2)

    b = await Notice.get(id=blocked.id)
    assert (b.state, b.channel, b.reason) == ("failed", "template", reason)
    assert (await Notice.get(id=fine.id)).state == "delivered"


async def test_receipts_to_a_dead_url_never_break_sending(
    app: web.Application, wechat_state: FakeWeChatState, settings: Settings
) -> None:
    wechat_state.configure(
        receipt_url=f"http://127.0.0.1:{free_port()}/wechat/official",
        receipt_token=settings.wechat.oa_token,
        receipt_delay=0,
    )
    first = await make_notice(await make_user("dan", follower=True))
    await deliver(app)
    assert await receipts_settled(wechat_state, expected=1) == {
        "scheduled": 1,
        "posted": 0,
        "failed": 1,
        "cancelled": 0,
    }
    # sending goes on: the next notice is accepted too, its receipt fails the same way
    second = await make_notice(await make_user("erin", follower=True))
    await deliver(app)
    assert (await receipts_settled(wechat_state, expected=2))["failed"] == 2
    for notice in (first, second):
        assert (await Notice.get(id=notice.id)).state == "sent"  # no receipt: stays sent


async def test_a_refused_receipt_is_counted_as_failed(
    client: TestClient, app: web.Application, settings: Settings, wechat_state: FakeWeChatState
) -> None:
    """A wrong Token: our webhook refuses the push (403); the fake counts it failed."""
    wechat_state.configure(**receipts_to(client, settings, receipt_token="not-our-token"))
    notice = await make_notice(await make_user("fay", follower=True))
    await deliver(app)
    assert (await receipts_settled(wechat_state, expected=1))["failed"] == 1
    assert (await Notice.get(id=notice.id)).state == "sent"


async def test_no_receipt_without_a_callback(
    app: web.Application, wechat_state: FakeWeChatState
) -> None:
    notice = await make_notice(await make_user("gus", follower=True))
    await deliver(app)
    # the fake schedules a receipt while it answers the send: none was, none will come
    assert wechat_state.stats()["receipts"]["scheduled"] == 0
    assert (await Notice.get(id=notice.id)).state == "sent"


async def test_receipt_knobs_over_fake_config(
    fake_wechat: tuple[str, FakeWeChatState],
) -> None:
    base_url, state = fake_wechat
    async with aiohttp.ClientSession() as http:
        knobs = {
            "receipt_url": "http://127.0.0.1:9/wechat/official",
            "receipt_token": "t",
            "receipt_mode": "plain",
            "receipt_delay": 0.5,
            "receipt_failures": ["oa-x"],
        }
        async with http.post(base_url + "/_fake/config", json=knobs) as r:
            assert r.status == 200
            config = await r.json()
        assert config["receipt_url"] == knobs["receipt_url"]
        assert config["receipt_failures"] == {"oa-x": "failed:user block"}
        assert (config["receipt_mode"], config["receipt_delay"], config["down"]) == (
            "plain",
            0.5,
            False,
        )
        # safe mode without an EncodingAESKey, or an unknown mode: refused, nothing changes
        for bad in ({"receipt_mode": "safe"}, {"receipt_mode": "loud"}, {"receipt_delay": -1}):
            async with http.post(base_url + "/_fake/config", json=bad) as r:
                assert r.status == 400, bad
        assert (state.receipt_mode, state.receipt_delay) == ("plain", 0.5)
        # reset keeps the callback (configuration), forgets the failures (a test's knob)
        async with http.post(base_url + "/_fake/reset") as r:
            assert r.status == 200
        assert state.receipt_url == knobs["receipt_url"] and state.receipt_failures == {}
        async with http.post(base_url + "/_fake/config", json={"receipt_url": ""}) as r:
            assert (await r.json())["receipt_url"] is None


def test_self_url_reaches_a_wildcard_address_on_loopback() -> None:
    assert self_url("0.0.0.0", 8080) == "http://127.0.0.1:8080"
    assert self_url("::", 8080) == "http://[::1]:8080"
    assert self_url("127.0.0.1", 9000) == "http://127.0.0.1:9000"


# ---- the demo: embedded fake WeChat, receipts to this server's own webhook ----------------


@pytest.fixture
async def embedded(make_settings: Callable[..., Settings]) -> AsyncIterator[TestClient]:
    """The server as ``python -m server`` runs it without WECHAT_API_BASE: the fake WeChat
    in-process, and the server's own URL known (``serve`` sets it from HOST / PORT)."""
    from tests.push.conftest import FAST

    app = create_app(make_settings(**{**FAST, "wechat.api_base": ""}))
    port = free_port()
    app[keys.self_url_key] = self_url("0.0.0.0", port)
    async with serving(app, host="127.0.0.1", port=port) as client:
        yield client


async def test_demo_notices_get_receipts_and_reach_delivered(embedded: TestClient) -> None:
    app: web.Application = embedded.server.app  # type: ignore[assignment]
    state = app[keys.fake_wechat_key]
    assert isinstance(state, FakeWeChatState)
    assert state.receipt_url == f"http://127.0.0.1:{embedded.server.port}/wechat/official"

    notice = await make_notice(await make_user("hana", follower=True))
    await deliver(app)
    assert (await receipts_settled(state, expected=1))["posted"] == 1
    n = await Notice.get(id=notice.id)
    assert (n.state, n.channel) == ("delivered", "template")


async def test_a_receipt_that_beats_the_workers_record_is_applied_after_it(
    client: TestClient,
    app: web.Application,
    settings: Settings,
    wechat_state: FakeWeChatState,
) -> None:
    """WeChat may report a template message's fate before our worker has written the send
    (msgid and ``sent`` are stored when the send call returns): the receipt is kept and
    applied as soon as the worker writes the send — not lost, not applied to another."""
    wechat_state.configure(**receipts_to(client, settings))
    notice = await make_notice(await make_user("carol", follower=True))
    other = await make_notice(await make_user("dave", follower=True))
    msgid = wechat_state.next_msgid  # what the fake will assign to the first send
    _, query, body = wechat_state.receipt_push(openid="oa-carol", msgid=msgid)
    resp = await client.post("/wechat/official", params=query, data=body)
    assert resp.status == 200
    assert (await Notice.get(id=notice.id)).state == "pending"  # nothing to mark yet

    wechat_state.configure(receipt_url="")  # the fake's own receipts off: only the early one
    await deliver(app)
    states = {n.id: n for n in await Notice.filter(id__in=[notice.id, other.id])}
    first = min(states.values(), key=lambda n: n.wx_msgid or 0)
    assert first.wx_msgid == msgid and first.state == "delivered"
    second = max(states.values(), key=lambda n: n.wx_msgid or 0)
    assert second.state == "sent"  # its receipt has not come
    # the kept receipt is used once: a replay changes nothing
    resp = await client.post("/wechat/official", params=query, data=body)
    assert resp.status == 200
    assert (await Notice.get(id=first.id)).state == "delivered"
