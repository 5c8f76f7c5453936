"""Delivery of 结算通知 through WeChat: claiming, channel choice, retries, state transitions.

The ``notices`` table is the outbox (SPEC.md "Settlement notices": created in the
settlement's own transaction). Workers claim due notices in batches:

* PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` inside a short transaction that stamps
  ``leased_by`` / ``lease_until`` and moves ``next_attempt_at`` to the lease's end, so
  workers on many machines never claim the same row, and a worker that dies (SIGKILL)
  leaves its rows to come due again when the lease ends. SQLite (one embedded process)
  ignores the lock clause; its transactions are serialised, so the same UPDATE-claim holds.
* States: ``pending`` → ``sent`` (template message accepted; ``wx_msgid`` kept) →
  ``delivered`` | ``failed`` (TEMPLATESENDJOBFINISH event); a subscribe message is
  ``delivered`` once WeChat accepts it (no receipt exists); ``failed`` with ``errcode``
  and ``reason`` for permanent errors or after ``max_attempts`` transient ones;
  ``undeliverable`` with a reason when the person cannot be reached on WeChat.
* Channel (per attempt): an official-account follower with the recipient's unionid gets
  a template message; else a remaining one-time subscription for the kind's
  mini-program template gets a subscribe message (the grant is taken in the same
  transaction that records the channel, given back on a transient failure); else
  ``undeliverable`` ("用户未关注公众号且未订阅消息").
* Retries: transient errors (-1, 45009, 45011, HTTP 5xx, timeouts, connection errors)
  come back after ``base · 2^(n-1)`` seconds with equal jitter, capped; permanent ones
  (43004, 43101, 40003, 47003, …) fail at once with WeChat's errcode. A circuit breaker
  in Redis (shared by all workers) stops sending while WeChat is down and lets one probe
  through per open period, which doubles up to a cap.
* Crash window: a send WeChat accepted is recorded when its chunk (≤ concurrency sends,
  one chunk per lane in flight) is written. A worker killed between the two leaves
  those notices to be sent again by the next claimer: the only way a duplicate can
  happen (README "Push delivery").
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from server.domain.errors import DomainError
from server.domain.models import Notice, OfficialFollower, SubscriptionGrant, User
from server.gateways.token_cache import TokenCache
from server.gateways.wechat import WeChatError, WeChatGateway, WeChatUnavailable
from server.metrics import Metrics
from server.ratelimit import TokenBucket
from server.settings import Settings, typed_table

__all__ = [
    "CircuitBreaker",
    "Dispatcher",
    "PushConfig",
    "backoff_delay",
    "on_template_send_finished",
    "record_subscription_results",
    "remember_follower",
    "render_data",
]

log = logging.getLogger(__name__)

_SHANGHAI = ZoneInfo("Asia/Shanghai")

REASON_UNREACHABLE = "用户未关注公众号且未订阅消息"
REASON_NO_RECIPIENT = "通知没有接收人"
REASON_NO_TEMPLATE = "未配置该类通知的消息模板"
REASON_USER_BLOCK = "用户拒收"
REASON_SYSTEM_FAILED = "微信系统发送失败"

#: Outcomes of one send, as metric labels.
Result = Literal["ok", "transient", "permanent"]


# ---- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class KindTemplates:
    """Template ids and keyword maps of one notice kind (config ``[push.kinds.<kind>]``)."""

    oa_template: str
    mp_template: str
    oa_data: Mapping[str, str]
    mp_data: Mapping[str, str]


@dataclass(frozen=True)
class PushConfig:
    """The ``[push]`` table of config/default.toml, typed."""

    lease_seconds: float = 60.0
    batch_size: int = 200
    lanes: int = 2
    max_attempts: int = 8
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 600.0
    rate_per_second: float = 200.0
    rate_burst: int = 200
    idle_poll_seconds: float = 1.0
    queue_gauge_seconds: float = 5.0
    breaker_threshold: int = 10
    breaker_open_seconds: float = 5.0
    breaker_open_cap_seconds: float = 120.0
    token_early_refresh_seconds: float = 240.0
    force_refresh_per_day: int = 20
    force_refresh_interval_seconds: float = 30.0
    metrics_port: int = 9108
    mp_page: str = "pages/notices/index"
    miniprogram_state: str = "formal"
    subscription_report_limit: int = 30
    mp_appid: str = ""
    send_timeout_seconds: float = 5.0
    med_types: Mapping[str, str] = field(default_factory=dict)
    kinds: Mapping[str, KindTemplates] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> PushConfig:
        raw = dict(settings.section("push"))
        kinds = {
            name: KindTemplates(
                oa_template=str(table.get("oa_template", "")),
                mp_template=str(table.get("mp_template", "")),
                oa_data=dict(table.get("oa_data", {})),
                mp_data=dict(table.get("mp_data", {})),
            )
            for name, table in dict(raw.pop("kinds", {})).items()
        }
        med_types = {str(k): str(v) for k, v in dict(raw.pop("med_types", {})).items()}
        config = typed_table(
            cls, raw, "push",
            mp_appid=settings.wechat.mp_appid,
            send_timeout_seconds=settings.wechat.timeout_seconds,
            med_types=med_types,
            kinds=kinds,
        )
        config.validate()
        return config

    @property
    def send_budget_seconds(self) -> float:
        """The longest one send may take, token refresh and its one retry included."""
        return 4 * self.send_timeout_seconds

    def validate(self) -> None:
        """Refuse settings that would stall or spin the worker."""
        margin = self.send_budget_seconds + 1
        if self.lease_seconds <= margin:
            # a chunk is only sent with more than this left on its lease
            raise ValueError(
                f"push.lease_seconds must exceed 4 × wechat.timeout_seconds + 1 = {margin:g}"
            )
        for name in ("batch_size", "lanes", "max_attempts", "rate_burst", "breaker_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"push.{name} must be >= 1")
        if self.rate_per_second <= 0 or self.backoff_base_seconds <= 0:
            raise ValueError("push.rate_per_second and push.backoff_base_seconds must be > 0")
        for kind, t in self.kinds.items():
            for key in (*t.oa_data, *t.mp_data):
                match = _KEY_TYPE.match(key)
                if not match or match.group(1) not in _KEYWORD_TYPES:
                    raise ValueError(f"push.kinds.{kind}: {key!r} is not a WeChat keyword")

    def mp_templates(self) -> set[str]:
        return {k.mp_template for k in self.kinds.values() if k.mp_template}


# ---- pure rules ---------------------------------------------------------------------------

# Keyword limits — WeChat 订阅消息参数值内容限制; OA template fields: ≤ 20
# characters, no line breaks, no first/remark since 2023-05-04
# (关于规范公众号模板消息的再次公告).
_THING_MAX = 20
_CHARSTR_MAX = 32
_PHRASE_MAX = 5
_NAME_MAX = 10
_KEY_TYPE = re.compile(r"^([a-z_]+?)\d+$")
_KEYWORD_TYPES = frozenset(
    {"thing", "number", "letter", "symbol", "character_string", "time", "date", "amount",
     "phone_number", "car_number", "name", "phrase"}
)
_PRINTABLE_ASCII = re.compile(r"[^\x21-\x7e]")


def _truncate(text: str, limit: int) -> str:
    text = " ".join(str(text).split())  # no line breaks: WeChat drops them
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _yuan(fen: Any) -> str:
    """Integer 分 → ``"12.34元"`` (exact, Decimal) — the amount keyword's format."""
    value = (Decimal(int(fen)) / 100).quantize(Decimal("0.01"))
    return f"{value}元"


