"""Automatic pipelining: Redis commands of concurrent webhook requests share round trips.

Every push costs two Redis round trips (claim, then store the reply). Under load many
pushes are in flight at once; sending each one's commands separately costs a syscall and a
Redis wake-up per request. ``RedisBatcher`` queues the commands of every request issued
while the previous batch is on the wire and sends them as one pipeline (Nagle-style: no
timer, an idle system sends at once), then hands each request its own results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["RedisBatcher"]

log = logging.getLogger(__name__)

# Queue a request's commands on a pipeline; returns how many it queued.
Build = Callable[[Any], int]


class RedisBatcher:
    """One writer task per app; ``run(build)`` returns that request's results, in order."""

    def __init__(self, redis: Any, *, max_batch: int = 256) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._queue: list[tuple[Build, asyncio.Future[list[Any]]]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    async def run(self, build: Build) -> list[Any]:
        """Queue ``build``'s commands for the next round trip and wait for their results."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.append((build, future))
        self._wakeup.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        return await future

    async def _write(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._send(batch)

    async def _send(self, batch: list[tuple[Build, asyncio.Future[list[Any]]]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        counts = [build(pipe) for build, _ in batch]
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 — connection trouble: every waiter gets it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for (_, future), count in zip(batch, counts, strict=True):
            mine = results[start : start + count]
            start += count
            if future.done():  # the request was cancelled meanwhile
                continue
            error = next((r for r in mine if isinstance(r, Exception)), None)
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(mine)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        for _, future in self._queue:
            if not future.done():
                future.cancel()
        self._queue.clear()
