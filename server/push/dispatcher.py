"""One worker's delivery rounds: claim a batch, choose channels, send chunk by chunk, record.

* Sends go out in chunks of ``concurrency``, within the global rate (a Redis token bucket
  shared by every worker) and the circuit breaker (:mod:`server.push.breaker`); a chunk
  is only sent with more than one send's budget left on its lease.
* Retries: transient errors (-1, 45009, 45011, HTTP 5xx, timeouts, connection errors)
  come back after ``base · 2^(n-1)`` seconds with equal jitter, capped; permanent ones
  (43004, 43101, 40003, 47003, …) fail at once with WeChat's errcode; after
  ``max_attempts`` transient ones the notice fails with the last errcode.
* A chunk's states are written when the chunk is done (the crash window: see
  :mod:`server.push`).

Everything the dispatcher needs comes in: the typed config, Redis, the WeChat gateway, one
access-token source per app, its metrics, a clock. ``server.push.worker`` wires them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

from server.domain.clock import Clock, utc_now
from server.domain.models import Notice
from server.gateways.wechat import WeChatError, WeChatGateway, WeChatUnavailable
from server.push import channels, leases
from server.push.breaker import CircuitBreaker
from server.push.channels import FollowerLookup, Plan
from server.push.config import PushConfig
from server.push.metrics import PushMetrics
from server.push.receipts import apply_early_receipts
from server.ratelimit import TokenBucket

__all__ = ["Dispatcher", "TokenSource", "backoff_delay"]

#: Outcomes of one send, as metric labels.
Result = Literal["ok", "transient", "permanent"]


class TokenSource(Protocol):
    """One WeChat app's access token (``server.gateways.token_cache.TokenCache``)."""

    async def get(self) -> str: ...

    async def invalidate(self, token: str) -> str: ...

    async def close(self) -> None: ...


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Delay before retry ``attempt`` (1-based): ``base · 2^(attempt-1)`` capped, equal jitter.

    Equal jitter keeps at least half the step (no hot retries) and spreads the rest, so
    notices that failed together do not come back together.
    """
    step = min(cap, base * 2.0 ** max(0, attempt - 1))
    r = rng.random() if rng is not None else random.random()
    return step / 2 + r * step / 2


@dataclass
class _Outcome:
    plan: Plan
    result: Result
    msgid: int | None = None
    error: WeChatError | None = None


class Dispatcher:
    """Claims due notices and delivers them; one per worker process (or embedded server)."""

    def __init__(
        self,
        *,
        config: PushConfig,
        redis: Any,
        gateway: WeChatGateway,
        tokens: Mapping[str, TokenSource],
        metrics: PushMetrics,
        worker_id: str,
        concurrency: int = 32,
        rng: random.Random | None = None,
        clock: Clock = utc_now,
        follower_fallback: FollowerLookup | None = None,
    ) -> None:
        self.config = config
        self.redis = redis
        self.gateway = gateway
        self.tokens = tokens  # "oa" (template messages), "mp" (subscribe messages)
        self.metrics = metrics
        self.worker_id = worker_id[:64]
        self.concurrency = max(1, concurrency)
        self.rng = rng or random.Random()
        self.clock = clock
        # followers our table does not know (the embedded demo's rule; None in production)
        self.follower_fallback = follower_fallback
        self.bucket = TokenBucket(
            redis,
            "push:rate",
            rate=config.rate_per_second,
            burst=max(config.rate_burst, self.concurrency),
        )
        self.breaker = CircuitBreaker(
            redis,
            threshold=config.breaker_threshold,
            open_seconds=config.breaker_open_seconds,
            cap=config.breaker_open_cap_seconds,
            probe_ttl=config.send_budget_seconds + 5,
            on_trip=lambda _d: metrics.breaker_trips.inc(),
        )

    async def close(self) -> None:
        for source in self.tokens.values():
            await source.close()

    # ---- the queue ----------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Notice]:
        """Lease up to ``limit`` due notices to this worker."""
        return await leases.claim(
            worker_id=self.worker_id,
            limit=limit,
            lease_seconds=self.config.lease_seconds,
            now=self.clock(),
        )

    async def run_once(
        self, *, should_stop: Callable[[], bool] = lambda: False
    ) -> tuple[int, float]:
        """Claim and process one batch; return (claimed, seconds to wait before the next)."""
        open_for = await self.breaker.open_for()
        if open_for > 0:
            return 0, open_for
        notices = await self.claim(self.config.batch_size)
        if not notices:
            return 0, self.config.idle_poll_seconds
        wait = await self.process(notices, should_stop=should_stop)
        return len(notices), wait

    async def refresh_gauges(self) -> int:
        """Queue depth for the metrics endpoint; returns the pending count."""
        stats = await leases.queue_stats(now=self.clock())
        self.metrics.queue_depth.set(stats.depth)
        self.metrics.queue_due.set(stats.due)
        self.metrics.oldest_pending.set(stats.oldest_seconds)
        return stats.depth

    # ---- processing ---------------------------------------------------------------------

    async def process(
        self, notices: Sequence[Notice], *, should_stop: Callable[[], bool] = lambda: False
    ) -> float:
        """Deliver claimed notices chunk by chunk; return a wait hint (breaker open).

        Whatever is not sent when ``should_stop`` says so, or when the breaker opens, is
        given back at once (the breaker: due when it may close), not left to its lease.
        """
        plans, endings = await channels.plan(
            notices, self.config, follower_fallback=self.follower_fallback
        )
        await self._write(self._ended(endings))
        index = 0
        while index < len(plans):
            if should_stop():
                await self._release(plans[index:], delay=0.0)
                return 0.0
            mode, wait = await self.breaker.gate()
            if mode == "open":
                await self._release(plans[index:], delay=wait)
                return wait
            size = 1 if mode == "probe" else self.concurrency
            chunk = plans[index : index + size]
            index += len(chunk)
            await self.bucket.acquire(len(chunk))
            if not self._lease_left(chunk):
                # The lease could run out mid-send and another worker would claim these:
                # give them back unsent rather than risk a duplicate.
                await self._release(plans[index - len(chunk) :], delay=0.0)
                if mode == "probe":
                    await self.breaker.record(healthy=0, failed=0, probe=True)
                return 0.0
            chunk, lost = await channels.reserve_grants(chunk)
            unreachable = self._ended(lost)
            outcomes = list(await asyncio.gather(*(self._send(p) for p in chunk)))
            healthy = sum(1 for o in outcomes if o.result != "transient")
            await self.breaker.record(
                healthy=healthy, failed=len(outcomes) - healthy, probe=mode == "probe"
            )
            await channels.give_back_grants(
                (o.plan.grant_id, o.error.errcode)
                for o in outcomes
                if o.plan.channel == "subscribe"
                and o.error is not None
                and o.plan.grant_id is not None
            )
            if mode == "probe" and outcomes and not healthy:
                # WeChat is still down: that is no fault of this notice, so the failed
                # probe costs it no attempt (else one notice would absorb every probe).
                await self._write(unreachable)
                await self._release(chunk, delay=await self.breaker.open_for())
                continue
            await self._write([*self._finish(outcomes), *unreachable])
            await apply_early_receipts(
                self.redis, [o.msgid for o in outcomes if o.msgid is not None], clock=self.clock
            )
        return 0.0

    def _lease_left(self, chunk: Sequence[Plan]) -> bool:
        margin = self.config.send_budget_seconds + 1
        now = self.clock()
        return all(
            p.notice.lease_until is not None
            and (p.notice.lease_until - now).total_seconds() > margin
            for p in chunk
        )

    async def _send(self, plan: Plan) -> _Outcome:
        """One send within the send budget; counted and timed for the metrics."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.send_budget_seconds):
                outcome = await self._send_with_token_retry(plan)
        except TimeoutError:
            # the whole send (token refresh and retry included) must end within the budget
            # that _lease_left reserved, or the lease could pass to another worker mid-send
            outcome = _Outcome(plan, "transient", error=WeChatUnavailable("send budget exceeded"))
        finally:
            self.metrics.latency.labels(plan.channel).observe(time.perf_counter() - started)
        errcode = str(outcome.error.errcode) if outcome.error else "0"
        self.metrics.sends.labels(plan.channel, outcome.result, errcode).inc()
        return outcome

    async def _send_with_token_retry(self, plan: Plan) -> _Outcome:
        """Send; on 40001 / 40014 / 42001 get a fresh token and retry once."""
        source = self.tokens["oa" if plan.channel == "template" else "mp"]
        page = f"{self.config.mp_page}?id={plan.notice.id}"
        mp_state: Any = self.config.miniprogram_state
        token: str | None = None
        for attempt in (1, 2):
            try:
                token = await source.get() if token is None else await source.invalidate(token)
                if plan.channel == "subscribe":
                    await self.gateway.send_subscribe(
                        token,
                        openid=plan.openid,
                        template_id=plan.template_id,
                        data=plan.data,
                        page=page,
                        miniprogram_state=mp_state,
                    )
                    return _Outcome(plan, "ok")
                msgid = await self.gateway.send_template(
                    token,
                    openid=plan.openid,
                    template_id=plan.template_id,
                    data=plan.data,
                    miniprogram={"appid": self.config.mp_appid, "pagepath": page},
                )
                return _Outcome(plan, "ok", msgid=msgid)
            except WeChatError as exc:
                if exc.token_invalid and attempt == 1:
                    continue
                transient = exc.transient or exc.token_invalid
                return _Outcome(plan, "transient" if transient else "permanent", error=exc)
        raise AssertionError("unreachable: the loop always returns")

    def _finish(self, outcomes: Iterable[_Outcome]) -> list[Notice]:
        """Turn send outcomes into notice states (not yet written)."""
        now = self.clock()
        out: list[Notice] = []
        for o in outcomes:
            n = o.plan.notice
            n.channel = o.plan.channel
            n.attempts += 1
            if o.result == "ok":
                state = "sent" if o.plan.channel == "template" else "delivered"
                self._end(n, state, None)
                n.wx_msgid = o.msgid
                n.sent_at = now
                n.errcode = None
            elif o.result == "permanent" or n.attempts >= self.config.max_attempts:
                assert o.error is not None
                reason = o.error.message_zh
                if o.result == "transient":
                    reason = f"{reason}（已重试 {n.attempts} 次）"
                self._end(n, "failed", reason)
                n.errcode = o.error.errcode
            else:
                assert o.error is not None
                delay = backoff_delay(
                    n.attempts,
                    base=self.config.backoff_base_seconds,
                    cap=self.config.backoff_cap_seconds,
                    rng=self.rng,
                )
                n.state = "pending"
                n.next_attempt_at = now + timedelta(seconds=delay)
                n.lease_until = n.leased_by = None
                n.errcode = o.error.errcode
                n.reason = o.error.message_zh
            out.append(n)
        return out

    def _end(self, n: Notice, state: str, reason: str | None) -> Notice:
        n.state = state
        n.reason = reason
        n.next_attempt_at = n.lease_until = None  # leased_by stays: who handled it
        self.metrics.finished.labels(state).inc()
        return n

    def _ended(self, endings: Iterable[channels.Ending]) -> list[Notice]:
        return [self._end(e.notice, e.state, e.reason) for e in endings]

    async def _release(self, plans: Sequence[Plan], *, delay: float) -> None:
        """Give claimed notices back unsent (attempts unchanged), due after ``delay``."""
        if plans:
            await leases.give_back(
                [p.notice for p in plans],
                worker_id=self.worker_id,
                due_at=self.clock() + timedelta(seconds=delay),
            )

    async def _write(self, notices: Sequence[Notice]) -> None:
        await leases.write_states(notices, now=self.clock())
