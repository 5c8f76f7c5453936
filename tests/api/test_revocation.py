"""Revoked logins on the hot path: at once in the process that revoked, within
``[auth] revocation_cache_seconds`` in every other process (server/domain/auth.py)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.auth import AuthService
from server.domain.errors import DomainError
from server.settings import Settings
from tests.factories import bearer, error_of, login


def other_process(app: web.Application, settings: Settings, cache_seconds: float) -> AuthService:
    """A second server process's AuthService: same Redis, its own in-process caches."""
    return AuthService(
        jwt_settings=settings.jwt,
        redis=app[keys.redis_key],
        wechat=app[keys.wechat_key],
        pii=app[keys.pii_key],
        revocation_cache_seconds=cache_seconds,
    )


async def test_logout_is_immediate_here_even_after_cached_requests(client: TestClient) -> None:
    tokens = await login(client, "sam")
    for _ in range(3):  # the "not revoked" answer is cached now
        assert (await client.get("/api/v1/me", headers=bearer(tokens))).status == 200
    assert (await client.post("/api/v1/auth/logout", headers=bearer(tokens))).status == 204
    resp = await client.get("/api/v1/me", headers=bearer(tokens))
    assert resp.status == 401 and (await error_of(resp))["code"] == "SESSION_REVOKED"


async def test_refresh_reuse_is_immediate_here_even_after_cached_requests(client: TestClient) -> None:
    tokens = await login(client, "tina")
    rotated = await (await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
    assert (await client.get("/api/v1/me", headers=bearer(rotated))).status == 200
    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status == 401
    assert (await client.get("/api/v1/me", headers=bearer(rotated))).status == 401


@pytest.mark.parametrize("cache_seconds", [0.0, 0.2], ids=["no-cache", "cached"])
async def test_other_process_sees_logout_within_its_cache_window(
    client: TestClient, app: web.Application, settings: Settings, cache_seconds: float
) -> None:
    tokens = await login(client, "uma")
    other = other_process(app, settings, cache_seconds=cache_seconds)
    assert await other.verify_access(tokens["access_token"]) == tokens["user"]["id"]  # cached now
    assert (await client.post("/api/v1/auth/logout", headers=bearer(tokens))).status == 204
    if cache_seconds:
        await asyncio.sleep(cache_seconds + 0.1)  # the documented bound, not a timing assertion
    with pytest.raises(DomainError) as err:
        await other.verify_access(tokens["access_token"])
    assert err.value.code == "SESSION_REVOKED"
