"""The push worker's Prometheus metrics (README "Push delivery"), registered once per app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["MetricFactory", "PushMetrics"]


class MetricFactory(Protocol):
    """What registers metrics (``server.metrics.Metrics``: one registry per app)."""

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter: ...

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge: ...

    def histogram(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram: ...


@dataclass(frozen=True)
class PushMetrics:
    sends: Counter  # channel, result, errcode
    latency: Histogram  # channel
    finished: Counter  # state
    token_refreshes: Counter  # app, mode
    breaker_trips: Counter
    queue_depth: Gauge
    queue_due: Gauge
    oldest_pending: Gauge

    @classmethod
    def register(cls, metrics: MetricFactory) -> PushMetrics:
        return cls(
            sends=metrics.counter(
                "push_sends_total",
                "WeChat sends by channel, result and errcode",
                ("channel", "result", "errcode"),
            ),
            latency=metrics.histogram(
                "push_send_latency_seconds",
                "Latency of one WeChat send (token retry included)",
                ("channel",),
            ),
            finished=metrics.counter(
                "push_notices_finished_total", "Notices that left pending, by state", ("state",)
            ),
            token_refreshes=metrics.counter(
                "push_token_refresh_total",
                "Access-token refreshes by app and mode",
                ("app", "mode"),
            ),
            breaker_trips=metrics.counter(
                "push_breaker_trips_total", "Times the WeChat circuit opened"
            ),
            queue_depth=metrics.gauge("push_queue_depth", "Pending notices (due or not)"),
            queue_due=metrics.gauge("push_queue_due", "Pending notices due now"),
            oldest_pending=metrics.gauge(
                "push_oldest_pending_seconds", "Age of the oldest pending notice"
            ),
        )
