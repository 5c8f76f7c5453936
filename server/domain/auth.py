"""Mini-program login: code2session → user → access JWT + rotating refresh token.

Rules (API.md "Mini-program", issue #2):
* the access token is a short-lived HS256 JWT with a ``kid`` header (key rotation),
  ``iss``/``aud`` checked, ``sub`` the user id and ``sid`` the login family;
* the refresh token is opaque and single use: refreshing rotates it; presenting a used
  one again means it leaked, so the whole login family is revoked (access tokens too);
* logout revokes the family; ``session_key`` is stored encrypted and never returned;
* each user's login families are listed in Redis (``auth:user-sids:<id>``), so deleting an
  account ends every session and refresh token of it at once (:meth:`revoke_user`).

Revocation on the hot path (every authenticated request): a revoked login family is a
Redis key, shared by all server processes. Each process remembers what it revoked itself
(effective at once there) and, per login family, that Redis said "not revoked" for
``revocation_cache_seconds`` (default 2 s). So logout or refresh-token reuse takes effect
immediately in the process that handled it and within that many seconds in every other
process; 0 asks Redis on every request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, cast

import jwt
from redis.asyncio import Redis

from server.domain.errors import DomainError
from server.domain.models import User
from server.domain.pii import PiiCipher
from server.gateways.wechat import WeChatError, WeChatGateway, WeChatUnavailable
from server.ratelimit import hit
from server.settings import JwtSettings

_CACHE_MAX = 50_000
REVOCATION_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


def _unauthorized(code: str, message: str) -> DomainError:
    return DomainError(code, message)  # answered with WWW-Authenticate: Bearer (http_errors)


class AuthService:
    """Issues and checks tokens. Redis holds refresh tokens and revoked login families."""

    def __init__(
        self,
        *,
        jwt_settings: JwtSettings,
        redis: Redis,
        wechat: WeChatGateway,
        pii: PiiCipher,
        revocation_cache_seconds: float = REVOCATION_CACHE_SECONDS,
        logins_per_ip_per_minute: int = 120,
    ) -> None:
        self._cfg = jwt_settings
        self._logins_per_ip = logins_per_ip_per_minute
        self._redis = redis
        self._wechat = wechat
        self._pii = pii
        # token → (user_id, sid, exp): an unchanged token's signature is checked once,
        # not on every request (pyjwt costs ~40 µs a decode).
        self._verified: dict[str, tuple[int, str, float]] = {}
        # sid → monotonic time until which Redis's "not revoked" answer is trusted, and the
        # sids this process revoked itself (module docstring: the cross-process bound).
        self._revocation_ttl = max(0.0, revocation_cache_seconds)
        self._not_revoked_until: dict[str, float] = {}
        self._revoked_here: set[str] = set()

    # -- login ---------------------------------------------------------------------
    async def login(self, code: str, *, ip: str | None = None) -> tuple[User, TokenPair]:
        """Exchange a wx.login code for our tokens. Each client address has a per-minute
        login budget (issue #17 finding 12: 200 accounts a second from one address)."""
        if ip:
            await hit(self._redis, f"login:ip:{ip}", limit=self._logins_per_ip, per_seconds=60)
        try:
            session = await self._wechat.code2session(code)
        except WeChatUnavailable:
            raise DomainError("WECHAT_UNAVAILABLE", "微信服务暂不可用,请稍后重试") from None
        except WeChatError as err:
            raise _login_error(err) from None
        user, created = await User.get_or_create(openid=session.openid)
        user.session_key_enc = self._pii.encrypt(session.session_key, purpose="session_key")
        if session.unionid:
            user.unionid = session.unionid
        await user.save(update_fields=["session_key_enc", "unionid", "updated_at"])
        return user, await self._issue(user.id, sid=secrets.token_hex(12), new_family=True)

    async def refresh(self, refresh_token: str) -> TokenPair:
        key = _rt_key(refresh_token)
        record = await self._redis.hgetall(key)
        if b"uid" not in record or b"sid" not in record:  # none, or a half one (below)
            raise _unauthorized("REFRESH_TOKEN_INVALID", "登录已失效,请重新登录")
        uid = int(record[b"uid"])
        sid = cast(bytes, record[b"sid"]).decode()  # the client returns bytes (no decode_responses)
        if await self._redis.exists(_revoked_key(sid)):
            raise _unauthorized("SESSION_REVOKED", "登录已失效,请重新登录")
        # counted only while the record exists: HINCRBY on a record that expired since the
        # read would create a half record without TTL (and made the next refresh a 500)
        used = await self._redis.eval(_USE_ONCE, 1, key)
        if int(used) < 0:
            raise _unauthorized("REFRESH_TOKEN_INVALID", "登录已失效,请重新登录")
        if int(used) > 1:
            # A used refresh token came back: someone else has it. End the whole family.
            await self._revoke(sid)
            raise _unauthorized("REFRESH_TOKEN_REUSED", "检测到登录凭证被重复使用,已退出所有设备,请重新登录")
        return await self._issue(uid, sid=sid)

    async def logout(self, access_token: str) -> None:
        claims = self._decode(access_token)
        await self._revoke(str(claims["sid"]))

    async def revoke_user(self, user_id: int) -> int:
        """End every login family of ``user_id`` (account deletion): their access and
        refresh tokens are refused from now on (in other processes within
        ``revocation_cache_seconds``). Idempotent; returns how many families it ended."""
        key = _user_sids_key(user_id)
        sids = [s.decode() if isinstance(s, bytes) else str(s) for s in await self._redis.smembers(key)]
        for sid in sids:
            await self._revoke(sid)
        await self._redis.delete(key)
        return len(sids)

    # -- per request ------------------------------------------------------------------
    async def verify_access(self, token: str) -> int:
        now = time.time()
        hit = self._verified.get(token)
        if hit is None or hit[2] <= now:
            claims = self._decode(token)
            hit = (int(claims["sub"]), str(claims["sid"]), float(claims["exp"]))
            if len(self._verified) >= _CACHE_MAX:
                self._verified.clear()
            self._verified[token] = hit
        if await self._is_revoked(hit[1]):
            raise _unauthorized("SESSION_REVOKED", "登录已失效,请重新登录")
        return hit[0]

    async def _is_revoked(self, sid: str) -> bool:
        if sid in self._revoked_here:
            return True
        now = time.monotonic()
        if self._not_revoked_until.get(sid, 0.0) > now:
            return False
        if await self._redis.exists(_revoked_key(sid)):
            self._remember_revoked(sid)
            return True
        if self._revocation_ttl > 0:
            if len(self._not_revoked_until) >= _CACHE_MAX:
                self._not_revoked_until.clear()
            self._not_revoked_until[sid] = now + self._revocation_ttl
        return False

    def _remember_revoked(self, sid: str) -> None:
        self._not_revoked_until.pop(sid, None)
        if len(self._revoked_here) >= _CACHE_MAX:
            self._revoked_here.clear()  # Redis still knows them all
        self._revoked_here.add(sid)

    # -- internals ---------------------------------------------------------------------
    def _decode(self, token: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._cfg.keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise jwt.InvalidTokenError("unknown kid")
            return jwt.decode(
                token,
                key,
                algorithms=["HS256"],
                audience=self._cfg.audience,
                issuer=self._cfg.issuer,
                options={"require": ["exp", "iat", "sub", "sid", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("TOKEN_EXPIRED", "登录已过期,请重新登录") from None
        except jwt.InvalidTokenError:
            raise _unauthorized("TOKEN_INVALID", "登录凭证无效,请重新登录") from None

    async def _issue(self, user_id: int, *, sid: str, new_family: bool = False) -> TokenPair:
        now = int(time.time())
        kid = self._cfg.current_kid
        access = jwt.encode(
            {
                "iss": self._cfg.issuer,
                "aud": self._cfg.audience,
                "sub": str(user_id),
                "sid": sid,
                "iat": now,
                "exp": now + self._cfg.access_ttl_seconds,
            },
            self._cfg.keys[kid],
            algorithm="HS256",
            headers={"kid": kid},
        )
        refresh = "rt_" + secrets.token_urlsafe(32)
        # Not MULTI: the token's key and the user's family set are in two Redis Cluster
        # slots. Any failed write raises here, so a token is handed out only when all landed.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(_rt_key(refresh), mapping={"uid": user_id, "sid": sid, "used": 0})
            pipe.expire(_rt_key(refresh), self._cfg.refresh_ttl_seconds)
            if new_family:  # a login: remember the family under the user
                pipe.sadd(_user_sids_key(user_id), sid)
                pipe.expire(_user_sids_key(user_id), self._cfg.refresh_ttl_seconds)
            await pipe.execute()
        return TokenPair(access, refresh, self._cfg.access_ttl_seconds)

    async def _revoke(self, sid: str) -> None:
        ttl = max(self._cfg.refresh_ttl_seconds, self._cfg.access_ttl_seconds)
        self._remember_revoked(sid)  # at once in this process, even while Redis answers
        await self._redis.set(_revoked_key(sid), b"1", ex=ttl)


# KEYS[1] a refresh token's record: its use count plus one, or -1 when it is gone
_USE_ONCE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HINCRBY', KEYS[1], 'used', 1)
"""


def _rt_key(token: str) -> str:
    return "auth:rt:" + hashlib.sha256(token.encode()).hexdigest()


def _revoked_key(sid: str) -> str:
    return "auth:revoked:" + sid


def _user_sids_key(user_id: int) -> str:
    return f"auth:user-sids:{user_id}"


def _login_error(err: WeChatError) -> DomainError:
    if err.errcode == 40163:
        return DomainError("WECHAT_CODE_USED", "登录凭证已被使用,请重新登录(40163)")
    if err.errcode == 40029:
        return DomainError("WECHAT_CODE_INVALID", "登录凭证无效,请重新登录(40029)")
    if err.errcode == 45011:
        return DomainError(
            "WECHAT_RATE_LIMITED", "登录过于频繁,请稍后再试(45011)", retry_after=60
        )
    if err.transient:
        return DomainError("WECHAT_UNAVAILABLE", f"微信服务繁忙,请稍后重试({err.errcode})")
    return DomainError("WECHAT_LOGIN_FAILED", f"微信登录失败({err.errcode})")
