"""Small async factories: each does what a real client would do, through the real API."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp.test_utils import TestClient

_codes = itertools.count(1)


def demo_code(user: str) -> str:
    """A fresh wx.login code the fake WeChat accepts once (API.md demo conventions)."""
    return f"demo-{user}-{next(_codes)}"


async def login(client: TestClient, user: str = "alice") -> dict[str, Any]:
    resp = await client.post("/api/v1/auth/login", json={"code": demo_code(user)})
    assert resp.status == 200, await resp.text()
    return await resp.json()


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def error_of(resp: Any) -> dict[str, Any]:
    """The error envelope of API.md, asserting its shape."""
    body = await resp.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] and body["error"]["message"], body
    return body["error"]
