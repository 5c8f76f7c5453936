"""Budgets a guesser or a mass sign-up runs into (issue #17 finding 12)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app
from tests.conftest import serving
from tests.factories import demo_code, error_of


async def test_reviewer_token_guessing_is_throttled(client: TestClient) -> None:
    statuses = []
    for i in range(12):
        resp = await client.get(
            "/api/v1/review/applications", headers={"Authorization": f"Bearer guess-{i}"}
        )
        statuses.append(resp.status)
    assert statuses == [401] * 10 + [429, 429]
    assert int(resp.headers["Retry-After"]) >= 1
    # the right token from that address waits too, until the window ends
    right = {"Authorization": "Bearer demo-reviewer-token"}
    resp = await client.get("/api/v1/review/applications", headers=right)
    assert resp.status == 429 and (await error_of(resp))["code"] == "RATE_LIMITED"


async def test_logins_per_address(make_settings: Callable[..., Any]) -> None:
    app = create_app(make_settings(**{"auth.logins_per_ip_per_minute": 5}))
    async with serving(app) as client:
        # the window is the clock's minute: six logins straddling one would count in two
        left = 60 - time.time() % 60
        if left < 5:
            await asyncio.sleep(left + 0.1)
        statuses = []
        for i in range(6):
            resp = await client.post("/api/v1/auth/login", json={"code": demo_code(f"mass{i}")})
            statuses.append(resp.status)
        assert statuses == [200] * 5 + [429]
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
