"""Reviewers' claims on applications: two reviewers never both decide one.

A reviewer who opens an application to decide it claims it; another reviewer sees who
holds it and since when, and cannot decide it until the claim is released, the
decision is made, or the claim expires (``claim_seconds``, by the service's clock, so
tests move time instead of sleeping). One Redis key per application, taken by one Lua
script (check and set in one step: two reviewers racing for it get one winner). The
database's own compare-and-set in ``FamilyService.decide_review`` stays the last word.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from server.domain.clock import Clock, utc_now

# KEYS[1] the claim; ARGV owner, now_ms, ttl_ms, new value. Value: "until_ms|owner|at_ms".
# Answers the claim in force afterwards (ours, or the other reviewer's).
_TAKE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local s1 = string.find(cur, '|', 1, true)
  local s2 = string.find(cur, '|', s1 + 1, true)
  local until_ms = tonumber(string.sub(cur, 1, s1 - 1))
  local owner = string.sub(cur, s1 + 1, s2 - 1)
  if until_ms > tonumber(ARGV[2]) and owner ~= ARGV[1] then
    return cur
  end
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', tonumber(ARGV[3]) + 60000)
return ARGV[4]
"""
# KEYS[1] the claim; ARGV owner. Deletes it only when the owner holds it.
_RELEASE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local s1 = string.find(cur, '|', 1, true)
  local s2 = string.find(cur, '|', s1 + 1, true)
  if string.sub(cur, s1 + 1, s2 - 1) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 1
  end
end
return 0
"""


@dataclass(frozen=True)
class Claim:
    owner: str  # the staff name
    at: datetime
    until: datetime

    def held_by(self, owner: str) -> bool:
        return self.owner == owner


def _key(application_id: str) -> str:
    return f"review:claim:{application_id}"


def _parse(raw: Any) -> Claim:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    until_ms, rest = text.split("|", 1)
    owner, at_ms = rest.rsplit("|", 1)
    return Claim(
        owner=owner,
        at=datetime.fromtimestamp(int(at_ms) / 1000, UTC),
        until=datetime.fromtimestamp(int(until_ms) / 1000, UTC),
    )


class Claims:
    def __init__(self, redis: Any, *, seconds: int, clock: Clock = utc_now) -> None:
        self.redis = redis
        self.seconds = seconds
        self.clock = clock

    async def take(self, application_id: str, owner: str) -> Claim:
        """Claim (or renew our claim); answers the claim in force — someone else's when
        they hold it and it has not expired."""
        now_ms = int(self.clock().timestamp() * 1000)
        ttl_ms = self.seconds * 1000
        value = f"{now_ms + ttl_ms}|{owner}|{now_ms}"
        raw = await self.redis.eval(_TAKE, 1, _key(application_id), owner, str(now_ms), str(ttl_ms), value)
        return _parse(raw)

    async def current(self, application_id: str) -> Claim | None:
        raw = await self.redis.get(_key(application_id))
        if raw is None:
            return None
        claim = _parse(raw)
        return claim if claim.until > self.clock() else None

    async def release(self, application_id: str, owner: str) -> bool:
        return bool(await self.redis.eval(_RELEASE, 1, _key(application_id), owner))
