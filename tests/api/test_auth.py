"""Login, token refresh/rotation/reuse, logout, and JWT checks — through the HTTP API."""

from __future__ import annotations

import time

import jwt
import pytest
from aiohttp.test_utils import TestClient

from fakes.wechat import FakeWeChatState
from server.settings import Settings
from tests.factories import bearer, demo_code, error_of, login


async def test_login_creates_user_and_tokens(client: TestClient) -> None:
    body = await login(client, "alice")
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["refresh_token"].startswith("rt_")
    assert body["user"] == {"id": body["user"]["id"], "realname_verified": False}
    assert "session_key" not in str(body)
    me = await client.get("/api/v1/me", headers=bearer(body))
    assert me.status == 200
    assert (await me.json()) == {"id": body["user"]["id"], "realname_verified": False}


async def test_same_user_logs_in_again_as_same_account(client: TestClient) -> None:
    first = await login(client, "bob")
    second = await login(client, "bob")
    other = await login(client, "carol")
    assert first["user"]["id"] == second["user"]["id"] != other["user"]["id"]


async def test_session_key_is_stored_encrypted(client: TestClient, wechat_state: FakeWeChatState) -> None:
    from server.domain.models import User

    await login(client, "dave")
    user = await User.get(openid="demo-dave")
    assert user.unionid == "union-dave"
    raw_key = wechat_state.session_keys["demo-dave"]
    assert user.session_key_enc and raw_key not in user.session_key_enc


async def test_invalid_code_is_401_with_wechat_reason(client: TestClient) -> None:
    resp = await client.post("/api/v1/auth/login", json={"code": "not-a-demo-code"})
    assert resp.status == 401
    err = await error_of(resp)
    assert err["code"] == "WECHAT_CODE_INVALID" and "40029" in err["message"]


async def test_used_code_is_401(client: TestClient) -> None:
    code = demo_code("erin")
    assert (await client.post("/api/v1/auth/login", json={"code": code})).status == 200
    resp = await client.post("/api/v1/auth/login", json={"code": code})
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "WECHAT_CODE_USED"


async def test_wechat_down_is_503(client: TestClient, wechat_state: FakeWeChatState) -> None:
    wechat_state.down = True
    resp = await client.post("/api/v1/auth/login", json={"code": demo_code("frank")})
    assert resp.status == 503
    assert (await error_of(resp))["code"] == "WECHAT_UNAVAILABLE"
    wechat_state.down = False
    assert (await client.post("/api/v1/auth/login", json={"code": demo_code("frank")})).status == 200


async def test_wechat_busy_errcode_is_503_and_rate_limit_is_429(
    client: TestClient, wechat_state: FakeWeChatState
) -> None:
    wechat_state.inject("/sns/jscode2session", -1)
    resp = await client.post("/api/v1/auth/login", json={"code": demo_code("gina")})
    assert resp.status == 503
    wechat_state.inject("/sns/jscode2session", 45011)
    resp = await client.post("/api/v1/auth/login", json={"code": demo_code("gina")})
    assert resp.status == 429 and resp.headers["Retry-After"]


async def test_refresh_rotates_and_old_token_dies(client: TestClient) -> None:
    tokens = await login(client, "hank")
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 200
    new = await resp.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert (await client.get("/api/v1/me", headers=bearer(new))).status == 200
    # the new refresh token works once more
    resp2 = await client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert resp2.status == 200


async def test_refresh_reuse_revokes_the_whole_family(client: TestClient) -> None:
    tokens = await login(client, "ivy")
    r1 = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    rotated = await r1.json()
    # the old refresh token comes back: a thief has it
    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status == 401
    assert (await error_of(reuse))["code"] == "REFRESH_TOKEN_REUSED"
    # everything of that login family is dead now, the legitimate rotated pair included
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert again.status == 401
    me = await client.get("/api/v1/me", headers=bearer(rotated))
    assert me.status == 401 and (await error_of(me))["code"] == "SESSION_REVOKED"
    # another login of the same person is a new family and unaffected
    fresh = await login(client, "ivy")
    assert (await client.get("/api/v1/me", headers=bearer(fresh))).status == 200


async def test_unknown_refresh_token_is_401(client: TestClient) -> None:
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": "rt_nope"})
    assert resp.status == 401 and (await error_of(resp))["code"] == "REFRESH_TOKEN_INVALID"


async def test_logout_revokes(client: TestClient) -> None:
    tokens = await login(client, "jack")
    resp = await client.post("/api/v1/auth/logout", headers=bearer(tokens))
    assert resp.status == 204
    assert (await client.get("/api/v1/me", headers=bearer(tokens))).status == 401
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 401


def _token(settings: Settings, **claims: object) -> str:
    now = int(time.time())
    payload = {
        "iss": settings.jwt.issuer,
        "aud": settings.jwt.audience,
        "sub": "1",
        "sid": "s1",
        "iat": now,
        "exp": now + 60,
    }
    payload.update(claims)
    key = claims.pop("_key", None) or settings.jwt.keys[settings.jwt.current_kid]
    payload.pop("_key", None)
    return jwt.encode(payload, key, algorithm="HS256", headers={"kid": settings.jwt.current_kid})


@pytest.mark.parametrize(
    "claims, code",
    [
        ({"exp": int(time.time()) - 10}, "TOKEN_EXPIRED"),
        ({"aud": "someone-else"}, "TOKEN_INVALID"),
        ({"iss": "evil"}, "TOKEN_INVALID"),
        ({"_key": "another-secret-that-is-long-enough-1234567890"}, "TOKEN_INVALID"),
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "wrong-key"],
)
async def test_bad_jwts_are_401(client: TestClient, settings: Settings, claims: dict, code: str) -> None:
    await login(client, "kate")
    resp = await client.get("/api/v1/me", headers=bearer(_token(settings, **claims)))
    assert resp.status == 401
    assert (await error_of(resp))["code"] == code


async def test_tampered_jwt_is_401(client: TestClient) -> None:
    tokens = await login(client, "leo")
    header, payload, sig = tokens["access_token"].split(".")
    tampered = ".".join([header, payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1], sig])
    resp = await client.get("/api/v1/me", headers=bearer(tampered))
    assert resp.status == 401
    garbage = await client.get("/api/v1/me", headers=bearer("not.a.jwt"))
    assert garbage.status == 401
    none = await client.get("/api/v1/me")
    assert none.status == 401 and (await error_of(none))["code"] == "UNAUTHORIZED"
