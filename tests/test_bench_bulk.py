"""The bulk bench's report: medians of interleaved rounds and the verdicts (issue 18)."""

from __future__ import annotations

from typing import Any

from bench.scenario_bulk import _median, render, verdicts


def _run(label: str, client: float, server: float, **extra: Any) -> dict[str, Any]:
    return {"label": label, "rows": 1000, "seconds": 0.1, "rows_per_s": extra.get("rps", 10_000.0),
            "client_cpu_us_per_row": client, "server_cpu_us_per_row": server,
            "cpu_us_per_row": client + server, "max_rss_mb": 100.0, "idle_before": 0.99,
            "idle": True, "loadavg_after": 0.5}


def test_the_median_round_is_reported_with_every_rounds_total() -> None:
    rounds = [_run("x", 10, 20), _run("x", 30, 30), _run("x", 12, 20)]
    got = _median(rounds)
    assert got["cpu_us_per_row"] == 32 and got["rounds_cpu_us_per_row"] == [30, 60, 32]


def test_verdicts_compare_to_raw_copy_and_name_the_databases_share() -> None:
    data = {"meta": {"date": "d", "commit": "c", "python": "3.11",
                     "machine": {"cpus": 2, "cpu_model": "x", "loadavg": [0.1, 0.1, 0.1]}},
            "runs": [_run("raw COPY into an unindexed table (PostgreSQL)", 0.2, 1.0),
                     _run("database floor: …", 9.0, 18.0),
                     _run("import, first load (PostgreSQL)", 12.0, 19.2, rps=30_000)]}
    lines = verdicts(data)
    assert lines[0] == "PostgreSQL ≥ 20,000 rows/s: 30,000 ✓"
    assert lines[1] == "PostgreSQL CPU per row within 25× of raw COPY: 26.0× ✗"
    assert "18.0 µs a row — 15.0× raw COPY" in lines[2] and "server side is 19.2, its client 12.0" in lines[2]
    assert "| 26.0× |" in render(data)
