"""A circuit breaker for WeChat, shared by every worker through Redis."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

__all__ = ["CircuitBreaker"]

log = logging.getLogger(__name__)


class CircuitBreaker:
    """Global backoff when WeChat is down, shared by every worker through Redis.

    ``threshold`` failed sends in a row (no healthy answer in between, fleet-wide) open
    the circuit for ``open_seconds``; then exactly one worker sends one probe. A failed
    probe reopens it for twice as long (up to ``cap``); a healthy answer closes it.
    """

    # one hash tag: the four keys share a Redis Cluster slot (one node, one round trip)
    FAILS = "push:{cb}:fails"
    OPEN = "push:{cb}:open"
    TRIPS = "push:{cb}:trips"
    PROBE = "push:{cb}:probe"

    def __init__(
        self,
        redis: Any,
        *,
        threshold: int,
        open_seconds: float,
        cap: float,
        probe_ttl: float,
        on_trip: Callable[[float], None] | None = None,
    ) -> None:
        self._redis = redis
        self.threshold = max(1, threshold)
        self.open_seconds = open_seconds
        self.cap = cap
        self.probe_ttl = probe_ttl
        self._on_trip = on_trip

    async def open_for(self) -> float:
        """Seconds the circuit stays open (0 when closed or half-open)."""
        ttl = await self._redis.pttl(self.OPEN)
        return ttl / 1000 if ttl and ttl > 0 else 0.0

    async def gate(self) -> tuple[Literal["closed", "probe", "open"], float]:
        """May we send? ``closed``: yes; ``probe``: one send; ``open``: wait that long."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.pttl(self.OPEN)
            pipe.get(self.TRIPS)
            ttl, trips = await pipe.execute()
        if ttl and ttl > 0:
            return "open", ttl / 1000
        if trips and int(trips) > 0:
            if await self._redis.set(self.PROBE, "1", nx=True, px=int(self.probe_ttl * 1000)):
                return "probe", 0.0
            return "open", min(self.open_seconds, 1.0)  # someone else is probing
        return "closed", 0.0

    async def record(self, *, healthy: int, failed: int, probe: bool) -> None:
        """Report a chunk: ``healthy`` (non-transient) answers and ``failed`` (transient) ones."""
        if healthy:
            keys = [self.FAILS, self.TRIPS, self.PROBE] if probe else [self.FAILS]
            await self._redis.delete(*keys)
        elif failed:
            if probe:
                await self._trip()
                return
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(self.FAILS, failed)
                pipe.expire(self.FAILS, 300)
                count, _ = await pipe.execute()
            if int(count) >= self.threshold and not await self._redis.exists(self.OPEN):
                await self._trip()
        elif probe:
            await self._redis.delete(self.PROBE)  # nothing was sent: let another probe go

    async def _trip(self) -> None:
        trips = int(await self._redis.incr(self.TRIPS))
        await self._redis.expire(self.TRIPS, 86400)
        duration = min(self.cap, self.open_seconds * 2 ** (trips - 1))
        await self._redis.set(self.OPEN, "1", px=max(1, int(duration * 1000)))
        await self._redis.delete(self.FAILS, self.PROBE)
        log.warning("WeChat looks down: sending paused for %.1f s (trip %d)", duration, trips)
        if self._on_trip is not None:
            self._on_trip(duration)
