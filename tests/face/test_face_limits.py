"""POST /api/v1/face/sessions is rate-limited per user ([face] sessions_per_window)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.face.helpers import open_session, realname_body
from tests.factories import bearer, error_of, login
from tests.family.helpers import ALICE, BOB


@pytest.fixture
def settings(make_settings: Any) -> Any:
    return make_settings(**{"face.sessions_per_window": 3})


async def test_sessions_are_rate_limited_per_user(client: TestClient) -> None:
    alice = bearer(await login(client, "alice"))
    for _ in range(3):
        await open_session(client, alice, realname_body(ALICE))
    resp = await client.post("/api/v1/face/sessions", json=realname_body(ALICE), headers=alice)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert (await error_of(resp))["code"] == "RATE_LIMITED"
    await open_session(client, bearer(await login(client, "bob")), realname_body(BOB))  # bob's own budget
