"""Test doubles stay out of production: only server/demo.py (the embedded demo's wiring)
imports ``fakes``, and the fakes import nothing of ours but each other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("server", "miniapp_api", "institution_api", "bot", "review_console")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_demo_wiring_imports_fakes() -> None:
    importers = sorted(
        str(path.relative_to(ROOT))
        for package in PRODUCTION
        for path in (ROOT / package).rglob("*.py")
        if any(name == "fakes" or name.startswith("fakes.") for name in _imports(path))
    )
    assert importers == ["server/demo.py"]


def test_fakes_import_nothing_of_ours() -> None:
    ours = {*PRODUCTION, "tests", "bench"}
    for path in (ROOT / "fakes").rglob("*.py"):
        leaks = {name for name in _imports(path) if name.split(".")[0] in ours}
        assert not leaks, f"{path.relative_to(ROOT)} imports {sorted(leaks)}"
