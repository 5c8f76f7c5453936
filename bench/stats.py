"""Pure statistics of the harness: per-round ratios against the bare baseline, medians.

A round measures bare → scenario → bare. The scenario's ratio in that round is its value
over the median of the two bare runs around it (for two values: their mean); the
reported ratio is the median over the rounds. Latency ratios are computed the same way,
so a p99 ratio of 4.0 means "four times the bare endpoint's p99".
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

METRICS = ("rps", "p50_ms", "p99_ms")
CPU = "cpu_us_per_request"


@dataclass
class RunResult:
    """One load run (wrk or an external generator) against one target."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int = 0
    errors: int = 0  # connect/read/write/timeout errors and non-2xx/3xx answers
    max_rss_mb: float | None = None
    cpu_us_per_request: float | None = None  # the loaded process's CPU time / requests
    idle_ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RoundResult:
    bare_before: RunResult
    scenario: RunResult
    bare_after: RunResult

    def ratio(self, metric: str) -> float:
        base = statistics.median([getattr(self.bare_before, metric) or 0, getattr(self.bare_after, metric) or 0])
        value = getattr(self.scenario, metric)
        return value / base if base and value is not None else float("nan")


@dataclass
class ScenarioSummary:
    name: str
    title: str
    rounds: list[RoundResult] = field(default_factory=list)

    def median(self, metric: str) -> float:
        return statistics.median(getattr(r.scenario, metric) for r in self.rounds)

    def bare_median(self, metric: str) -> float:
        values = [getattr(r.bare_before, metric) for r in self.rounds]
        values += [getattr(r.bare_after, metric) for r in self.rounds]
        return statistics.median(values)

    def ratio(self, metric: str) -> float:
        values = [x for x in (r.ratio(metric) for r in self.rounds) if x == x]  # drop NaN
        return statistics.median(values) if values else float("nan")

    def max_rss_mb(self) -> float | None:
        seen = [r.scenario.max_rss_mb for r in self.rounds if r.scenario.max_rss_mb is not None]
        return max(seen) if seen else None

    def cpu_us_per_request(self) -> float | None:
        seen = [r.scenario.cpu_us_per_request for r in self.rounds if r.scenario.cpu_us_per_request]
        return statistics.median(seen) if seen else None

    def errors(self) -> int:
        return sum(r.scenario.errors for r in self.rounds)

    def requests(self) -> int:
        return sum(r.scenario.requests for r in self.rounds)

    def all_idle(self) -> bool:
        return all(x.idle_ok for r in self.rounds for x in (r.bare_before, r.scenario, r.bare_after))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "rps": self.median("rps"),
            "p50_ms": self.median("p50_ms"),
            "p99_ms": self.median("p99_ms"),
            "bare_rps": self.bare_median("rps"),
            "ratio_rps": self.ratio("rps"),
            "ratio_p50": self.ratio("p50_ms"),
            "ratio_p99": self.ratio("p99_ms"),
            "max_rss_mb": self.max_rss_mb(),
            "cpu_us_per_request": self.cpu_us_per_request(),
            "ratio_cpu_per_request": self.ratio("cpu_us_per_request"),
            "requests": self.requests(),
            "errors": self.errors(),
            "idle": self.all_idle(),
            "rounds": [
                {
                    "bare_before": r.bare_before.as_dict(),
                    "scenario": r.scenario.as_dict(),
                    "bare_after": r.bare_after.as_dict(),
                    "ratio_rps": r.ratio("rps"),
                }
                for r in self.rounds
            ],
        }


def markdown_table(summaries: list[ScenarioSummary]) -> str:
    """The README table: absolute medians and ratios against the bare baseline."""
    lines = [
        "| scenario | req/s | × bare req/s | p50 ms | × bare p50 | p99 ms | × bare p99 "
        "| CPU µs/req (× bare) | max RSS MB | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        rss = s.max_rss_mb()
        cpu = s.cpu_us_per_request()
        flag = "" if s.all_idle() else " ⚠ not idle"
        lines.append(
            f"| {s.title}{flag} | {s.median('rps'):,.0f} | {s.ratio('rps'):.1%} "
            f"| {s.median('p50_ms'):.2f} | {s.ratio('p50_ms'):.1f}× "
            f"| {s.median('p99_ms'):.2f} | {s.ratio('p99_ms'):.1f}× "
            f"| {'-' if cpu is None else f'{cpu:.0f} ({s.ratio(CPU):.1f}×)'} "
            f"| {'-' if rss is None else f'{rss:.0f}'} | {s.errors()} |"
        )
    return "\n".join(lines)


def cpu_idle_fraction(before: list[int], after: list[int]) -> float:
    """Idle share of all CPUs between two ``/proc/stat`` "cpu" lines (idle + iowait)."""
    deltas = [b - a for a, b in zip(before, after)]
    total = sum(deltas[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    if total <= 0:
        return 1.0
    return (deltas[3] + deltas[4]) / total
