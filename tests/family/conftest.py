"""A fake face-verification service as a real aiohttp server (no mock of our own code)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.settings import Settings
from tests.conftest import serving


@dataclass
class FaceState:
    down: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def face_service() -> AsyncIterator[tuple[str, FaceState]]:
    """POST /face/verify {face_token, id_number, name} → {passed}; 503 while ``down``."""
    state = FaceState()

    async def verify(request: web.Request) -> web.Response:
        body = await request.json()
        state.calls.append(body)
        if state.down:
            return web.json_response({"error": "unavailable"}, status=503)
        return web.json_response({"passed": str(body["face_token"]).startswith("ok")})

    app = web.Application()
    app.router.add_post("/face/verify", verify)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), state
    finally:
        await server.close()


@pytest.fixture
async def make_client(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    """``await make_client(**{"family.x": 1})``: the service with settings overridden."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> TestClient:
            return await stack.enter_async_context(serving(create_app(make_settings(**overrides))))

        yield make


@pytest.fixture
async def face_client(
    make_client: Callable[..., Any], face_service: tuple[str, FaceState]
) -> TestClient:
    """The service with its face gateway pointed at the fake face service over HTTP."""
    client: TestClient = await make_client(**{"face.api_base": face_service[0]})
    return client
