"""The privacy job: materials past their retention purged, interrupted account deletions
finished — every ``[privacy] job_interval_seconds``.

It runs where notices are delivered: in the push worker process (``python -m server
worker``) and, in the embedded demo, inside the server (``RUN_WORKER=true``). Several
processes may run it: a Redis lock lets one round run at a time across all of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from server import keys
from server.domain.clock import Clock, utc_now
from server.privacy.config import PrivacyConfig
from server.privacy.deletion import DeletionService, FileStore
from server.privacy.retention import purge_due

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["PrivacyJob", "RoundResult", "privacy_job_ctx"]

log = logging.getLogger(__name__)

LOCK = "privacy:job"


@dataclass(frozen=True)
class RoundResult:
    ran: bool  # False: another process held the round
    purged: int = 0
    deletions_finished: int = 0


class PrivacyJob:
    """One round: :meth:`run_once`; the loop: :meth:`run`."""

    def __init__(
        self,
        *,
        config: PrivacyConfig,
        storage: FileStore,
        deletion: DeletionService,
        redis: Redis,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.storage = storage
        self.deletion = deletion
        self.redis = redis
        self.clock: Clock = clock or utc_now
        self.rounds = 0
        self.round_done = asyncio.Event()  # set after each round (tests wait on it)

    async def run_once(self) -> RoundResult:
        lock_seconds = max(60, int(self.config.job_interval_seconds))
        if not await self.redis.set(LOCK, b"1", nx=True, ex=lock_seconds):
            return RoundResult(ran=False)
        try:
            purged = await purge_due(storage=self.storage, config=self.config, now=self.clock())
            finished = await self.deletion.resume(
                older_than_seconds=self.config.deletion_resume_after_seconds
            )
        finally:
            await self.redis.delete(LOCK)
        if purged or finished:
            log.info("privacy job: %d materials purged, %d deletions finished", purged, finished)
        return RoundResult(ran=True, purged=purged, deletions_finished=finished)

    async def run(self, stop: asyncio.Event) -> None:
        """A round at start, then one per interval, until ``stop``; survives outages."""
        log.info("privacy job started (a round every %g s)", self.config.job_interval_seconds)
        failures = 0
        while not stop.is_set():
            wait = self.config.job_interval_seconds
            try:
                await self.run_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive a database or Redis outage
                failures += 1
                wait = min(wait, 2.0 ** min(failures, 6))
                log.exception("privacy job round failed (%d in a row); next in %.0f s", failures, wait)
            self.rounds += 1
            self.round_done.set()
            self.round_done = asyncio.Event()
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass


async def privacy_job_ctx(app: web.Application) -> AsyncIterator[None]:
    """The job's loop beside the app's resources (after ``privacy_ctx``)."""
    job = PrivacyJob(
        config=app[keys.privacy_config_key],
        storage=app[keys.storage_key],
        deletion=app[keys.deletion_key],
        redis=app[keys.redis_key],
    )
    app[keys.privacy_job_key] = job
    stop = asyncio.Event()
    task = asyncio.create_task(job.run(stop), name="privacy-job")
    yield
    stop.set()
    try:
        await asyncio.wait_for(task, timeout=30)
    except TimeoutError:
        task.cancel()
        log.warning("privacy job did not stop in time: cancelled")
