"""Rate limits on every write: the router is walked for POST / PUT / PATCH / DELETE routes
and each must carry a write budget (server.write_limits) — a new write route without one
fails here — and a sample of each kind of caller runs into its budget: 429 with
``Retry-After``, nothing done, other callers and routes untouched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.write_limits import LIMIT_ATTR, WriteLimit
from tests.conftest import _reset_backends
from tests.console.conftest import FAST_HASH, csrf_of
from tests.factories import add_institution, bearer, consent_all, error_of, login, post_signed
from tests.security.routes import write_routes

#: Write routes limited somewhere other than a write budget, and where.
EXEMPT: dict[tuple[str, str], str] = {
    # WeChat's servers post every follower's messages from a few addresses: a per-address
    # budget would drop real questions. Limited per follower by the bot ([bot]
    # rate_limit_per_minute: one warning, then silence) and by the global budget for
    # look-ups of issue #17 finding 4.
    ("POST", "/wechat/official"): "bot.service per-follower limit; finding 4",
}


def test_every_write_route_has_a_budget(app: web.Application) -> None:
    unlimited = sorted(
        r.key for r in write_routes(app)
        if not isinstance(getattr(r.handler, LIMIT_ATTR, None), WriteLimit) and r.key not in EXEMPT
    )
    assert not unlimited, f"write routes without a write budget (server.write_limits): {unlimited}"
    assert set(EXEMPT) <= {r.key for r in write_routes(app)}, "an exemption for a route that is gone"
    assert len(write_routes(app)) >= 30  # the walk sees the sub-apps


async def _limited(resp: Any) -> None:
    assert resp.status == 429, await resp.text()
    assert int(resp.headers["Retry-After"]) >= 1
    assert (await error_of(resp))["code"] == "RATE_LIMITED"


async def test_a_user_runs_into_the_write_budget(make_client: Callable[..., Any]) -> None:
    client = await make_client(**{"limits.user_writes_per_minute": 3})
    alice, bob = bearer(await login(client, "alice")), bearer(await login(client, "bob"))
    path = "/api/v1/privacy/consents/notices"
    # login's consent_all spent one write of POST /privacy/consents, not of this route
    for _ in range(3):
        assert (await client.delete(path, headers=alice)).status == 200
    await _limited(await client.delete(path, headers=alice))
    assert (await client.delete(path, headers=bob)).status == 200  # per user
    other = await client.delete(path.replace("notices", "face"), headers=bob)
    assert other.status == 200  # per route (template), not per path: bob's second write of it
    await consent_all(client, alice["Authorization"][7:])  # another route: alice's still open
    assert (await client.get("/api/v1/privacy/consents", headers=alice)).status == 200  # reads free


async def test_anonymous_writes_are_budgeted_per_address(make_client: Callable[..., Any]) -> None:
    client = await make_client(**{"limits.anonymous_writes_per_minute": 2})
    for _ in range(2):
        resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": "rt_guess"})
        assert resp.status == 401
    await _limited(await client.post("/api/v1/auth/refresh", json={"refresh_token": "rt_guess"}))


async def test_an_institution_runs_into_its_budget(make_client: Callable[..., Any]) -> None:
    client = await make_client(**{"limits.institution_writes_per_minute": 2})
    app = client.server.app
    a = {"code": "H30001", "secret": await add_institution(app, "H30001", "甲医院")}
    b = {"code": "H30002", "secret": await add_institution(app, "H30002", "乙医院")}
    body = {"qr_token": "nope-nope-nope"}
    for _ in range(2):
        assert (await post_signed(client, "/vouchers/verify", body, **a)).status != 429
    await _limited(await post_signed(client, "/vouchers/verify", body, **a))
    assert (await post_signed(client, "/vouchers/verify", body, **b)).status != 429
    # a forged call spends nothing: the budget is the signed caller's
    forged = {"code": "H30002", "secret": "not-the-secret"}
    assert (await post_signed(client, "/vouchers/verify", body, **forged)).status == 401
    assert (await post_signed(client, "/vouchers/verify", body, **b)).status != 429


async def test_console_forms_are_budgeted_per_address(
    make_settings: Callable[..., Any], unused_tcp_port: int
) -> None:
    settings = make_settings(**FAST_HASH, **{"limits.console_writes_per_minute": 2})
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[f"http://127.0.0.1:{unused_tcp_port}"])
    client = TestClient(TestServer(create_app(settings), port=unused_tcp_port), cookie_jar=jar)
    await client.start_server()
    try:
        await _reset_backends(client.server.app)
        page = await (await client.get("/review/login")).text()
        for _ in range(2):
            form = {"csrf": csrf_of(page), "name": "nobody", "password": "wrong-password"}
            resp = await client.post("/review/login", data=form)
            assert resp.status not in (403, 429), resp.status
            page = await resp.text()
        form = {"csrf": csrf_of(page), "name": "nobody", "password": "wrong-password"}
        await _limited(await client.post("/review/login", data=form))
    finally:
        await client.close()
