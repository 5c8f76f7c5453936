"""Automatic pipelining: Redis commands of concurrent webhook requests share round trips.

Every push costs two Redis round trips (claim, then store the reply). Under load many
pushes are in flight at once; sending each one's commands separately costs a syscall and a
Redis wake-up per request. ``RedisBatcher`` queues the commands issued during one
event-loop iteration and sends them as one pipeline (no timer: an idle system sends at
once), then hands each request its own reply.

The batch goes out on a connection of the client's own pool through redis-py's connection
API (``send_packed_command`` / ``read_response``, as its PubSub does; packed by hiredis),
not through ``Pipeline``: the pipeline's per-command bookkeeping and the ``socket_timeout``
it arms around every single reply cost 2.8x the wire work on this machine (13.6 vs 4.8 µs
a command, measured). One deadline bounds the whole round trip instead; a connection whose
round trip failed or timed out is disconnected, never reused half-read.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from hiredis import pack_command
from redis.exceptions import ResponseError

from server.redis_client import connect, is_cluster

__all__ = ["Coalescer", "RedisBatcher"]

K = TypeVar("K")
V = TypeVar("V")

log = logging.getLogger(__name__)

Command = tuple[Any, ...]


T = TypeVar("T")
R = TypeVar("R")


class _Batcher(Generic[T, R]):
    """Items queued during one event-loop iteration, and while a batch is being handled,
    go to the next ``_handle`` together: one batch in flight, no timer (an idle system
    handles at once), batches in submission order."""

    def __init__(self, *, max_batch: int = 256) -> None:
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._scheduled = False
        self._inflight: asyncio.Task[None] | None = None
        # The loop of the first caller (one batcher per app, one app per loop): each
        # asyncio.get_running_loop() costs a getpid() syscall, several µs on this machine.
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, asked for once (callers in the loop only)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _enqueue(self, item: T) -> asyncio.Future[R]:
        loop = self.loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
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

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._handle([item for item, _ in batch])
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
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller was cancelled meanwhile
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _handle(self, items: list[T]) -> list[R | BaseException]:
        """One result (or the exception for that item alone) per item, in order."""
        raise NotImplementedError

    async def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()
            await asyncio.gather(self._inflight, return_exceptions=True)
        for _, future in self._queue:
            if not future.done():
                future.cancel()
        self._queue.clear()


class RedisBatcher(_Batcher[Command, Any]):
    """``await run("GET", key)``: one command's raw reply (bytes, int, list, None).

    Commands queued during one event-loop iteration go out together; one pipeline is on
    the wire at a time, the rest wait for it to come back, growing the next batch (on
    this project's 2-CPU loopback measurements a socket write to Redis cost ~150 µs of
    CPU — the Redis wake-up — so the most batching was cheapest per message,
    bench/scenario_bot.py). Batches therefore leave in submission order: a command
    submitted later never overtakes an earlier one.

    A Redis error reply (``NOSCRIPT``, ``WRONGTYPE`` …) fails only its own command; a
    connection error or the ``timeout`` fails every command of the batch.
    """

    def __init__(self, redis: Any, *, max_batch: int = 256, timeout: float = 5.0,
                 idle_reconnect: float = 30.0) -> None:
        super().__init__(max_batch=max_batch)
        # A Redis Cluster has one pool per node: its own (non-transactional) pipeline
        # sends each batch as one round trip per node that holds a command's slot.
        self._cluster = redis if is_cluster(redis) else None
        self._pool = None if self._cluster is not None else redis.connection_pool
        self._timeout = timeout
        self._idle_reconnect = idle_reconnect
        self._last_sent = 0.0

    @property
    def cluster(self) -> bool:
        """Whether the batches go to a Redis Cluster (one slot per script, see bot.service)."""
        return self._cluster is not None

    @staticmethod
    def dedicated_client(url: str) -> Any:
        """A client for a batcher alone: no per-read ``socket_timeout`` (the batch has its
        deadline) and no ``health_check_interval`` (its per-reply clock read costs a
        getpid() syscall; a connection idle longer than ``idle_reconnect`` is reopened
        instead of PINGed). Connecting fails fast, without retries: a follower waiting
        for a passive reply had better get "系统繁忙" than WeChat's timeout."""
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return connect(
            url, socket_timeout=None, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0),
            health_check_interval=0, max_connections=8,
        )

    async def run(self, *command: Any) -> Any:
        """Queue ``command`` for the next round trip and wait for its reply."""
        return await self._enqueue(command)

    def submit(self, *command: Any) -> asyncio.Future[Any]:
        """Queue ``command``; the future resolves with its reply."""
        return self._enqueue(command)

    async def _handle(self, commands: list[Command]) -> list[Any]:
        if self._cluster is not None:
            return await self._handle_cluster(commands)
        pool = self._pool
        assert pool is not None  # a single Redis (the cluster took the branch above)
        async with asyncio.timeout(self._timeout):
            connection = await pool.get_connection()
            now = self._loop.time() if self._loop is not None else 0.0
            if now - self._last_sent > self._idle_reconnect:
                # an idle socket may have been dropped silently on the way: start afresh
                await connection.disconnect()
            self._last_sent = now
            try:
                # hiredis packs in C (redis-py's asyncio connection packs in Python,
                # 6.6 vs 0.9 µs for the claim command, measured)
                await connection.send_packed_command(b"".join(map(pack_command, commands)))
                replies = []
                for _ in commands:
                    try:
                        # math.inf: no per-reply socket_timeout (redis-py's documented
                        # opt-out); the deadline above bounds the whole round trip
                        replies.append(await connection.read_response(timeout=math.inf))
                    except ResponseError as error:
                        replies.append(error)
                return replies
            except BaseException:
                # replies may be left unread on the wire: never hand the socket on
                await connection.disconnect(nowait=True)
                raise
            finally:
                await pool.release(connection)


    async def _handle_cluster(self, commands: list[Command]) -> list[Any]:
        """The batch through the cluster client's pipeline: grouped by node, one round
        trip per node, a reply (or its own error) per command, redirections followed."""
        assert self._cluster is not None
        async with asyncio.timeout(self._timeout):
            pipe = self._cluster.pipeline()
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute(raise_on_error=False))


class Coalescer(_Batcher[K, V]):
    """``await get(key)``: concurrent lookups share one ``load(keys)`` call.

    Keys asked for during one event-loop iteration, and while a load is running, go to the
    next load together (one load in flight; no timer: an idle system loads at once). Every
    caller gets a fresh answer — nothing is cached across loads. ``load`` returns a value
    for every key it was given; an exception reaches every caller of that load.
    """

    def __init__(self, load: Callable[[list[K]], Awaitable[Mapping[K, V]]], *,
                 max_batch: int = 256) -> None:
        super().__init__(max_batch=max_batch)
        self._load = load

    def get(self, key: K) -> asyncio.Future[V]:
        return self._enqueue(key)

    async def _handle(self, keys: list[K]) -> list[V | BaseException]:
        values = await self._load(list(dict.fromkeys(keys)))
        return [values[key] for key in keys]
