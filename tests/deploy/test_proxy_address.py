"""Behind the proxy, the per-address limits count the client's address (server/proxy.py):
``X-Real-IP`` is believed from a trusted proxy only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.app import create_app
from tests.conftest import serving


async def _logins(client: Any, real_ip: str, n: int) -> list[int]:
    out = []
    for i in range(n):
        code = f"demo-px{real_ip.replace('.', '')}x{i}-a"
        resp = await client.post("/api/v1/auth/login", json={"code": code}, headers={"X-Real-IP": real_ip})
        out.append(resp.status)
    return out


async def test_trusted_proxy_forwards_the_client_address(make_settings: Callable[..., Any]) -> None:
    settings = make_settings(**{"auth.logins_per_ip_per_minute": 2, "server.trusted_proxies": "127.0.0.1, ::1"})
    async with serving(create_app(settings)) as client:
        assert await _logins(client, "203.0.113.7", 3) == [200, 200, 429]
        # another citizen behind the same proxy has a budget of their own
        assert await _logins(client, "203.0.113.8", 1) == [200]


async def test_the_header_is_ignored_from_anyone_else(make_settings: Callable[..., Any]) -> None:
    settings = make_settings(**{"auth.logins_per_ip_per_minute": 2, "server.trusted_proxies": "10.9.9.9"})
    async with serving(create_app(settings)) as client:
        # the test client is 127.0.0.1, no trusted proxy: a forged header buys nothing
        assert await _logins(client, "203.0.113.7", 2) == [200, 200]
        assert await _logins(client, "203.0.113.8", 1) == [429]
