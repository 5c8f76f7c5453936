"""The console under test: the real app on a loopback port, staff logged in through the
login form with a cookie jar that treats the test server as a secure origin (the
session cookie is Secure, as in production), applications put in review by the real
mini-program flow."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from server import keys
from server.app import create_app
from server.domain import staff as staff_domain
from server.settings import Settings
from tests.conftest import _reset_backends
from tests.factories import bearer, verified_user
from tests.family.helpers import (
    ALICE,
    BOB,
    DAVE,
    HK,
    SON,
    load_registry,
    prepare,
    submit,
)

# argon2 at its smallest: the suite logs in hundreds of times (production: default.toml)
FAST_HASH = {"console.argon2_time_cost": 1, "console.argon2_memory_kib": 1024, "console.argon2_parallelism": 1}
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def console_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**FAST_HASH)


@pytest.fixture
async def console(console_settings: Settings, unused_tcp_port: int) -> AsyncIterator[TestClient]:
    app = create_app(console_settings)
    client = TestClient(
        TestServer(app, port=unused_tcp_port),
        cookie_jar=CookieJar(unsafe=True, treat_as_secure_origin=[f"http://127.0.0.1:{unused_tcp_port}"]),
    )
    await client.start_server()
    try:
        await _reset_backends(app)
        yield client
    finally:
        await client.close()


@pytest.fixture
def capp(console: TestClient) -> web.Application:
    return console.server.app  # type: ignore[return-value]


async def add_staff(app: web.Application, name: str, role: str, regions: str) -> str:
    _, password = await staff_domain.add_staff(
        name=name, role=role, regions=regions, hasher=app[keys.staff_key].hasher
    )
    return password


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "no csrf field on the page"
    return m.group(1)


async def login(client: Any, name: str, password: str) -> str:
    """Log in through the form; the session's CSRF token (from the page landed on)."""
    page = await client.get("/review/login")
    token = csrf_of(await page.text())
    resp = await client.post("/review/login", data={"csrf": token, "name": name, "password": password})
    assert resp.status == 200, (resp.status, await resp.text())
    assert resp.url.path != "/review/login", "login failed"
    return csrf_of(await resp.text())


@dataclass
class Browser:
    """A second, independent browser (its own cookies) on the same server."""

    session: aiohttp.ClientSession

    async def get(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.session.get(path, **kw)

    async def post(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        return await self.session.post(path, **kw)


@pytest.fixture
async def other_browser(console: TestClient) -> AsyncIterator[Browser]:
    base = str(console.make_url("/"))
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[base])
    async with aiohttp.ClientSession(base_url=base, cookie_jar=jar) as session:
        yield Browser(session)


async def pending(client: TestClient, app: web.Application) -> dict[str, str]:
    """Applications waiting for a reviewer, made through the mini-program API:
    ``hk`` (张伟 → 黄家明's 港澳通行证, region 420100), ``minor`` (周敏 → 张小明, a
    child whose registered guardian she is not, 420100), ``far`` (陈静 → 黄家明,
    region 510100)."""
    await load_registry(app)
    out = {}
    alice = bearer(await verified_user(client, "alice", ALICE))
    out["hk"] = await prepare(client, alice, HK, "spouse", kinds=("travel_permit",))
    bob = bearer(await verified_user(client, "bob", BOB))
    out["minor"] = await prepare(client, bob, SON, "child", kinds=("birth_certificate",))
    dave = bearer(await verified_user(client, "dave", DAVE))
    out["far"] = await prepare(client, dave, HK, "spouse", kinds=("travel_permit",))
    for who, key in ((alice, "hk"), (bob, "minor"), (dave, "far")):
        resp = await submit(client, who, out[key])
        body = await resp.json()
        assert body["state"] == "pending_review", body
    return out
