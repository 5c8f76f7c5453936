"""The notice delivery worker: ``python -m server worker`` or embedded in the server.

Standalone, the worker is a small aiohttp application: the same cleanup_ctx resources
as the server (ORM, Redis, one ClientSession, the WeChat gateway), the delivery loop as
one more cleanup_ctx, and ``/metrics``, ``/healthz``, ``/readyz`` on ``push.metrics_port``
(``PUSH_METRICS_PORT``; 0 picks a free port, logged). SIGTERM / SIGINT stop it after the
chunk in flight, giving back what it claimed and did not send; SIGKILL loses nothing
(leases, see :mod:`server.push.leases`).

Embedded (``server.run_worker = true``, the demo's default), :func:`worker_ctx_factory`
runs the same loop inside the server process (registered by ``server.app.create_app``).

This module is where the dispatcher's parts are wired: typed config from the settings,
the app's metrics registry, one shared access-token cache per WeChat app.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Literal

from aiohttp import web

from server import keys
from server.domain.clock import Clock, utc_now
from server.gateways.token_cache import TokenCache
from server.push.channels import FollowerLookup
from server.push.config import PushConfig
from server.push.dispatcher import Dispatcher, TokenSource
from server.push.metrics import PushMetrics
from server.settings import Settings

__all__ = ["Worker", "main", "outage_backoff", "worker_ctx_factory"]

log = logging.getLogger(__name__)

CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


def new_worker_id() -> str:
    """host-pid-random: unique per process, readable in ``notices.leased_by``."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


def outage_backoff(failures: int) -> float:
    """Seconds before the next round after ``failures`` failed rounds in a row (the
    database or Redis is down): 1, 2, 4 … s, at most 30 s."""
    return min(30.0, 0.5 * 2.0 ** min(failures, 6))


def build_dispatcher(
    app: web.Application,
    *,
    concurrency: int = 32,
    worker_id: str | None = None,
    clock: Clock = utc_now,
    follower_fallback: FollowerLookup | None = None,
) -> Dispatcher:
    """A dispatcher on the app's resources (settings, Redis, WeChat gateway, metrics)."""
    config = PushConfig.from_settings(app[keys.settings_key])
    redis, gateway = app[keys.redis_key], app[keys.wechat_key]
    metrics = PushMetrics.register(app[keys.metrics_key])

    def token_cache(name: Literal["oa", "mp"]) -> TokenSource:
        return TokenCache(
            redis,
            gateway,
            name,
            early_refresh=config.token_early_refresh_seconds,
            # waiting for another process' refresh must fit in one send's budget
            wait_timeout=config.send_timeout_seconds,
            lock_ttl=3 * config.send_timeout_seconds,
            force_per_day=config.force_refresh_per_day,
            force_interval=config.force_refresh_interval_seconds,
            on_refresh=lambda a, mode: metrics.token_refreshes.labels(a, mode).inc(),
        )

    return Dispatcher(
        config=config,
        redis=redis,
        gateway=gateway,
        tokens={"oa": token_cache("oa"), "mp": token_cache("mp")},
        metrics=metrics,
        worker_id=worker_id or new_worker_id(),
        concurrency=concurrency,
        clock=clock,
        follower_fallback=follower_fallback,
    )


class Worker:
    """Runs a :class:`Dispatcher` in a loop until told to stop; survives outages."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        backoff: Callable[[int], float] = outage_backoff,
    ) -> None:
        self.dispatcher = dispatcher
        self.backoff = backoff

    @classmethod
    def from_app(
        cls,
        app: web.Application,
        *,
        concurrency: int = 32,
        worker_id: str | None = None,
        clock: Clock = utc_now,
        follower_fallback: FollowerLookup | None = None,
        backoff: Callable[[int], float] = outage_backoff,
    ) -> Worker:
        dispatcher = build_dispatcher(
            app,
            concurrency=concurrency,
            worker_id=worker_id,
            clock=clock,
            follower_fallback=follower_fallback,
        )
        return cls(dispatcher, backoff=backoff)

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and deliver until ``stop`` is set, in ``push.lanes`` concurrent lanes.

        Each lane claims its own batch and sends it chunk by chunk; while one lane waits
        for the database or Redis, another one's sends are in flight.
        """
        d = self.dispatcher
        lanes = max(1, d.config.lanes)
        log.info("push worker %s started (%d lanes of %d sends)", d.worker_id, lanes, d.concurrency)
        await asyncio.gather(*(self._lane(stop, gauges=i == 0) for i in range(lanes)))
        log.info("push worker %s stopped", d.worker_id)

    async def _lane(self, stop: asyncio.Event, *, gauges: bool) -> None:
        d = self.dispatcher
        failures = 0
        next_gauges = 0.0
        while not stop.is_set():
            try:
                if gauges and time.monotonic() >= next_gauges:
                    await d.refresh_gauges()
                    next_gauges = time.monotonic() + d.config.queue_gauge_seconds
                _, wait = await d.run_once(should_stop=stop.is_set)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive a database or Redis outage
                failures += 1
                wait = self.backoff(failures)
                log.exception(
                    "push worker round failed (%d in a row); next in %.1f s", failures, wait
                )
            if wait > 0:
                await _sleep(stop, wait)

    async def drain(self, *, timeout: float = 10.0) -> None:
        """Process until no notice is pending (tests, benchmarks); bounded by ``timeout``."""
        d = self.dispatcher
        deadline = time.monotonic() + timeout
        while True:
            claimed, wait = await d.run_once()
            if claimed == 0 and not await d.refresh_gauges():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"notices still pending after {timeout} s")
            if claimed == 0:
                await asyncio.sleep(min(wait, 0.02))

    async def close(self) -> None:
        await self.dispatcher.close()


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


