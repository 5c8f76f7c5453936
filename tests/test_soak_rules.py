"""bench/soak_report.py's pass rules on synthetic series: flat passes, each kind of drift fails."""

from __future__ import annotations

from typing import Any

import pytest

from bench.soak_report import BEGIN, END, evaluate, splice

MIB = 2**20


def _samples(n: int = 50, **drift: float) -> list[dict[str, Any]]:
    """n samples 5 s apart; ``drift[key]`` is added per sample (a leak's slope)."""
    base = {"server_rss": 120 * MIB, "worker_rss": 90 * MIB, "server_fds": 40, "worker_fds": 30,
            "server_sockets": 30, "worker_sockets": 20, "pg_connections": 20,
            "redis_used_memory": 3 * MIB}
    return [{"t": 5.0 * i, **{k: v + drift.get(k, 0) * i for k, v in base.items()}}
            for i in range(n)]


def _windows(n: int = 50, p99: float = 40.0, p99_slope: float = 0.0,
             errors_at: int | None = None) -> list[dict[str, Any]]:
    return [{"t": 5.0 * (i + 1), "n": 500, "p50_ms": 5.0, "p99_ms": p99 + p99_slope * i,
             "errors": 1 if i == errors_at else 0,
             "error_kinds": {"settle:500": 1} if i == errors_at else {}} for i in range(n)]


def _failed(checks: list[dict[str, Any]]) -> list[str]:
    return [c["rule"] for c in checks if not c["ok"]]


def test_flat_resources_steady_latency_no_errors_pass() -> None:
    checks = evaluate(_samples(), _windows(), warmup_until=30, pending_end=0, settles_per_window=75)
    assert _failed(checks) == []
    assert {c["rule"] for c in checks} >= {"server RSS growth", "errors", "p99 latency steady",
                                           "PostgreSQL connections", "Redis used_memory growth"}


@pytest.mark.parametrize(
    ("drift", "rule"),
    [
        ({"server_rss": 1 * MIB}, "server RSS growth"),  # +1 MiB per sample: a leak
        ({"worker_rss": 1 * MIB}, "push worker RSS growth"),
        ({"server_fds": 1}, "server open fds (not sockets)"),  # a file never closed
        ({"server_sockets": 2}, "server open sockets"),  # connections never closed
        ({"pg_connections": 0.2}, "PostgreSQL connections"),  # a pool that keeps growing
        ({"redis_used_memory": 1 * MIB}, "Redis used_memory growth"),  # keys without a TTL
    ],
)
def test_a_leak_fails_its_rule(drift: dict[str, float], rule: str) -> None:
    checks = evaluate(_samples(**drift), _windows(), warmup_until=30)
    assert _failed(checks) == [rule]


def test_small_noise_within_the_bounds_passes() -> None:
    checks = evaluate(_samples(server_rss=0.1 * MIB, server_fds=0.1), _windows(), warmup_until=30)
    assert _failed(checks) == []


def test_a_pool_that_shrinks_when_idle_and_regrows_passes() -> None:
    samples = _samples()
    for s in samples[20:35]:  # asyncpg closed connections idle for 5 minutes
        s["pg_connections"] = 12
    assert _failed(evaluate(samples, _windows(), warmup_until=30)) == []


def test_sockets_may_follow_the_client_connections_up_to_its_pool() -> None:
    samples = _samples()
    for s in samples[25:]:  # a latency spike: the client opened 60 more connections
        s["server_sockets"] += 60
    assert _failed(evaluate(samples, _windows(), warmup_until=30)) == []


def test_a_rising_p99_fails() -> None:
    assert _failed(evaluate(_samples(), _windows(p99_slope=2.0), warmup_until=30)) == [
        "p99 latency steady"]


def test_one_error_fails_and_is_named() -> None:
    checks = evaluate(_samples(), _windows(errors_at=40), warmup_until=30)
    assert _failed(checks) == ["errors"]
    assert "settle:500" in next(c["measured"] for c in checks if c["rule"] == "errors")


def test_a_queue_that_does_not_drain_fails() -> None:
    checks = evaluate(_samples(), _windows(), warmup_until=30, pending_end=5000,
                      settles_per_window=75)
    assert _failed(checks) == ["notice queue drained"]


def test_samples_taken_during_the_warm_up_are_not_judged() -> None:
    samples = _samples()
    for s in samples[:6]:  # pools opening, caches filling
        s["server_rss"] /= 2
        s["pg_connections"] = 3
    assert _failed(evaluate(samples, _windows(), warmup_until=30)) == []


def test_too_short_a_run_fails_rather_than_passing_silently() -> None:
    assert _failed(evaluate(_samples(3), _windows(3), warmup_until=30)) == [
        "enough samples after warm-up"]


def test_the_block_is_spliced_into_its_section_only() -> None:
    page = "# Reliability\n\n## Faults\n\nother helper's text\n"
    first = splice(page, "figures v1")
    assert first.startswith(page.rstrip("\n")) and "## Soak" in first and "figures v1" in first
    second = splice(first + "\n## Later section\n\nkept\n", "figures v2")
    assert "figures v1" not in second and "figures v2" in second
    assert second.count(BEGIN) == 1 and second.count(END) == 1
    assert "other helper's text" in second and "kept" in second
