"""POST /api/v1/notices/subscriptions: wx.requestSubscribeMessage results become grants."""

from __future__ import annotations

from aiohttp.test_utils import TestClient

from server.domain.models import SubscriptionGrant
from tests.factories import bearer, error_of, login

TPL = "DEMO_MP_FAMILY_SETTLEMENT"
TPL2 = "DEMO_MP_MUTUAL_AID_DEBIT"
URL = "/api/v1/notices/subscriptions"


async def test_accept_adds_grants_ban_clears_others_ignored(client: TestClient) -> None:
    tokens = await login(client, "alice")
    body = {"results": {TPL: "accept", TPL2: "reject", "errMsg": "requestSubscribeMessage:ok"}}
    resp = await client.post(URL, json=body, headers=bearer(tokens))
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"grants": {TPL: 1, TPL2: 0}, "ignored": ["errMsg"]}
    resp = await client.post(URL, json={"results": {TPL: "accept"}}, headers=bearer(tokens))
    assert (await resp.json())["grants"] == {TPL: 2}
    grant = await SubscriptionGrant.get(template_id=TPL)
    assert grant.remaining == 2
    resp = await client.post(URL, json={"results": {TPL: "ban"}}, headers=bearer(tokens))
    assert (await resp.json())["grants"] == {TPL: 0}


async def test_bad_result_is_422_and_changes_nothing(client: TestClient) -> None:
    tokens = await login(client, "bob")
    body = {"results": {TPL: "accept", TPL2: "yes"}}
    resp = await client.post(URL, json=body, headers=bearer(tokens))
    assert resp.status == 422
    err = await error_of(resp)
    assert err["fields"] == {TPL2: "INVALID_SUBSCRIBE_RESULT"}
    assert not await SubscriptionGrant.exists()
    resp = await client.post(URL, json={"results": "accept"}, headers=bearer(tokens))
    assert resp.status == 422


async def test_needs_login(client: TestClient) -> None:
    resp = await client.post(URL, json={"results": {TPL: "accept"}})
    assert resp.status == 401


async def test_rate_limited(client: TestClient) -> None:
    tokens = await login(client, "carol")
    for _ in range(30):
        resp = await client.post(URL, json={"results": {TPL: "reject"}}, headers=bearer(tokens))
        assert resp.status == 200
    resp = await client.post(URL, json={"results": {TPL: "reject"}}, headers=bearer(tokens))
    assert resp.status == 429 and resp.headers["Retry-After"]
    assert (await error_of(resp))["code"] == "RATE_LIMITED"