def _local_time(value: Any) -> str:
    """ISO time (UTC or with offset) → ``"2026-11-23 14:05"`` in Asia/Shanghai."""
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(_SHANGHAI).strftime("%Y-%m-%d %H:%M")


def format_keyword(key: str, value: Any) -> str:
    """Format one value for a WeChat keyword by its type prefix (thing, amount, time, …)."""
    match = _KEY_TYPE.match(key)
    kind = match.group(1) if match else "thing"
    if kind == "amount":
        return _yuan(value)
    if kind in ("time", "date"):
        return _local_time(value)
    if kind == "character_string":
        return _truncate(_PRINTABLE_ASCII.sub("", str(value)) or "-", _CHARSTR_MAX)
    if kind == "number":
        return str(value)
    if kind == "phrase":
        return str(value)[:_PHRASE_MAX]
    if kind == "name":
        return str(value)[:_NAME_MAX]
    return _truncate(str(value), _THING_MAX)


def render_data(
    keywords: Mapping[str, str], data: Mapping[str, Any], *, med_types: Mapping[str, str]
) -> dict[str, str]:
    """Map a notice's semantic fields to template keywords.

    ``keywords`` maps a WeChat keyword to a field name (``"a|b"``: the first present;
    ``"=text"``: literal text). A keyword whose field is absent is left out.
    """
    out: dict[str, str] = {}
    for key, source in keywords.items():
        if source.startswith("="):
            out[key] = format_keyword(key, source[1:])
            continue
        value = next(
            (data[name] for name in source.split("|") if data.get(name) not in (None, "")), None
        )
        if value is None:
            continue
        if source == "med_type":
            value = med_types.get(str(value), str(value))
        out[key] = format_keyword(key, value)
    return out


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Delay before retry ``attempt`` (1-based): ``base · 2^(attempt-1)`` capped, equal jitter.

    Equal jitter keeps at least half the step (no hot retries) and spreads the rest, so
    notices that failed together do not come back together.
    """
    step = min(cap, base * (2 ** max(0, attempt - 1)))
    r = (rng or random).random()
    return step / 2 + r * step / 2


# ---- bot callbacks and the mini-program's grant report --------------------------------------


EARLY_RECEIPT_TTL = 3600


def _early_receipt_key(msgid: int) -> str:
    return f"push:receipt:{int(msgid)}"


def _receipt_values(status: str, msgid: int) -> dict[str, Any] | None:
    normalized = " ".join(status.lower().replace(":", ": ").split())
    if normalized == "success":
        return {"state": "delivered"}
    if "user block" in normalized:
        return {"state": "failed", "reason": REASON_USER_BLOCK}
    if normalized.startswith("failed"):
        return {"state": "failed", "reason": REASON_SYSTEM_FAILED}
    log.warning("TEMPLATESENDJOBFINISH with unknown status %r (msgid %s)", status, msgid)
    return None


async def on_template_send_finished(*, msgid: int, status: str, redis: Any = None) -> bool:
    """TEMPLATESENDJOBFINISH: ``success`` → delivered; ``failed:user block`` → failed
    (用户拒收); ``failed: system failed`` → failed. Returns whether a notice changed.

    Only a ``sent`` notice moves: replays and late events change nothing. WeChat's receipt
    can arrive before the worker has written the send it reports (msgid and ``sent`` are
    stored when the send call returns): with ``redis``, a receipt for a msgid no notice
    carries yet is kept for an hour and applied by the worker right after it writes the
    send (``apply_early_receipts``); the update is tried again after parking, so whichever
    side comes second applies it.
    """
    values = _receipt_values(status, msgid)
    if values is None:
        return False

    async def apply() -> bool:
        now = datetime.now(timezone.utc)
        return bool(
            await Notice.filter(wx_msgid=msgid, state="sent").update(**values, updated_at=now)
        )

    if await apply():
        return True
    if redis is None or await Notice.filter(wx_msgid=msgid).exists():
        return False
    await redis.set(_early_receipt_key(msgid), status, ex=EARLY_RECEIPT_TTL)
    return await apply()


async def apply_early_receipts(redis: Any, msgids: Sequence[int]) -> int:
    """Receipts that came before the worker wrote their sends (see above): apply them."""
    if not msgids:
        return 0
    keys = [_early_receipt_key(m) for m in msgids]
    applied = 0
    for msgid, raw in zip(msgids, await redis.mget(keys), strict=True):
        if raw is None:
            continue
        status = raw.decode() if isinstance(raw, bytes) else str(raw)
        applied += await on_template_send_finished(msgid=msgid, status=status)
        await redis.delete(_early_receipt_key(msgid))
    return applied


async def remember_follower(*, oa_openid: str, unionid: str | None, subscribed: bool) -> None:
    """Upsert an official-account follower (bot subscribe / unsubscribe events, user info).

    An unsubscribe event carries no unionid: the known one is kept.
    """
    values: dict[str, Any] = {"subscribed": subscribed}
    if unionid:
        values["unionid"] = unionid
    if await OfficialFollower.filter(oa_openid=oa_openid).update(**values):
        return
    try:
        await OfficialFollower.create(oa_openid=oa_openid, **values)
    except IntegrityError:  # created meanwhile by a concurrent event
        await OfficialFollower.filter(oa_openid=oa_openid).update(**values)


SUBSCRIBE_RESULTS = ("accept", "reject", "ban", "filter")


async def record_subscription_results(
    *, user_id: int, results: Mapping[str, str], config: PushConfig
) -> tuple[dict[str, int], list[str]]:
    """wx.requestSubscribeMessage results → one more one-time grant per ``accept``.

    ``ban`` (the user switched the template off) clears the grants; ``reject`` and
    ``filter`` change nothing. Keys that are not our templates (e.g. ``errMsg``) are
    ignored and listed. Returns (remaining per reported template, ignored keys).
    """
    ours = config.mp_templates()
    bad = {
        tid: "INVALID_SUBSCRIBE_RESULT"
        for tid, result in results.items()
        if tid in ours and result not in SUBSCRIBE_RESULTS
    }
    if bad:
        raise DomainError(
            "VALIDATION_FAILED", "订阅结果只能是 accept、reject、ban 或 filter", 422, fields=bad
        )
    ignored = sorted(tid for tid in results if tid not in ours)
    grants: dict[str, int] = {}
    for tid, result in results.items():
        if tid not in ours:
            continue
        grant = SubscriptionGrant.filter(user_id=user_id, template_id=tid)
        if result == "accept":
            if not await grant.update(remaining=F("remaining") + 1):
                try:
                    await SubscriptionGrant.create(user_id=user_id, template_id=tid, remaining=1)
                except IntegrityError:
                    await grant.update(remaining=F("remaining") + 1)
        elif result == "ban":
            await grant.update(remaining=0)
        row = await grant.first()
        grants[tid] = row.remaining if row else 0
    return grants, ignored


# ---- circuit breaker ------------------------------------------------------------------------


class CircuitBreaker:
    """Global backoff when WeChat is down, shared by every worker through Redis.

    ``threshold`` failed sends in a row (no healthy answer in between, fleet-wide) open
    the circuit for ``open_seconds``; then exactly one worker sends one probe. A failed
    probe reopens it for twice as long (up to ``cap``); a healthy answer closes it.
    """

    FAILS = "push:cb:fails"
    OPEN = "push:cb:open"
    TRIPS = "push:cb:trips"
    PROBE = "push:cb:probe"

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


def _demo_follower(unionid: str | None) -> str | None:
    """The fake WeChat's convention: unionid union-<user> follows as oa-<user>."""
    if unionid and unionid.startswith("union-"):
        return "oa-" + unionid.removeprefix("union-")
    return None


