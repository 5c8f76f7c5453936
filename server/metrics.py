"""Prometheus metrics, one registry per app (tests build many apps in one process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    """The service's metrics; features add theirs through ``counter``/``gauge``/``histogram``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self._extra: dict[str, Counter | Gauge | Histogram] = {}
        # (method, route, status) → the labelled children: ``labels()`` costs ~6 µs a call
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: str, seconds: float) -> None:
        """Count one HTTP request and its latency (the request middleware calls this)."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            if len(self._request_children) >= 10_000:  # odd methods/routes must not grow it forever
                self._request_children.clear()
            children = (self.requests.labels(method, route, status), self.latency.labels(method, route))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        if name not in self._extra:
            self._extra[name] = Counter(name, doc, list(labels), registry=self.registry)
        metric = self._extra[name]
        assert isinstance(metric, Counter), f"{name} is not a counter"
        return metric

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        if name not in self._extra:
            self._extra[name] = Gauge(name, doc, list(labels), registry=self.registry)
        metric = self._extra[name]
        assert isinstance(metric, Gauge), f"{name} is not a gauge"
        return metric

    def histogram(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
        if name not in self._extra:
            self._extra[name] = Histogram(name, doc, list(labels), registry=self.registry)
        metric = self._extra[name]
        assert isinstance(metric, Histogram), f"{name} is not a histogram"
        return metric

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
