"""A counter clerk's registry look-ups are counted per hour (the counter is no oracle)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.models import StaffAuditEntry
from server.settings import Settings
from tests.console.conftest import FAST_HASH, add_staff, login
from tests.family.helpers import MOTHER, load_registry


@pytest.fixture
def console_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**FAST_HASH, **{"console.counter_lookups_per_hour": 2})


async def test_counter_lookups_are_rate_limited(console: TestClient, capp: web.Application) -> None:
    await load_registry(capp)
    pw = await add_staff(capp, "clerk", "counter", "420100")
    csrf = await login(console, "clerk", pw)
    name, id_type, number = MOTHER
    form = {"csrf": csrf, "id_type": id_type, "id_number": number, "name": name}
    assert (await console.post("/review/counter/lookup", data=form)).status == 200
    assert (await console.post("/review/counter/lookup", data=form)).status == 200
    resp = await console.post("/review/counter/lookup", data=form)
    assert resp.status == 429 and "操作过于频繁" in await resp.text()
    assert await StaffAuditEntry.filter(action="counter_lookup").count() == 2  # the refused one looked nothing up
