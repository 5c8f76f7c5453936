"""Pure rules and Redis helpers: keyword formatting, backoff, rate limits, shared token."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest
from aiohttp import web

from fakes.wechat import P_STABLE_TOKEN, FakeWeChatState
from server import keys
from server.gateways.token_cache import TokenCache
from server.push.dispatcher import backoff_delay
from server.push.templates import format_keyword, render_data
from server.ratelimit import RateLimited, TokenBucket, hit
from server.settings import Settings
from tests.push.factories import until


def test_keywords_fit_wechat_limits() -> None:
    assert format_keyword("thing1", "一" * 30) == "一" * 19 + "…"
    assert format_keyword("thing2", "短\n文本") == "短 文本"  # no line breaks
    assert format_keyword("amount3", 5) == "0.05元"
    assert format_keyword("amount3", 123456789) == "1234567.89元"
    assert format_keyword("time4", "2026-01-31T16:30:00+00:00") == "2026-02-01 00:30"  # Shanghai
    assert format_keyword("character_string5", "S2026 中文-01") == "S2026-01"
    assert len(format_keyword("character_string5", "x" * 50)) == 32
    assert format_keyword("phrase6", "已结算完成了") == "已结算完成"


def test_render_data_maps_fields_by_kind() -> None:
    keywords = {
        "thing1": "member_name",
        "thing2": "med_type",
        "amount3": "psn_part_amt_fen|psn_part_fen",
        "thing4": "=家庭共济",
        "thing5": "missing",
    }
    data = {"member_name": "张*华", "med_type": "21", "psn_part_fen": 100}
    assert render_data(keywords, data, med_types={"21": "普通住院"}) == {
        "thing1": "张*华", "thing2": "普通住院", "amount3": "1.00元", "thing4": "家庭共济"
    }


def test_backoff_grows_with_jitter_and_cap() -> None:
    rng = random.Random(1)
    for attempt in range(1, 12):
        step = min(60.0, 2.0 * 2 ** (attempt - 1))
        for _ in range(20):
            d = backoff_delay(attempt, base=2.0, cap=60.0, rng=rng)
            assert step / 2 <= d <= step
    spread = {round(backoff_delay(3, base=2.0, cap=60.0, rng=rng), 3) for _ in range(20)}
    assert len(spread) > 10  # notices that failed together come back apart


async def test_hit_raises_rate_limited_with_retry_after(app: web.Application) -> None:
    redis = app[keys.redis_key]
    for _ in range(3):
        await hit(redis, "t:user1", limit=3, per_seconds=60)
    with pytest.raises(RateLimited) as err:
        await hit(redis, "t:user1", limit=3, per_seconds=60)
    assert 1 <= err.value.retry_after <= 60
    await hit(redis, "t:user2", limit=3, per_seconds=60)  # other keys unaffected


async def test_token_bucket_is_shared_and_reserves(app: web.Application) -> None:
    redis = app[keys.redis_key]
    a = TokenBucket(redis, "t:bucket", rate=100.0, burst=10)
    b = TokenBucket(redis, "t:bucket", rate=100.0, burst=10)  # another worker, same bucket
    assert await a.reserve(10) == 0
    wait_b = await b.reserve(10)
    assert 0.05 <= wait_b <= 0.11  # 10 tokens at 100/s, minus the little refill meanwhile
    wait_a = await a.reserve(10)
    assert wait_a >= wait_b + 0.05  # queued behind b


async def test_token_cache_single_flight_across_caches(
    app: web.Application, wechat_state: FakeWeChatState
) -> None:
    """Two processes' caches and 50 concurrent callers: one token fetch."""
    redis, gateway = app[keys.redis_key], app[keys.wechat_key]
    wechat_state.configure(stall_seconds=0.05)
    caches = [TokenCache(redis, gateway, "oa") for _ in range(2)]
    tokens = await asyncio.gather(*(caches[i % 2].get() for i in range(50)))
    assert len(set(tokens)) == 1
    assert wechat_state.calls[P_STABLE_TOKEN] == 1
    for c in caches:
        await c.close()


