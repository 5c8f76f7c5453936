"""2206 preview throughput: signed ``POST /api/v1/institution/settlements/preview``.

The same families (seeded once per server by the ``settlements`` scenario) and the same
bodies as the ``settlements`` scenario — a new ``setl_id`` for a random family each time —
so the two compare request for request: a preview reads the member, the family's accounts
(no lock, no transaction) and answers the split; it writes nothing and sends no notice.
Target (issue #13): a preview costs at most half the server CPU of a 2207 settlement —
run both in one harness run and compare their CPU µs per request:

    python -m bench --only settlements,preview --rounds 3 --duration 5 \\
        --out bench/results/institutions-preview

``load`` mode is the generator alone (the harness's external-command contract): it reads
``BENCH_URL``, ``BENCH_DURATION``, ``BENCH_CONNECTIONS`` and ``BENCH_SETTLEMENT_SEED`` and
prints ``{"name", "rps", "p50_ms", "p99_ms"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load import Command, Load  # noqa: E402
from bench.scenario import Scenario  # noqa: E402
from bench.services import Target  # noqa: E402

PATH = "/api/v1/institution/settlements/preview"


def preview(target: Target, round_no: int) -> Load:
    from bench import scenarios

    seeded = scenarios.settlements(target, round_no)  # seeds the families once per server
    assert isinstance(seeded, Command)
    return Command(
        [sys.executable, "-m", "bench.scenario_institutions", "load"], env=dict(seeded.env)
    )


SCENARIOS = [
    Scenario(
        "preview",
        "POST /api/v1/institution/settlements/preview (2206), signed, no lock (PostgreSQL)",
        "pg",
        preview,
    )
]


def main(argv: list[str] | None = None) -> int:
    import asyncio

    from bench.scenario_settlements import fire

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["load"])
    p.add_argument("--url", default=os.environ.get("BENCH_URL", ""))
    p.add_argument("--duration", type=float, default=float(os.environ.get("BENCH_DURATION", "5")))
    p.add_argument(
        "--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "32"))
    )
    p.add_argument("--seed-file", default=os.environ.get("BENCH_SETTLEMENT_SEED"))
    args = p.parse_args(argv)
    if not args.url.startswith("http://127.0.0.1:") or not args.seed_file:
        p.error("BENCH_URL (loopback) and BENCH_SETTLEMENT_SEED are required")
    seed_data = json.loads(Path(args.seed_file).read_text())
    url = args.url.rstrip("/") + PATH
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    out = runner(
        fire(url, seed_data, duration=args.duration, connections=args.connections, max_requests=None)
    )
    out["name"] = "preview"
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
