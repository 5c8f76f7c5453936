"""One WeChat access token per app, shared by every process through Redis.

Rules (getStableAccessToken, developers.weixin.qq.com):

* The token lives in Redis (``wx:token:<app>``) and in each process' memory; a send
  costs no token fetch and no Redis round trip while the token is fresh.
* Exactly one process refreshes at a time: a Redis lock (``SET NX PX``, released by
  compare-and-delete) across processes and one in-flight task per process (single
  flight), so a burst of callers causes one ``stable_token`` call.
* Early refresh: within ``early_refresh`` seconds of expiry the current token is still
  handed out while one background task renews it. Normal-mode ``stable_token`` only
  renews within the last 5 minutes, so ``early_refresh`` must stay below 300 s.
* On 40001 / 40014 / 42001 the caller reports the rejected token (:meth:`invalidate`)
  and retries once with what it gets back. If another process already replaced the
  token, that one is used; otherwise a normal-mode call is tried first (it renews an
  expired token) and only when WeChat hands back the very token it rejected is a
  *forced* refresh spent. Forced refreshes are budgeted in Redis — ``force_per_day``
  (20) a day, ``force_interval`` (30 s) apart — so a storm of 40001s becomes at most
  one forced refresh per 30 s and never exhausts the day's 20.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Literal, TypeGuard
from zoneinfo import ZoneInfo

from server.gateways.wechat import WeChatGateway, WeChatUnavailable

__all__ = ["TokenCache"]

log = logging.getLogger(__name__)

_SHANGHAI = ZoneInfo("Asia/Shanghai")
# A token with less than this left is not handed out: a send could outlive it.
MIN_VALID_SECONDS = 30.0
# Do not ask WeChat for a renewal more often than this from one process.
RENEW_EVERY_AT_MOST = 30.0

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class _Cached:
    token: str
    expires_at: float


class TokenCache:
    """The shared access token of one WeChat app (``mp`` mini-program, ``oa`` official account)."""

    def __init__(
        self,
        redis: Any,
        gateway: WeChatGateway,
        app: Literal["mp", "oa"],
        *,
        early_refresh: float = 240.0,
        force_per_day: int = 20,
        force_interval: float = 30.0,
        lock_ttl: float = 15.0,
        wait_timeout: float = 15.0,
        on_refresh: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._gateway = gateway
        self.app = app
        self.early_refresh = early_refresh
        self.force_per_day = force_per_day
        self.force_interval = force_interval
        self.lock_ttl = lock_ttl
        self.wait_timeout = wait_timeout
        self._on_refresh = on_refresh
        self._clock = clock
        self._key = f"wx:token:{app}"
        self._lock_key = f"wx:token:{app}:lock"
        self._local: _Cached | None = None
        self._inflight: asyncio.Task[str] | None = None
        self._no_renew_before = 0.0

    # ---- public ----------------------------------------------------------------------

    async def get(self) -> str:
        """A valid token: from memory, else Redis, else one refresh for everybody."""
        now = self._clock()
        local = self._local
        if local is not None:
            left = local.expires_at - now
            if left > self.early_refresh:
                return local.token
            if left > MIN_VALID_SECONDS:
                if now >= self._no_renew_before:
                    self._start(None)  # renew in the background; this token still works
                return local.token
        return await self._await(self._start(None))

    async def invalidate(self, token: str) -> str:
        """WeChat rejected ``token`` (40001 / 40014 / 42001): return a different, fresh one.

        Raises :class:`WeChatUnavailable` (transient) when no new token can be had now —
        e.g. the forced-refresh budget is spent — so the caller retries later.
        """
        local = self._local
        if (
            local is not None
            and local.token != token
            and local.expires_at - self._clock() > MIN_VALID_SECONDS
        ):
            return local.token
        return await self._await(self._start(token))

    async def close(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # shutting down: nothing to report
                pass

    # ---- single flight ------------------------------------------------------------------

    def _start(self, bad: str | None) -> asyncio.Task[str]:
        task = self._inflight
        if task is None or task.done():
            task = asyncio.ensure_future(self._refresh(bad))
            task.add_done_callback(_consume_exception)
            self._inflight = task
        return task

    @staticmethod
    async def _await(task: asyncio.Task[str]) -> str:
        # shield: a cancelled caller must not cancel the refresh others wait for
        return await asyncio.shield(task)

    # ---- refresh ------------------------------------------------------------------------

    async def _refresh(self, bad: str | None) -> str:
        self._no_renew_before = self._clock() + RENEW_EVERY_AT_MOST
        cached = await self._load()
        if self._usable(cached, bad, fresh=True):
            return self._keep(cached)
        lock_value = secrets.token_hex(8)
        deadline = self._clock() + self.wait_timeout
        while not await self._redis.set(
            self._lock_key, lock_value, nx=True, px=int(self.lock_ttl * 1000)
        ):
            # Another process is refreshing: use its result as soon as it lands.
            await asyncio.sleep(0.05)
            cached = await self._load()
            if self._usable(cached, bad, fresh=False):
                return self._keep(cached)
            if self._clock() > deadline:
                raise WeChatUnavailable("access token refresh is taking too long")
        try:
            cached = await self._load()
            if self._usable(cached, bad, fresh=True):
                return self._keep(cached)
            answer = await self._gateway.stable_token(self.app)
            mode = "normal"
            if bad is not None and answer.token == bad:
                # WeChat insists on the token it just rejected: only a forced refresh helps.
                await self._spend_forced_refresh()
                answer = await self._gateway.stable_token(self.app, force_refresh=True)
                mode = "forced"
                if answer.token == bad:  # WeChat declined to refresh (too soon on its clock)
                    raise WeChatUnavailable("forced token refresh returned the rejected token")
            fresh = _Cached(answer.token, self._clock() + answer.expires_in)
            await self._redis.set(
                self._key,
                json.dumps({"token": fresh.token, "expires_at": fresh.expires_at}),
                ex=max(1, int(answer.expires_in)),
            )
            self._note(mode)
            log.info(
                "wechat %s access token refreshed (%s), valid %ss",
                self.app,
                mode,
                answer.expires_in,
            )
            return self._keep(fresh)
        finally:
            await self._redis.eval(_RELEASE, 1, self._lock_key, lock_value)

    async def _spend_forced_refresh(self) -> None:
        """Take one forced refresh from the shared budget, or raise (transient) if none is left."""
        now = self._clock()
        day = datetime.fromtimestamp(now, _SHANGHAI).strftime("%Y%m%d")
        last_key = f"wx:token:{self.app}:force_last"
        day_key = f"wx:token:{self.app}:force:{day}"
        # SET NX with the interval as TTL: at most one forced refresh per interval, fleet-wide.
        spacing_ms = int(self.force_interval * 1000)
        if not await self._redis.set(last_key, str(now), nx=True, px=spacing_ms):
            self._note("refused")
            raise WeChatUnavailable("forced token refresh refused: too soon after the last one")
        used = int(await self._redis.incr(day_key))
        if used == 1:
            await self._redis.expire(day_key, 2 * 86400)
        if used > self.force_per_day:
            self._note("refused")
            raise WeChatUnavailable("forced token refresh refused: today's budget is spent")

    # ---- helpers ------------------------------------------------------------------------

    async def _load(self) -> _Cached | None:
        raw = await self._redis.get(self._key)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return _Cached(str(data["token"]), float(data["expires_at"]))
        except (ValueError, KeyError, TypeError):
            return None

    def _usable(self, cached: _Cached | None, bad: str | None, *, fresh: bool) -> TypeGuard[_Cached]:
        if cached is None or cached.token == bad:
            return False
        left = cached.expires_at - self._clock()
        if bad is not None:
            return left > MIN_VALID_SECONDS
        return left > (self.early_refresh if fresh else MIN_VALID_SECONDS)

    def _keep(self, cached: _Cached) -> str:
        self._local = cached
        return cached.token

    def _note(self, mode: str) -> None:
        if self._on_refresh is not None:
            self._on_refresh(self.app, mode)


def _consume_exception(task: asyncio.Task[str]) -> None:
    # Waiters see the exception through shield; a background renewal nobody awaits
    # must not log "exception was never retrieved".
    if not task.cancelled():
        task.exception()
