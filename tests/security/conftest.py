"""The service with settings overridden, for the security matrix."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import serving


@pytest.fixture
async def make_client(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    """``await make_client(**{"limits.x": 1})``: the service with settings overridden."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> TestClient:
            return await stack.enter_async_context(serving(create_app(make_settings(**overrides))))

        yield make
