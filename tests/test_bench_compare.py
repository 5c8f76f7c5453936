"""``python -m bench --compare``: a ratio more than 15 % worse than the committed run fails.

The rule is tested on doctored copies of the committed ``bench/results/latest.json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench import compare


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return json.loads(compare.BASELINE.read_text(encoding="utf-8"))


def _scaled(doc: dict[str, Any], name: str, field: str, factor: float) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    for s in out["scenarios"]:
        if s["name"] == name:
            s[field] *= factor
    return out


def test_the_committed_run_against_itself_has_no_regression(base: dict[str, Any]) -> None:
    result = compare.compare(base, base)
    assert result.regressions == []
    # every scenario's req/s ratio is compared; push has no CPU figure and is skipped there
    judged = {(d.scenario, d.metric) for d in result.deltas}
    assert {(s["name"], "req/s × bare") for s in base["scenarios"]} <= judged
    assert ("push", "CPU/req × bare") not in judged


@pytest.mark.parametrize(
    ("field", "factor", "regressed"),
    [
        ("ratio_rps", 0.84, True),  # throughput 16 % lower
        ("ratio_rps", 0.86, False),  # 14 % lower: within the tolerance
        ("ratio_rps", 1.50, False),  # faster is never a regression
        ("ratio_p99", 1.16, True),  # tail latency 16 % higher
        ("ratio_p99", 1.14, False),
        ("ratio_p50", 0.50, False),  # lower latency is better
        ("ratio_cpu_per_request", 1.20, True),
    ],
)
def test_a_ratio_more_than_15_percent_worse_is_flagged(
    base: dict[str, Any], field: str, factor: float, regressed: bool
) -> None:
    run = _scaled(base, "me_pg", field, factor)
    result = compare.compare(run, base)
    flagged = [(d.scenario, d.metric) for d in result.regressions]
    assert bool(flagged) is regressed
    if regressed:
        assert len(flagged) == 1 and flagged[0][0] == "me_pg"
        assert "**REGRESSION**" in result.render()


def test_the_tolerance_is_a_parameter(base: dict[str, Any]) -> None:
    run = _scaled(base, "login", "ratio_rps", 0.92)
    assert compare.compare(run, base).regressions == []
    assert len(compare.compare(run, base, tolerance=0.05).regressions) == 1


def test_scenarios_in_one_file_only_are_listed_not_judged(base: dict[str, Any]) -> None:
    run = copy.deepcopy(base)
    run["scenarios"] = [s for s in run["scenarios"] if s["name"] != "bot_safe"]
    extra = copy.deepcopy(run["scenarios"][0])
    extra["name"] = "brand_new"
    extra["ratio_rps"] = 0.0001
    run["scenarios"].append(extra)
    result = compare.compare(run, base)
    assert result.regressions == []
    assert result.only_in_run == ["brand_new"] and result.only_in_base == ["bot_safe"]
    text = result.render()
    assert "brand_new" in text and "bot_safe" in text


def test_only_restricts_the_comparison(base: dict[str, Any]) -> None:
    run = _scaled(base, "login", "ratio_rps", 0.5)
    only = compare.compare(run, base, only=["me_pg"])
    assert {d.scenario for d in only.deltas} == {"me_pg"} and only.regressions == []
    assert only.only_in_base == []


def test_the_command_exits_1_on_a_regression(tmp_path: Path, base: dict[str, Any],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(base), encoding="utf-8")
    bad.write_text(json.dumps(_scaled(base, "settlements", "ratio_rps", 0.7)), encoding="utf-8")
    assert compare.main([str(good)]) == 0
    assert compare.main([str(bad)]) == 1
    out = capsys.readouterr().out
    assert "| settlements | req/s × bare |" in out and "+30.0%" in out


def test_a_scenario_that_failed_in_the_run_fails_the_comparison(base: dict[str, Any]) -> None:
    run = copy.deepcopy(base)
    run["scenarios"] = [s for s in run["scenarios"] if s["name"] != "push"]
    run["meta"]["failed"] = {"push": "round 1: TimeoutExpired: timed out after 80 seconds"}
    result = compare.compare(run, base)
    assert result.regressions == [] and not result.ok
    assert "push" not in result.only_in_base
    assert "**FAILED** in this run: push" in result.render()
