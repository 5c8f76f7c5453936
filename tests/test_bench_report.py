"""docs/benchmarks.md's generated block is what bench/report.py renders from the committed results.

The page, ``bench/results/latest.md`` and ``latest.json`` come from one run and one table
function, so a figure can no longer be written twice with two values.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from bench import report
from bench.stats import markdown_table


@pytest.fixture(scope="module")
def results() -> dict:
    return report.load(report.RESULTS)


def test_the_committed_page_is_what_the_committed_results_render(results: dict) -> None:
    page = report.PAGE.read_text(encoding="utf-8")
    assert report.extract(page) == report.render(results), (
        "docs/benchmarks.md is out of date: run .venv/bin/python -m bench.report"
    )


def test_the_page_table_is_the_one_the_run_wrote_to_latest_md(results: dict) -> None:
    # latest.md was written by the runner from its live summaries; the page's table is
    # rebuilt from latest.json: both must be the same text.
    latest_md = (report.RESULTS.parent / "latest.md").read_text(encoding="utf-8")
    table = markdown_table(report.summaries(results))
    assert table in latest_md
    assert table in report.render(results)


def test_every_target_names_a_scenario_of_the_run(results: dict) -> None:
    names = {s["name"] for s in results["scenarios"]}
    for t in report.TARGETS:
        assert t.scenario == "*" or t.scenario in names, t


def test_a_missed_target_says_so(results: dict) -> None:
    slow = copy.deepcopy(results)
    for s in slow["scenarios"]:
        if s["name"] == "push":
            for r in s["rounds"]:
                r["scenario"]["rps"] = 1500.0
    table = report.targets_table(report.summaries(slow))
    row = next(line for line in table.splitlines() if line.startswith("| #5 push"))
    assert "1,500 notices/s" in row and row.endswith("| **not met** |")
    met = report.targets_table(report.summaries(results))
    assert "**not met**" not in met


def test_a_scenario_missing_from_the_run_is_not_reported_as_met(results: dict) -> None:
    partial = {**results, "scenarios": [s for s in results["scenarios"] if s["name"] != "bot_safe"]}
    table = report.targets_table(report.summaries(partial))
    row = next(line for line in table.splitlines() if line.startswith("| #6 bot, safe"))
    assert "not in this run" in row and "met" not in row


def test_a_busy_machine_is_named_in_the_block(results: dict) -> None:
    busy = copy.deepcopy(results)
    busy["meta"]["not_idle"] = ["me_pg: CPU idle 40% after 60 s"]
    assert "**Measured on a busy machine**" in report.render(busy)
    assert "me_pg: CPU idle 40% after 60 s" in report.render(busy)


def test_rerunning_rewrites_only_the_block(tmp_path: Path, results: dict) -> None:
    page = tmp_path / "benchmarks.md"
    before, after = "# Title\n\nprose before\n\n", "\n\nprose after, kept as written\n"
    page.write_text(f"{before}{report.BEGIN}\nstale figures: 12.1 %\n{report.END}{after}",
                    encoding="utf-8")
    results_file = report.RESULTS
    assert report.main(["--results", str(results_file), "--page", str(page), "--check"]) == 1
    assert report.main(["--results", str(results_file), "--page", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith(before + report.BEGIN + "\n") and text.endswith(report.END + after)
    assert "12.1 %" not in text
    assert report.extract(text) == report.render(results)
    assert report.main(["--results", str(results_file), "--page", str(page), "--check"]) == 0
    assert report.splice(text, report.render(results)) == text  # idempotent


@pytest.mark.parametrize(
    "page",
    [
        "no markers at all",
        f"{report.BEGIN}\nonly the start",
        f"{report.END}\n{report.BEGIN}\nreversed",
        f"{report.BEGIN}\n{report.END}\n{report.BEGIN}\n{report.END}\ntwice",
    ],
)
def test_a_page_without_exactly_one_block_is_refused(page: str) -> None:
    with pytest.raises(ValueError):
        report.splice(page, "block")