def worker_ctx_factory(
    concurrency: int = 32, *, follower_fallback: FollowerLookup | None = None
) -> CleanupCtx:
    """A cleanup_ctx running the delivery loop beside the app's resources.

    ``follower_fallback``: followers our table does not know — only the embedded demo
    passes one (``server.demo.push_follower_fallback``).
    """

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        worker = Worker.from_app(
            app, concurrency=concurrency, follower_fallback=follower_fallback
        )
        app[keys.push_worker_key] = worker
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop), name="push-worker")
        yield
        stop.set()
        try:
            # the chunk in flight finishes (bounded by the send timeout); then give up
            grace = worker.dispatcher.config.send_budget_seconds + 5
            await asyncio.wait_for(task, timeout=grace)
        except TimeoutError:
            log.warning("push worker did not stop in time: cancelled (its leases will expire)")
        await worker.close()

    return ctx


async def main(settings: Settings, concurrency: int = 32) -> int:
    """``python -m server worker``: deliver notices until SIGTERM / SIGINT."""
    from server import lifecycle
    from server.domain.pii import PiiCipher
    from server.metrics import Metrics
    from server.ops import healthz, metrics, readyz

    if settings.database_url.startswith("sqlite") or not settings.redis.url:
        # SQLite cannot lock rows across processes and the in-process Redis is not shared:
        # a second process would double-send. The embedded server runs its own worker.
        log.error(
            "python -m server worker needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL); "
            "with the embedded defaults the server delivers notices itself (RUN_WORKER=true)"
        )
        return 2
    # The server (or `python -m server migrate`) owns the schema: several workers starting
    # together must not race to migrate it.
    settings = dataclasses.replace(
        settings, database=dataclasses.replace(settings.database, schema="none")
    )
    config = PushConfig.from_settings(settings)
    follower_fallback = None
    if settings.server.demo_data:
        # the demo's wiring decides (it needs the in-process fake WeChat as well)
        from server.demo import push_follower_fallback

        follower_fallback = push_follower_fallback(settings)
    app = web.Application()
    app[keys.settings_key] = settings
    app[keys.metrics_key] = Metrics()
    app[keys.pii_key] = PiiCipher(settings.pii.keys, settings.pii.current_kid, settings.pii.hash_key)
    from server.privacy.context import privacy_ctx
    from server.privacy.job import privacy_job_ctx

    app.cleanup_ctx.extend(
        [
            *lifecycle.core_contexts(),
            worker_ctx_factory(concurrency, follower_fallback=follower_fallback),
            # the privacy job (retention, unfinished deletions) runs where notices go out
            lifecycle.services_ctx,
            lifecycle.family_ctx,
            privacy_ctx,
            privacy_job_ctx,
        ]
    )
    app.add_routes(
        [
            web.get("/healthz", healthz, name="healthz"),
            web.get("/readyz", readyz, name="readyz"),
            web.get("/metrics", metrics, name="metrics"),
        ]
    )
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    host = settings.server.host
    try:
        site = web.TCPSite(runner, host, config.metrics_port)
        await site.start()
    except OSError as exc:
        log.warning("metrics port %s unavailable (%s): using a free one", config.metrics_port, exc)
        site = web.TCPSite(runner, host, 0)
        await site.start()
    port = runner.addresses[-1][1]
    worker_id = app[keys.push_worker_key].dispatcher.worker_id
    print(f"push worker {worker_id}: metrics on http://{host}:{port}/metrics", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not on this platform
            pass
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0