async def test_token_cache_renews_early_in_background(
    app: web.Application, wechat_state: FakeWeChatState
) -> None:
    redis, gateway = app[keys.redis_key], app[keys.wechat_key]
    now = [1_000_000.0]
    wechat_state.clock = lambda: now[0]
    cache = TokenCache(redis, gateway, "oa", early_refresh=240, clock=lambda: now[0])
    first = await cache.get()
    now[0] += 7200 - 200  # inside the early-refresh window, still valid
    assert await cache.get() == first  # handed out at once ...

    async def renewed() -> bool:  # ... while one background renewal runs
        return await cache.get() != first

    await until(renewed, what="the background renewal")
    assert wechat_state.tokens_issued == 2  # one renewal, however often it was asked
    await cache.close()


async def test_forced_refresh_budget(app: web.Application, wechat_state: FakeWeChatState) -> None:
    """At most one forced refresh per 30 s and 20 a day, fleet-wide."""
    from server.gateways.wechat import WeChatUnavailable

    redis, gateway = app[keys.redis_key], app[keys.wechat_key]
    now = [2_000_000.0]
    wechat_state.clock = lambda: now[0]
    cache = TokenCache(
        redis, gateway, "oa", clock=lambda: now[0], force_per_day=2, force_interval=30
    )
    token = await cache.get()
    token = await cache.invalidate(token)  # stable_token returns the same one → forced
    with pytest.raises(WeChatUnavailable):
        await cache.invalidate(token)  # too soon
    assert wechat_state.stats()["force_refreshes"] == {"oa": 1}
    now[0] += 31
    await redis.delete("wx:token:oa:force_last")  # as if 30 s had passed
    token = await cache.invalidate(token)
    now[0] += 31
    await redis.delete("wx:token:oa:force_last")
    with pytest.raises(WeChatUnavailable):
        await cache.invalidate(token)  # the day's budget (2 here) is spent
    assert wechat_state.stats()["force_refreshes"] == {"oa": 2}
    await cache.close()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("push.lease_seconds", 5),  # ≤ 2 × 5 s timeout + 1: every chunk would be given back
        ("push.batch_size", 0),
        ("push.rate_per_second", 0.0),
        ("push.no_such_knob", 1),
        ("push.kinds.family_settlement.oa_data", {"first": "member_name"}),
    ],
)
def test_bad_push_settings_are_refused(key: str, value: object) -> None:
    from server.push.config import PushConfig

    with pytest.raises(ValueError):  # unknown keys at load, the rest when push starts
        PushConfig.from_settings(Settings.load("test.toml", env={}, overrides={key: value}))


def test_standalone_worker_refuses_the_embedded_backends(tmp_path: object) -> None:
    """SQLite + the in-process Redis cannot be shared by a second process: exit 2, clearly."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "DATABASE_URL": "", "REDIS_URL": "", "DATA_DIR": str(tmp_path)}
    env.pop("CONFIG_FILE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "server", "worker"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"needs PostgreSQL" in proc.stderr


def test_push_sits_beside_the_domain_and_knows_no_demo() -> None:
    """server.push reads the domain's models and calls gateways; the domain never imports
    it, it imports no HTTP side and no fake, and the demo's follower rule is the demo
    wiring's (server.demo), reached only from the worker process' own wiring."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]

    def imports(path: Path) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    for path in (root / "server" / "domain").rglob("*.py"):
        assert not {m for m in imports(path) if m.startswith("server.push")}, path
    above = ("bot", "miniapp_api", "institution_api", "review_console", "fakes", "server.app")
    for path in (root / "server" / "push").glob("*.py"):
        found = imports(path)
        assert not {m for m in found if m.split(".")[0] in above or m in above}, path
        assert not {m for m in found if "fake" in m}, path
        assert "server.metrics" not in found or path.name == "worker.py", path
        assert "server.demo" not in found or path.name == "worker.py", path
        text = path.read_text()
        assert '"union-' not in text and '"oa-' not in text, f"{path}: a demo openid rule"


def test_the_demo_follower_rule_is_wired_only_for_the_demo(
    make_settings: Callable[..., Settings],
) -> None:
    from server.demo import demo_follower, push_follower_fallback

    assert demo_follower("union-tina") == "oa-tina"
    assert demo_follower("oZx81s_real_unionid") is None
    demo = {"server.demo_data": True, "wechat.api_base": ""}
    assert push_follower_fallback(make_settings(**demo)) is demo_follower
    # a WeChat base URL (the real one, or a fake of its own): no invented followers
    assert push_follower_fallback(make_settings(**{"server.demo_data": True})) is None
    assert push_follower_fallback(make_settings(**{**demo, "server.demo_data": False})) is None
