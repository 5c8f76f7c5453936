"""Push tests: fast retry and breaker timings so every scenario runs in well under a second."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from server.settings import Settings

FAST: dict[str, Any] = {
    "push.backoff_base_seconds": 0.01,
    "push.backoff_cap_seconds": 0.05,
    "push.breaker_threshold": 5,
    "push.breaker_open_seconds": 0.1,
    "push.breaker_open_cap_seconds": 0.4,
    "push.rate_per_second": 100_000.0,
    "push.rate_burst": 10_000,
    "push.idle_poll_seconds": 0.02,
    "push.queue_gauge_seconds": 0.0,
    "push.max_attempts": 4,
    "wechat.timeout_seconds": 1.0,
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**FAST)