# ---- the dispatcher -------------------------------------------------------------------------


@dataclass
class _Plan:
    notice: Notice
    channel: Literal["template", "subscribe"]
    openid: str
    template_id: str
    data: dict[str, str]
    grant_id: int | None = None


@dataclass
class _Outcome:
    plan: _Plan
    result: Result
    msgid: int | None = None
    error: WeChatError | None = None


_WRITE_FIELDS = (
    "state",
    "channel",
    "attempts",
    "next_attempt_at",
    "lease_until",
    "leased_by",
    "errcode",
    "reason",
    "wx_msgid",
    "sent_at",
    "updated_at",
)


_PG_TYPES = {
    "id": "uuid",
    "state": "varchar",
    "channel": "varchar",
    "attempts": "int",
    "next_attempt_at": "timestamptz",
    "lease_until": "timestamptz",
    "leased_by": "varchar",
    "errcode": "int",
    "reason": "varchar",
    "wx_msgid": "bigint",
    "sent_at": "timestamptz",
    "updated_at": "timestamptz",
}
_PG_WRITE = (
    "UPDATE notices AS n SET "
    + ", ".join(f"{f} = u.{f}" for f in _WRITE_FIELDS)
    + " FROM unnest("
    + ", ".join(f"${i}::{_PG_TYPES[f]}[]" for i, f in enumerate(("id", *_WRITE_FIELDS), start=1))
    + ") AS u("
    + ", ".join(("id", *_WRITE_FIELDS))
    + ") WHERE n.id = u.id"
)


