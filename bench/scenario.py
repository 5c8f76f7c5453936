"""What a scenario is, and where the harness finds them.

A scenario is a :class:`Scenario`: which process it loads (``target``), a ``prepare``
function called once per round (log users in, create data…) that returns the load
(:class:`~bench.load.Wrk` or :class:`~bench.load.Command`), and an optional
``teardown``. Modules ``bench/scenario_*.py`` are discovered automatically: each
defines ``SCENARIOS: list[Scenario]`` (bench/README.md "Adding a scenario").
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.load import Load
from bench.services import Target


@dataclass(frozen=True)
class Scenario:
    name: str  # `--only NAME`
    title: str  # the table's first column
    target: str  # "bare", "pg" or "sqlite": the process that gets the load
    prepare: Callable[[Target, int], Load]  # (target, round number) → load; not timed
    teardown: Callable[[Target, Any], None] | None = None  # (target, load), after each round


def discover() -> list[Scenario]:
    """The core scenarios (bench/scenarios.py) first, then every ``bench/scenario_*`` module."""
    import bench
    from bench import scenarios

    found: list[Scenario] = list(scenarios.SCENARIOS)
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda i: i.name):
        if info.name.startswith("scenario_"):
            module = importlib.import_module(f"bench.{info.name}")
            found.extend(getattr(module, "SCENARIOS", []))
    names = [s.name for s in found]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"duplicate scenario names: {sorted(dupes)}")
    return found
