"""JWT and refresh-token attacks (the matrix's row; tests/api/test_auth.py holds the
basics: expired, wrong audience / issuer / key, tampered, refresh reuse)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.settings import Settings
from tests.factories import bearer, error_of, login


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _signed(header: dict[str, Any], claims: dict[str, Any], key: str) -> str:
    """HMAC-SHA256 over any header, as a forger would build it (pyjwt refuses odd kids)."""
    signing_input = f"{_b64(header)}.{_b64(claims)}"
    mac = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _claims(settings: Settings, user_id: int, sid: str = "s1", **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": settings.jwt.issuer, "aud": settings.jwt.audience, "sub": str(user_id), "sid": sid,
            "iat": now, "exp": now + 300, **extra}


async def _refused(client: TestClient, token: str, code: str = "TOKEN_INVALID") -> None:
    resp = await client.get("/api/v1/me", headers=bearer(token))
    assert resp.status == 401, await resp.text()
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert (await error_of(resp))["code"] == code


async def test_forged_headers_are_refused(client: TestClient, settings: Settings) -> None:
    tokens = await login(client, "alice")
    uid = tokens["user"]["id"]
    claims = _claims(settings, uid)
    key = settings.jwt.keys[settings.jwt.current_kid]
    kid = settings.jwt.current_kid
    # alg none, with and without a trailing signature, with a known kid
    for alg in ("none", "None", "NONE"):
        unsigned = f"{_b64({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{_b64(claims)}."
        await _refused(client, unsigned)
        await _refused(client, unsigned + "AAAA")
    # the right key but another HMAC size, or an asymmetric alg naming our secret as the key
    for alg in ("HS384", "HS512"):
        with warnings.catch_warnings():  # pyjwt warns that our key is short for these
            warnings.simplefilter("ignore")
            forged = jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
        await _refused(client, forged)
    await _refused(client, _signed({"alg": "RS256", "typ": "JWT", "kid": kid}, claims, key))
    # unknown kid, no kid, a kid that is not a string, a path-like kid
    for bad_kid in ("k-unknown", None, 1, ["k1"], {"k": "k1"}, "../k1", ""):
        header: dict[str, Any] = {"alg": "HS256", "typ": "JWT"}
        if bad_kid is not None:
            header["kid"] = bad_kid
        await _refused(client, _signed(header, claims, key))
    # a real token still works
    assert (await client.get("/api/v1/me", headers=bearer(tokens))).status == 200


async def test_a_rotated_out_kid_and_a_swapped_kid(
    client: TestClient, app: web.Application, settings: Settings
) -> None:
    """Two keys in service (a rotation): each token verifies only with the key its kid names."""
    tokens = await login(client, "bob")
    uid = tokens["user"]["id"]
    cfg = app[keys.auth_key]._cfg  # the running service's key set
    other_key = "a-second-rotation-key-that-is-long-enough-0123456789"
    cfg.keys["k2"] = other_key  # type: ignore[index]
    try:
        claims = _claims(settings, uid)
        good = jwt.encode(claims, other_key, algorithm="HS256", headers={"kid": "k2"})
        assert (await client.get("/api/v1/me", headers=bearer(good))).status == 200
        # signed with k2's key but claiming k1, and the other way round
        await _refused(client, jwt.encode(claims, other_key, algorithm="HS256", headers={"kid": "k1"}))
        k1 = settings.jwt.keys["k1"]
        await _refused(client, jwt.encode(claims, k1, algorithm="HS256", headers={"kid": "k2"}))
    finally:
        del cfg.keys["k2"]  # type: ignore[attr-defined]
    # k2 retired (a restart with the new key set): its tokens are dead though not expired
    later = _claims(settings, uid, iat=int(time.time()) - 1)
    await _refused(client, jwt.encode(later, other_key, algorithm="HS256", headers={"kid": "k2"}))


@pytest.mark.parametrize("missing", ["exp", "sid", "sub", "aud", "iss", "iat"])
async def test_a_token_missing_a_claim_is_refused(client: TestClient, settings: Settings, missing: str) -> None:
    claims = _claims(settings, 1)
    del claims[missing]
    kid = settings.jwt.current_kid
    await _refused(client, jwt.encode(claims, settings.jwt.keys[kid], algorithm="HS256", headers={"kid": kid}))


async def test_expired_even_after_being_cached(client: TestClient, settings: Settings) -> None:
    """The verified-token cache honours exp: a token used while valid is refused after."""
    tokens = await login(client, "carol")
    kid = settings.jwt.current_kid
    claims = _claims(settings, tokens["user"]["id"], sid="carol-sid", exp=int(time.time()) + 2)
    token = jwt.encode(claims, settings.jwt.keys[kid], algorithm="HS256", headers={"kid": kid})
    assert (await client.get("/api/v1/me", headers=bearer(token))).status == 200
    stale = _claims(settings, tokens["user"]["id"], sid="carol-sid", exp=int(time.time()) - 1)
    await _refused(
        client, jwt.encode(stale, settings.jwt.keys[kid], algorithm="HS256", headers={"kid": kid}), "TOKEN_EXPIRED"
    )


async def test_access_and_refresh_tokens_are_not_interchangeable(client: TestClient) -> None:
    tokens = await login(client, "dave")
    # a refresh token as the bearer
    await _refused(client, tokens["refresh_token"])
    # an access token as the refresh token: unknown, and the session goes on
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert resp.status == 401 and (await error_of(resp))["code"] == "REFRESH_TOKEN_INVALID"
    assert (await client.get("/api/v1/me", headers=bearer(tokens))).status == 200
    # the refresh token in the Authorization header of the refresh call does nothing either
    resp = await client.post("/api/v1/auth/refresh", json={}, headers=bearer(tokens["refresh_token"]))
    assert resp.status == 422


async def test_refresh_reuse_after_logout_and_after_rotation(client: TestClient) -> None:
    tokens = await login(client, "erin")
    r1 = await (await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
    r2 = await (await client.post("/api/v1/auth/refresh", json={"refresh_token": r1["refresh_token"]})).json()
    # the thief replays the first (already rotated twice) token: the whole family dies
    reuse = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status == 401 and (await error_of(reuse))["code"] == "REFRESH_TOKEN_REUSED"
    for t in (tokens, r1, r2):
        await _refused(client, t["access_token"], "SESSION_REVOKED")
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": r2["refresh_token"]})
    assert resp.status == 401
    # after logout the refresh token of that login is dead too
    other = await login(client, "erin")
    assert (await client.post("/api/v1/auth/logout", headers=bearer(other))).status == 204
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert resp.status == 401


async def test_concurrent_refreshes_of_one_token_win_once(client: TestClient) -> None:
    import asyncio

    tokens = await login(client, "fay")
    results = await asyncio.gather(
        *(client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}) for _ in range(5))
    )
    assert sorted(r.status for r in results) == [200, 401, 401, 401, 401]


async def test_a_refresh_record_that_expired_mid_refresh_is_invalid(client: TestClient, app: web.Application) -> None:
    """A refresh token's record that expires between the read and the use count must not
    leave a half record behind (that made the next refresh a 500)."""
    from server.domain.auth import _rt_key

    tokens = await login(client, "gus")
    redis = app[keys.redis_key]
    key = _rt_key(tokens["refresh_token"])
    await redis.delete(key)
    await redis.hset(key, "used", 1)  # what HINCRBY on an expired key leaves
    resp = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert resp.status == 401 and (await error_of(resp))["code"] == "REFRESH_TOKEN_INVALID"
