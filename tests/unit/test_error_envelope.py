"""The one error middleware maps the foundation's RateLimited to API.md's 429 envelope."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.middlewares import error_envelope
from server.ratelimit import RateLimited


async def test_rate_limited_becomes_429_with_retry_after(aiohttp_client: Any) -> None:
    async def limited(request: web.Request) -> web.Response:
        raise RateLimited("family:submits:1", 7)

    app = web.Application(middlewares=[error_envelope])
    app.router.add_get("/limited", limited)
    client = await aiohttp_client(app)
    resp = await client.get("/limited")
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "7"
    assert await resp.json() == {
        "error": {"code": "RATE_LIMITED", "message": "操作过于频繁，请稍后再试"}
    }

