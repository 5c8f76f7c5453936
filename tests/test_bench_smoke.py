"""The benchmark harness's pure parts (bench/): statistics, Lua generation, discovery.

No load, no timing: benchmarks run with ``python -m bench`` (bench/README.md), never in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.load import Command, Wrk, _script, run_command, run_wrk
from bench.scenario import discover
from bench.stats import RoundResult, RunResult, ScenarioSummary, cpu_idle_fraction, markdown_table


def run(rps: float, p50: float = 1.0, p99: float = 2.0) -> RunResult:
    return RunResult(rps=rps, p50_ms=p50, p99_ms=p99, requests=int(rps), max_rss_mb=50.0)


def test_ratio_is_against_the_bare_runs_around_the_scenario() -> None:
    r = RoundResult(bare_before=run(1000, 1.0, 2.0), scenario=run(150, 5.0, 30.0), bare_after=run(500, 1.0, 4.0))
    assert r.ratio("rps") == pytest.approx(150 / 750)
    assert r.ratio("p50_ms") == pytest.approx(5.0)
    assert r.ratio("p99_ms") == pytest.approx(10.0)


def test_summary_is_the_median_over_rounds() -> None:
    s = ScenarioSummary("me_pg", "GET /me")
    for scen in (100, 300, 200):
        s.rounds.append(RoundResult(run(1000), run(scen), run(1000)))
    assert s.ratio("rps") == pytest.approx(0.2)
    assert s.median("rps") == 200
    assert s.bare_median("rps") == 1000
    d = s.as_dict()
    assert d["ratio_rps"] == pytest.approx(0.2) and len(d["rounds"]) == 3 and d["max_rss_mb"] == 50.0
    table = markdown_table([s])
    assert "| GET /me | 200 | 20.0% |" in table
    s.rounds[0].scenario.idle_ok = False
    assert "not idle" in markdown_table([s])


def test_cpu_idle_fraction_from_proc_stat_counters() -> None:
    before = [100, 0, 100, 800, 0, 0, 0, 0, 0, 0]
    after = [150, 0, 150, 1700, 0, 0, 0, 0, 0, 0]  # 100 busy + 900 idle ticks
    assert cpu_idle_fraction(before, after) == pytest.approx(0.9)
    assert cpu_idle_fraction(before, before) == 1.0


def test_wrk_script_reports_json_and_has_a_unique_run_id() -> None:
    load = Wrk(path="/x", method="POST", headers={"X-A": 'q"uote'}, body="{}", lua="-- custom")
    script = _script(load, "abc123")
    assert 'bench_run = "abc123"' in script and 'wrk.headers["X-A"] = "q\\"uote"' in script
    assert "function done(summary, latency, requests)" in script and "-- custom" in script


def test_wrk_refuses_anything_but_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        run_wrk(Wrk(), "http://10.0.0.1:80", duration=1, connections=1, workdir=tmp_path, name="x")


def test_external_generator_json_line_is_read(tmp_path: Path) -> None:
    gen = tmp_path / "gen.py"
    gen.write_text(
        "import json, os\n"
        "assert os.environ['BENCH_URL'].startswith('http://127.0.0.1:')\n"
        "print('warming up')\n"
        "print(json.dumps({'name': 'x', 'rps': 123.5, 'p50_ms': 2, 'p99_ms': 9, 'errors': 1}))\n"
    )
    result = run_command(Command([sys.executable, str(gen)]), "http://127.0.0.1:1", duration=1, connections=4)
    assert (result.rps, result.p50_ms, result.p99_ms, result.errors) == (123.5, 2.0, 9.0, 1)


def test_core_scenarios_are_discovered_with_unique_names() -> None:
    names = [s.name for s in discover()]
    assert names[:5] == ["bare", "healthz", "login", "me_sqlite", "me_pg"]
    assert len(names) == len(set(names))
    assert all(s.target in {"bare", "pg", "sqlite"} for s in discover())


def test_cpu_per_request_ratio_and_missing_values() -> None:
    s = ScenarioSummary("x", "X")
    bare, scen = run(1000), run(100)
    bare.cpu_us_per_request, scen.cpu_us_per_request = 25.0, 200.0
    s.rounds.append(RoundResult(bare, scen, bare))
    assert s.ratio("cpu_us_per_request") == pytest.approx(8.0)
    assert "| 200 (8.0×) |" in markdown_table([s])
    s.rounds[0] = RoundResult(run(1000), run(100), run(1000))  # no CPU figures at all
    assert s.cpu_us_per_request() is None and "| - |" in markdown_table([s])