class Dispatcher:
    """Claims due notices and delivers them; one per worker process (or embedded server)."""

    def __init__(
        self,
        *,
        config: PushConfig,
        redis: Any,
        gateway: WeChatGateway,
        metrics: Metrics,
        worker_id: str,
        concurrency: int = 32,
        rng: random.Random | None = None,
        demo_followers: bool = False,
    ) -> None:
        self.config = config
        # Demo only (the in-process fake WeChat, API.md "Demo mode"): official-account
        # openid oa-<user> is the follower of unionid union-<user> even before the bot
        # has seen a subscribe event, so the demo's notices arrive as template messages.
        self.demo_followers = demo_followers
        self.redis = redis
        self.gateway = gateway
        self.worker_id = worker_id[:64]
        self.concurrency = max(1, concurrency)
        self.rng = rng or random.Random()
        self._sends = metrics.counter(
            "push_sends_total",
            "WeChat sends by channel, result and errcode",
            ("channel", "result", "errcode"),
        )
        self._latency = metrics.histogram(
            "push_send_latency_seconds",
            "Latency of one WeChat send (token retry included)",
            ("channel",),
        )
        self._finished = metrics.counter(
            "push_notices_finished_total", "Notices that left pending, by state", ("state",)
        )
        self._tokens = metrics.counter(
            "push_token_refresh_total", "Access-token refreshes by app and mode", ("app", "mode")
        )
        self._trips = metrics.counter("push_breaker_trips_total", "Times the WeChat circuit opened")
        self._queue = metrics.gauge("push_queue_depth", "Pending notices (due or not)")
        self._due = metrics.gauge("push_queue_due", "Pending notices due now")
        self._oldest = metrics.gauge(
            "push_oldest_pending_seconds", "Age of the oldest pending notice"
        )
        self.tokens: dict[str, TokenCache] = {
            app: TokenCache(
                redis,
                gateway,
                app,  # type: ignore[arg-type]
                early_refresh=config.token_early_refresh_seconds,
                # waiting for another process' refresh must fit in one send's budget
                wait_timeout=config.send_timeout_seconds,
                lock_ttl=3 * config.send_timeout_seconds,
                force_per_day=config.force_refresh_per_day,
                force_interval=config.force_refresh_interval_seconds,
                on_refresh=lambda a, mode: self._tokens.labels(a, mode).inc(),
            )
            for app in ("oa", "mp")
        }
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
            on_trip=lambda _d: self._trips.inc(),
        )

    async def close(self) -> None:
        for cache in self.tokens.values():
            await cache.close()

    # ---- claiming ---------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Notice]:
        """Lease up to ``limit`` due notices to this worker (FOR UPDATE SKIP LOCKED)."""
        now = datetime.now(timezone.utc)
        until = now + timedelta(seconds=self.config.lease_seconds)
        async with in_transaction() as conn:
            rows = await (
                Notice.filter(state="pending")
                .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                .order_by("created_at")
                .limit(limit)
                .select_for_update(skip_locked=True)
                .using_db(conn)
            )
            if not rows:
                return []
            await Notice.filter(id__in=[n.id for n in rows]).using_db(conn).update(
                leased_by=self.worker_id, lease_until=until, next_attempt_at=until
            )
        for n in rows:
            n.leased_by, n.lease_until, n.next_attempt_at = self.worker_id, until, until
        return list(rows)

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
        now = datetime.now(timezone.utc)
        pending = Notice.filter(state="pending")
        depth = await pending.count()
        due = await pending.filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        ).count()
        oldest = await pending.order_by("created_at").limit(1).values_list("created_at", flat=True)
        self._queue.set(depth)
        self._due.set(due)
        self._oldest.set((now - oldest[0]).total_seconds() if oldest else 0)
        return depth

    # ---- processing ---------------------------------------------------------------------

    async def process(
        self, notices: Sequence[Notice], *, should_stop: Callable[[], bool] = lambda: False
    ) -> float:
        """Deliver claimed notices chunk by chunk; return a wait hint (breaker open)."""
        plans, done = await self._plan(notices)
        await self._write(done)
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
            chunk, unreachable = await self._reserve_grants(chunk)
            outcomes = list(await asyncio.gather(*(self._send(p) for p in chunk)))
            healthy = sum(1 for o in outcomes if o.result != "transient")
            await self.breaker.record(
                healthy=healthy, failed=len(outcomes) - healthy, probe=mode == "probe"
            )
            await self._give_back_grants(outcomes)
            if mode == "probe" and outcomes and not healthy:
                # WeChat is still down: that is no fault of this notice, so the failed
                # probe costs it no attempt (else one notice would absorb every probe).
                await self._write(unreachable)
                await self._release(chunk, delay=await self.breaker.open_for())
                continue
            await self._write([*self._finish(outcomes), *unreachable])
            await apply_early_receipts(
                self.redis, [o.msgid for o in outcomes if o.msgid is not None]
            )
        return 0.0

    def _lease_left(self, chunk: Sequence[_Plan]) -> bool:
        margin = self.config.send_budget_seconds + 1
        now = datetime.now(timezone.utc)
        return all(
            p.notice.lease_until is not None
            and (p.notice.lease_until - now).total_seconds() > margin
            for p in chunk
        )

    async def _plan(self, notices: Sequence[Notice]) -> tuple[list[_Plan], list[Notice]]:
        """Choose each notice's channel in a few bulk queries; unreachable ones end here."""
        user_ids = {n.recipient_id for n in notices if n.recipient_id}  # type: ignore[attr-defined]
        users = {
            u["id"]: u for u in await User.filter(id__in=user_ids).values("id", "openid", "unionid")
        } if user_ids else {}
        unionids = {u["unionid"] for u in users.values() if u["unionid"]}
        followers: dict[str, str] = {}
        if unionids:
            for f in await OfficialFollower.filter(unionid__in=unionids, subscribed=True).values(
                "oa_openid", "unionid"
            ):
                followers[f["unionid"]] = f["oa_openid"]
        wanted = {
            self.config.kinds[n.kind].mp_template
            for n in notices
            if n.kind in self.config.kinds and self.config.kinds[n.kind].mp_template
        }
        grants: dict[tuple[int, str], int] = {}
        if wanted and user_ids:
            for g in await SubscriptionGrant.filter(
                user_id__in=user_ids, template_id__in=wanted, remaining__gt=0
            ).values("id", "user_id", "template_id"):
                grants[(g["user_id"], g["template_id"])] = g["id"]

        med_types = self.config.med_types
        plans: list[_Plan] = []
        done: list[Notice] = []
        for n in notices:
            user = users.get(n.recipient_id)  # type: ignore[attr-defined]
            templates = self.config.kinds.get(n.kind)
            if user is None:
                done.append(self._end(n, "undeliverable", REASON_NO_RECIPIENT))
                continue
            if templates is None:
                done.append(self._end(n, "failed", REASON_NO_TEMPLATE))
                continue
            oa_openid = followers.get(user["unionid"]) if user["unionid"] else None
            if oa_openid is None and self.demo_followers:
                oa_openid = _demo_follower(user["unionid"])
            try:
                if oa_openid and templates.oa_template:
                    data = render_data(templates.oa_data, n.data or {}, med_types=med_types)
                    plans.append(_Plan(n, "template", oa_openid, templates.oa_template, data))
                    continue
                grant_id = grants.get((user["id"], templates.mp_template))
                if grant_id is not None:
                    data = render_data(templates.mp_data, n.data or {}, med_types=med_types)
                    plans.append(
                        _Plan(n, "subscribe", user["openid"], templates.mp_template, data, grant_id)
                    )
                    continue
            except (ValueError, TypeError, ArithmeticError):
                done.append(self._end(n, "failed", "通知内容无法生成消息"))
                continue
            done.append(self._end(n, "undeliverable", REASON_UNREACHABLE))
        return plans, done

    async def _reserve_grants(self, chunk: Sequence[_Plan]) -> tuple[list[_Plan], list[Notice]]:
        """Take one subscribe grant per subscribe plan, in the transaction that records the
        channel; a grant used up meanwhile makes the notice undeliverable."""
        ready: list[_Plan] = []
        lost: list[Notice] = []
        for plan in chunk:
            if plan.channel != "subscribe":
                ready.append(plan)
                continue
            async with in_transaction() as conn:
                taken = await SubscriptionGrant.filter(id=plan.grant_id, remaining__gt=0).using_db(
                    conn
                ).update(remaining=F("remaining") - 1)
                if taken:
                    await Notice.filter(id=plan.notice.id).using_db(conn).update(
                        channel="subscribe"
                    )
            if taken:
                plan.notice.channel = "subscribe"
                ready.append(plan)
            else:
                lost.append(self._end(plan.notice, "undeliverable", REASON_UNREACHABLE))
        return ready, lost

    async def _send(self, plan: _Plan) -> _Outcome:
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
            self._latency.labels(plan.channel).observe(time.perf_counter() - started)
        errcode = str(outcome.error.errcode) if outcome.error else "0"
        self._sends.labels(plan.channel, outcome.result, errcode).inc()
        return outcome

    async def _send_with_token_retry(self, plan: _Plan) -> _Outcome:
        """Send; on 40001 / 40014 / 42001 get a fresh token and retry once."""
        cache = self.tokens["oa" if plan.channel == "template" else "mp"]
        page = f"{self.config.mp_page}?id={plan.notice.id}"
        mp_state: Any = self.config.miniprogram_state
        token: str | None = None
        for attempt in (1, 2):
            try:
                token = await cache.get() if token is None else await cache.invalidate(token)
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
        now = datetime.now(timezone.utc)
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
        self._finished.labels(state).inc()
        return n

    async def _release(self, plans: Sequence[_Plan], *, delay: float) -> None:
        """Give claimed notices back unsent (attempts unchanged)."""
        if not plans:
            return
        when = datetime.now(timezone.utc) + timedelta(seconds=delay)
        await Notice.filter(id__in=[p.notice.id for p in plans], leased_by=self.worker_id).update(
            next_attempt_at=when, lease_until=None, leased_by=None
        )

    async def _write(self, notices: Sequence[Notice]) -> None:
        """Write the chunk's states in one statement."""
        if not notices:
            return
        now = datetime.now(timezone.utc)
        for n in notices:
            n.updated_at = now
        conn = Notice._meta.db
        if conn.capabilities.dialect != "postgres":
            await Notice.bulk_update(notices, fields=list(_WRITE_FIELDS))
            return
        # PostgreSQL: one statement over arrays. Tortoise's bulk_update builds a CASE per
        # column and row in Python, which cost more CPU than the sends themselves (measured).
        columns = [[getattr(n, f) for n in notices] for f in ("id", *_WRITE_FIELDS)]
        await conn.execute_query(_PG_WRITE, columns)

    async def _give_back_grants(self, outcomes: Sequence[_Outcome]) -> None:
        """WeChat uses a one-time grant only on success: a failed subscribe send gets its
        grant back, except 43101 (refused), which says WeChat holds none: ours are cleared."""
        for o in outcomes:
            if o.plan.channel != "subscribe" or o.error is None or o.plan.grant_id is None:
                continue
            grant = SubscriptionGrant.filter(id=o.plan.grant_id)
            if o.error.errcode == 43101:
                await grant.update(remaining=0)
            else:
                await grant.update(remaining=F("remaining") + 1)
