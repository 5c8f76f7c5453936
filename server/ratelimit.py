"""Rate limits shared by every process through Redis.

* :func:`hit` — a fixed-window counter for API rate limits (per user, per IP, ...): the
  ``limit``-th + 1 call within ``per_seconds`` raises :class:`RateLimited` with the
  seconds until the window opens (the error middleware answers 429 ``RATE_LIMITED`` with
  ``Retry-After``, API.md "Errors").
* :class:`TokenBucket` — a reserving token bucket for outgoing sends (WeChat quotas): a
  caller takes ``n`` tokens at once and is told how long to wait before using them, so
  many workers on many machines share one global rate without polling.

Both run one Redis command (or one Lua script) per call; the bucket uses Redis' own
clock (``TIME``) so the machines' clocks never need to agree.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

__all__ = ["RateLimited", "TokenBucket", "hit"]


class RateLimited(Exception):
    """Too many calls on one key: try again in ``retry_after`` seconds (≥ 1)."""

    def __init__(self, key: str, retry_after: int) -> None:
        super().__init__(f"rate limited: retry after {retry_after} s")
        self.key = key
        self.retry_after = retry_after


async def hit(redis: Any, key: str, *, limit: int, per_seconds: int) -> None:
    """Count one call against ``key``; :class:`RateLimited` when more than ``limit`` fall
    in one window.

    The window is aligned to ``per_seconds`` (fixed window): cheap (INCR + EXPIRE in one
    round trip) and good enough for abuse protection; ``Retry-After`` says when it opens.
    """
    if limit < 1 or per_seconds < 1:
        raise ValueError("limit and per_seconds must be >= 1")
    now = time.time()
    window = int(now // per_seconds)
    rkey = f"rl:{key}:{window}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(rkey)
        pipe.expire(rkey, per_seconds + 1)
        count, _ = await pipe.execute()
    if int(count) > limit:
        raise RateLimited(key, max(1, math.ceil((window + 1) * per_seconds - now)))


# KEYS[1] bucket; ARGV rate (tokens/s), burst, n. Tokens may go negative: that is the
# reservation of the callers waiting; the answer is how long this caller must wait.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate)
  ts = now
end
tokens = tokens - n
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst + n) / rate * 1000) + 60000)
local wait = 0
if tokens < 0 then
  wait = -tokens / rate
end
return tostring(wait)
"""


class TokenBucket:
    """A global send rate (``rate`` per second, bursts up to ``burst``) shared via Redis."""

    def __init__(self, redis: Any, key: str, *, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._redis = redis
        self.key = key
        self.rate = float(rate)
        self.burst = int(burst)

    async def reserve(self, n: int = 1) -> float:
        """Take ``n`` tokens; return the seconds to wait before using them (0: now)."""
        if n < 1:
            return 0.0
        answer = await self._redis.eval(
            _TAKE, 1, self.key, repr(self.rate), str(self.burst), str(n)
        )
        if isinstance(answer, bytes):
            answer = answer.decode()
        return max(0.0, float(answer))

    async def acquire(self, n: int = 1) -> float:
        """Take ``n`` tokens and sleep until they may be used; return the time slept."""
        wait = await self.reserve(n)
        if wait > 0:
            await asyncio.sleep(wait)
        return wait
