"""Regression check: a run's ratios against the committed ``bench/results/latest.json``.

Every scenario is reported as ratios against the bare baseline measured around it
(bench/README.md), so two runs on machines of one class compare ratio for ratio. A ratio
is *worse* when req/s went down or a latency / CPU-per-request ratio went up; any ratio
more than ``tolerance`` (15 %) worse is a regression and the command exits 1.

    python -m bench --compare                     # run every scenario, then compare
    python -m bench --compare --only me_pg,login  # run and compare those only
    python -m bench.compare RUN.json [BASE.json]  # compare two result files, no run

Scenarios in only one of the two files are listed, not judged. tests/test_bench_compare.py
tests the rule on doctored copies of the committed results.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = RESULTS / "latest.json"
TOLERANCE = 0.15

# (field in a scenario summary, label, True when a higher value is better)
RATIOS: tuple[tuple[str, str, bool], ...] = (
    ("ratio_rps", "req/s × bare", True),
    ("ratio_p50", "p50 × bare", False),
    ("ratio_p99", "p99 × bare", False),
    ("ratio_cpu_per_request", "CPU/req × bare", False),
)


@dataclass(frozen=True)
class Delta:
    scenario: str
    metric: str
    base: float
    now: float
    higher_is_better: bool

    @property
    def worse_by(self) -> float:
        """How much worse ``now`` is than ``base`` as a share of ``base`` (negative: better)."""
        change = (self.now - self.base) / self.base
        return -change if self.higher_is_better else change

    def regressed(self, tolerance: float) -> bool:
        return self.worse_by > tolerance


@dataclass
class Comparison:
    deltas: list[Delta]
    only_in_run: list[str]
    only_in_base: list[str]
    tolerance: float
    failed: dict[str, str] | None = None  # scenarios that crashed in the run: a failure

    @property
    def regressions(self) -> list[Delta]:
        return [d for d in self.deltas if d.regressed(self.tolerance)]

    @property
    def ok(self) -> bool:
        return not self.regressions and not self.failed

    def render(self) -> str:
        lines = [
            f"| scenario | ratio | committed | this run | worse by | (> {self.tolerance:.0%} fails) |",
            "|---|---|---:|---:|---:|---|",
        ]
        for d in self.deltas:
            flag = "**REGRESSION**" if d.regressed(self.tolerance) else "ok"
            lines.append(f"| {d.scenario} | {d.metric} | {d.base:.3f} | {d.now:.3f} "
                         f"| {d.worse_by:+.1%} | {flag} |")
        if self.only_in_run:
            lines.append(f"\nnot in the committed results (not judged): {', '.join(self.only_in_run)}")
        if self.only_in_base:
            lines.append(f"not in this run (not judged): {', '.join(self.only_in_base)}")
        for name, why in (self.failed or {}).items():
            lines.append(f"**FAILED** in this run: {name} ({why})")
        n = len(self.regressions)
        lines.append(f"\n{n} regression(s) over {len(self.deltas)} ratios" if n
                     else f"\nno regression over {len(self.deltas)} ratios")
        return "\n".join(lines)


def _usable(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def compare(run: dict[str, Any], base: dict[str, Any], *, tolerance: float = TOLERANCE,
            only: list[str] | None = None) -> Comparison:
    """Ratio-by-ratio comparison of two results documents (``latest.json`` format)."""
    failed = dict(run.get("meta", {}).get("failed") or {})
    now_by = {s["name"]: s for s in run["scenarios"]}
    base_by = {s["name"]: s for s in base["scenarios"]}
    if only:
        now_by = {k: v for k, v in now_by.items() if k in only}
        base_by = {k: v for k, v in base_by.items() if k in only}
        failed = {k: v for k, v in failed.items() if k in only}
    deltas = []
    for name, s in now_by.items():
        b = base_by.get(name)
        if b is None:
            continue
        for field, label, higher in RATIOS:
            if _usable(s.get(field)) and _usable(b.get(field)):
                deltas.append(Delta(name, label, float(b[field]), float(s[field]), higher))
    return Comparison(
        deltas=deltas,
        only_in_run=[n for n in now_by if n not in base_by],
        only_in_base=[n for n in base_by if n not in now_by and n not in failed],
        tolerance=tolerance,
        failed=failed,
    )


def compare_files(run: Path, base: Path = BASELINE, *, tolerance: float = TOLERANCE,
                  only: list[str] | None = None) -> int:
    """Print the comparison; 0 if nothing regressed, 1 otherwise."""
    result = compare(json.loads(run.read_text(encoding="utf-8")),
                     json.loads(base.read_text(encoding="utf-8")), tolerance=tolerance, only=only)
    print(f"{run} against {base}:\n")
    print(result.render())
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a results file (bench/results/*.json)")
    p.add_argument("base", type=Path, nargs="?", default=BASELINE)
    p.add_argument("--tolerance", type=float, default=TOLERANCE)
    args = p.parse_args(argv)
    return compare_files(args.run, args.base, tolerance=args.tolerance)


if __name__ == "__main__":
    sys.exit(main())
