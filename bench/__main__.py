"""``python -m bench [--only NAME[,NAME]] [--rounds N] [--duration S] [--compare] …`` (bench/README.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.compare import BASELINE, TOLERANCE, compare_files
from bench.runner import Options, run_all
from bench.scenario import discover

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description="loopback benchmarks vs a bare aiohttp app")
    p.add_argument("--only", action="append", default=[], help="scenario name(s), comma separated")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0, help="seconds measured per run")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--idle-threshold", type=float, default=0.85, help="CPU idle share to wait for")
    p.add_argument("--idle-timeout", type=float, default=60.0, help="seconds to wait for it")
    p.add_argument("--out", type=Path, default=None,
                   help="result path without suffix (default bench/results/latest, or partial-NAMES)")
    p.add_argument("--compare", action="store_true",
                   help="after the run, diff its ratios against --against and exit 1 on a "
                        "ratio more than --tolerance worse (the run goes to bench/results/compare)")
    p.add_argument("--against", type=Path, default=BASELINE, help="results to compare with")
    p.add_argument("--tolerance", type=float, default=TOLERANCE, help="share worse that fails")
    args = p.parse_args(argv)

    scenarios = discover()
    if args.list:
        for s in scenarios:
            print(f"{s.name:<16} [{s.target}] {s.title}")
        return 0
    wanted = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    if wanted:
        known = {s.name for s in scenarios}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            print(f"unknown scenario(s): {', '.join(unknown)}; try --list", file=sys.stderr)
            return 2
        scenarios = [s for s in scenarios if s.name in wanted]
    if not (1 <= args.rounds <= 9 and 0.5 <= args.duration <= 60 and 1 <= args.connections <= 256):
        print("bounds: 1-9 rounds, 0.5-60 s, 1-256 connections", file=sys.stderr)
        return 2
    default = "compare" if args.compare else "latest"  # a comparison never replaces the baseline
    out = args.out or RESULTS / (default if not wanted else "partial-" + "-".join(wanted))
    opts = Options(rounds=args.rounds, duration=args.duration, warmup=args.warmup,
                   connections=args.connections, idle_threshold=args.idle_threshold,
                   idle_timeout=args.idle_timeout)
    try:
        print(run_all(scenarios, opts, out))
    except KeyboardInterrupt:
        print("interrupted: every process the run started has been stopped", file=sys.stderr)
        return 130
    print(f"results: {out.with_suffix('.md')} and .json")
    if args.compare:
        return compare_files(out.with_suffix(".json"), args.against, tolerance=args.tolerance,
                             only=wanted or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
