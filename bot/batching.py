"""Automatic pipelining: Redis commands of concurrent webhook requests share round trips.

Every push costs two Redis round trips (claim, then store the reply). Under load many
pushes are in flight at once; sending each one's commands separately costs a syscall and a
Redis wake-up per request. ``RedisBatcher`` queues the commands issued during one
event-loop iteration and sends them as one pipeline (no timer: an idle system sends at
once), then hands each request its own results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Coalescer", "RedisBatcher"]

K = TypeVar("K")
V = TypeVar("V")

log = logging.getLogger(__name__)

# Queue a request's commands on a pipeline; returns how many it queued.
Build = Callable[[Any], int]


class RedisBatcher:
    """``run(build)`` returns that request's results, in order.

    Commands queued during one event-loop iteration go out together; at most
    ``max_inflight`` pipelines are on the wire at once, the rest wait for one to come
    back, growing the next batch. On this project's 2-CPU loopback measurements a socket
    write to Redis cost ~150 µs of CPU (the Redis wake-up), so one pipeline in flight —
    the most batching — was cheapest per message (bench/scenario_bot.py).
    """

    def __init__(self, redis: Any, *, max_batch: int = 256, max_inflight: int = 1) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._queue: list[tuple[Build, asyncio.Future[list[Any]]]] = []
        self._scheduled = False
        self._inflight: set[asyncio.Task[None]] = set()

    async def run(self, build: Build) -> list[Any]:
        """Queue ``build``'s commands for the next round trip and wait for their results."""
        return await self.submit(build)

    def submit(self, build: Build) -> asyncio.Future[list[Any]]:
        """Queue ``build``'s commands; the future resolves with their results. With one
        pipeline in flight, batches go out in submission order: a command submitted later
        never overtakes this one."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append((build, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue and len(self._inflight) < self._max_inflight:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            task = asyncio.ensure_future(self._send(batch))
            self._inflight.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._queue and not self._scheduled:
            self._flush()

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
        tasks = set(self._inflight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, future in self._queue:
            if not future.done():
                future.cancel()
        self._queue.clear()


class Coalescer(Generic[K, V]):
    """``await get(key)``: concurrent lookups share one ``load(keys)`` call.

    Keys asked for during one event-loop iteration, and while a load is running, go to the
    next load together (one load in flight; no timer: an idle system loads at once). Every
    caller gets a fresh answer — nothing is cached across loads. ``load`` returns a value
    for every key it was given; an exception reaches every caller of that load.
    """

    def __init__(self, load: Callable[[list[K]], Awaitable[Mapping[K, V]]], *,
                 max_batch: int = 256) -> None:
        self._load = load
        self._max_batch = max_batch
        self._queue: list[tuple[K, asyncio.Future[V]]] = []
        self._scheduled = False
        self._inflight: asyncio.Task[None] | None = None

    def get(self, key: K) -> asyncio.Future[V]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V] = loop.create_future()
        self._queue.append((key, future))
        if not self._scheduled and self._inflight is None:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        if self._inflight is not None or not self._queue:
            return
        batch = self._queue[: self._max_batch]
        del self._queue[: self._max_batch]
        self._inflight = asyncio.ensure_future(self._run(batch))
        self._inflight.add_done_callback(self._done)

    def _done(self, _task: asyncio.Task[None]) -> None:
        self._inflight = None
        if self._queue and not self._scheduled:
            self._flush()

    async def _run(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        try:
            values = await self._load(list(dict.fromkeys(key for key, _ in batch)))
        except BaseException as exc:  # every waiter gets it (cancellation included)
            for _, future in batch:
                if not future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for key, future in batch:
            if not future.done():
                future.set_result(values[key])

    async def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
            await asyncio.gather(self._inflight, return_exceptions=True)
        for _, future in self._queue:
            if not future.done():
                future.cancel()
        self._queue.clear()
