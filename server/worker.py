"""The notice delivery worker: ``python -m server worker`` or embedded in the server.

Standalone, the worker is a small aiohttp application: the same cleanup_ctx resources
as the server (ORM, Redis, one ClientSession, the WeChat gateway), the delivery loop as
one more cleanup_ctx, and ``/metrics``, ``/healthz``, ``/readyz`` on ``push.metrics_port``
(``PUSH_METRICS_PORT``; 0 picks a free port, logged). SIGTERM / SIGINT stop it after the
chunk in flight; SIGKILL loses nothing (leases, see server.domain.delivery).

Embedded (``server.run_worker = true``, the demo's default), :func:`worker_ctx` runs the
same loop inside the server process.
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
from typing import AsyncIterator

from aiohttp import web

from server import keys
from server.domain.delivery import Dispatcher, PushConfig
from server.settings import Settings

__all__ = ["Worker", "main", "worker_ctx"]

log = logging.getLogger(__name__)


def new_worker_id() -> str:
    """host-pid-random: unique per process, readable in ``notices.leased_by``."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    """Runs a :class:`Dispatcher` in a loop until told to stop."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher

    @classmethod
    def from_app(
        cls, app: web.Application, *, concurrency: int = 32, worker_id: str | None = None
    ) -> Worker:
        settings = app[keys.settings_key]
        return cls(
            Dispatcher(
                config=PushConfig.from_settings(settings),
                redis=app[keys.redis_key],
                gateway=app[keys.wechat_key],
                metrics=app[keys.metrics_key],
                worker_id=worker_id or new_worker_id(),
                concurrency=concurrency,
                # only with the in-process fake WeChat and demo data (never in production)
                demo_followers=settings.server.demo_data and keys.fake_wechat_key in app,
            )
        )

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
                wait = min(30.0, 0.5 * 2 ** min(failures, 6))
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
    except asyncio.TimeoutError:
        pass


def worker_ctx_factory(concurrency: int = 32):  # type: ignore[no-untyped-def]
    """A cleanup_ctx running the delivery loop beside the app's resources."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        worker = Worker.from_app(app, concurrency=concurrency)
        app[keys.push_worker_key] = worker
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop), name="push-worker")
        yield
        stop.set()
        try:
            # the chunk in flight finishes (bounded by the send timeout); then give up
            grace = worker.dispatcher.config.send_budget_seconds + 5
            await asyncio.wait_for(task, timeout=grace)
        except asyncio.TimeoutError:
            log.warning("push worker did not stop in time: cancelled (its leases will expire)")
        await worker.close()

    return ctx


#: Embedded mode (``server.run_worker``): registered by server.app.create_app.
worker_ctx = worker_ctx_factory()


async def main(settings: Settings, concurrency: int = 32) -> int:
    """``python -m server worker``: deliver notices until SIGTERM / SIGINT."""
    from server import lifecycle
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
    app = web.Application()
    app[keys.settings_key] = settings
    app[keys.metrics_key] = Metrics()
    app[keys.services_key] = {}
    app.cleanup_ctx.extend(
        [*lifecycle.core_contexts(), worker_ctx_factory(concurrency)]
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
