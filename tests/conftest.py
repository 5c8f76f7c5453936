"""Test harness: settings → the real app → a real HTTP client, fakes as real servers.

Backends come from the environment so the same suite runs twice (scripts/test):
* default: a fresh SQLite file per test and the embedded in-process Redis;
* ``TEST_DATABASE_URL`` (PostgreSQL) and ``TEST_REDIS_URL``: real servers; every test
  starts from empty tables and an empty Redis database.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fakes.wechat import FakeWeChatState, start_fake_wechat
from server import keys
from server.app import create_app
from server.settings import Settings
from tests.response_check import install_response_check
from tests.security import logscan

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


def pytest_configure(config: pytest.Config) -> None:
    logscan.install()  # every log line of the run checked for personal data


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    logscan.set_test(nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    logscan.report(session)


def backend_name() -> str:
    return "postgres" if PG_URL else "sqlite"


@pytest.fixture
async def fake_wechat() -> AsyncIterator[tuple[str, FakeWeChatState]]:
    runner, base_url, state = await start_fake_wechat()
    try:
        yield base_url, state
    finally:
        await runner.cleanup()


@pytest.fixture
def make_settings(tmp_path: Path, fake_wechat: tuple[str, FakeWeChatState]) -> Callable[..., Settings]:
    base_url, _ = fake_wechat

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "server.data_dir": str(tmp_path / "data"),
            "wechat.api_base": base_url,
            "database.url": PG_URL,
            "redis.url": REDIS_URL,
        }
        values.update(overrides)
        return Settings.load("test.toml", env={}, overrides=values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


async def _reset_backends(app: web.Application) -> None:
    """Empty tables (PostgreSQL) and the Redis database, so tests never see each other."""
    if PG_URL:
        from tortoise.context import get_current_context

        ctx = get_current_context()
        assert ctx is not None
        tables = [m._meta.db_table for m in ctx.apps.get_models_iterable()]  # type: ignore[union-attr]
        await ctx.db().execute_script(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
        )
    if REDIS_URL:
        await app[keys.redis_key].flushdb()


@contextlib.asynccontextmanager
async def serving(app: web.Application, **server_kwargs: Any) -> AsyncIterator[TestClient]:
    """``app`` on a loopback port (TestServer keyword arguments), on empty backends;
    closed on exit so Tortoise closes too."""
    install_response_check(app)  # every JSON answer against its declared model
    client = TestClient(TestServer(app, **server_kwargs))
    await client.start_server()
    try:
        await _reset_backends(app)
        yield client
    finally:
        await client.close()


@pytest.fixture
async def app_client(settings: Settings) -> AsyncIterator[TestClient]:
    """The whole service on a loopback port."""
    async with serving(create_app(settings)) as client:
        yield client


@pytest.fixture
def app(app_client: TestClient) -> web.Application:
    return app_client.server.app  # type: ignore[return-value]


@pytest.fixture
def client(app_client: TestClient) -> TestClient:
    return app_client


@pytest.fixture
def wechat_state(fake_wechat: tuple[str, FakeWeChatState]) -> FakeWeChatState:
    return fake_wechat[1]
