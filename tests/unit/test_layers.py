"""Imports point down: HTTP → domain → gateways (ports), read from the source (ast).

Layers (docs/architecture.md):

* ``http``: the sub-apps of the three clients and the console, and the server's own HTTP
  modules (app factory, middlewares, OpenAPI, error statuses, ops endpoints);
* ``wiring``: what builds processes and apps — the CLI, lifecycle contexts, the typed app
  keys, the push worker process, the privacy contexts, the embedded demo;
* ``domain``: the rules and services — ``server/domain``, ``server/privacy``,
  ``server/push``, ``server/bulk`` and the bot's core (router, NLU, dialogue, service);
* ``gateway``: the ports to the outside (WeChat, storage, the token cache);
* ``foundation``: settings, clock-free helpers every layer may use;
* ``fake``: the test doubles (``fakes/``), which production never imports but through the
  demo's wiring (``server/demo.py``).

Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` too, so those count as
imported; imports made only for the type checker count as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "miniapp_api", "institution_api", "bot", "review_console", "fakes")

HTTP_PACKAGES = ("miniapp_api", "institution_api", "review_console")
HTTP_MODULES = (
    "bot.app",  # create_subapp, bot_ctx
    "bot.routes",
    "bot.webhook",
    "server.app",
    "server.middlewares",
    "server.openapi",
    "server.ops",
    "server.responses",
    "server.http_errors",
    "server.serving",
    "server.proxy",  # the trusted proxies' X-Real-IP middleware
    "server.write_limits",  # the write budget of every route
)
WIRING = (
    "server.__main__",
    "server.lifecycle",
    "server.keys",
    "server.demo",
    "server.db",
    "server.logs",
    "server.push.worker",
    "server.privacy.context",
    "server.privacy.job",
)
FOUNDATION = (
    "server",
    "server.settings",
    "server.feature_settings",
    "server.ratelimit",
    "server.outages",
    "server.metrics",
    "server.consttime",  # constant-time compares
    "server.redis_client",  # one Redis or a Redis Cluster, hash tags
)
DOMAIN_PACKAGES = ("server.domain", "server.privacy", "server.push", "server.bulk", "bot")

# layer → the layers it may import
ALLOWED: dict[str, set[str]] = {
    "http": {"http", "wiring", "domain", "foundation"},
    "wiring": {"http", "wiring", "domain", "gateway", "foundation"},
    "domain": {"domain", "gateway", "foundation"},
    "gateway": {"gateway", "foundation"},
    "foundation": {"foundation"},
    "fake": {"fake"},
}
# third-party modules a layer may not import
FORBIDDEN_LIBRARIES: dict[str, tuple[str, ...]] = {
    "domain": ("aiohttp.web", "aiohttp_jinja2", "fakes"),
    "gateway": ("aiohttp.web", "tortoise", "fakes"),
}


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer_of(module: str) -> str:
    if _within(module, ("fakes",)):
        return "fake"
    if _within(module, HTTP_PACKAGES) or module in HTTP_MODULES:
        return "http"
    if module in WIRING or _within(module, ("server.migrations",)):
        return "wiring"
    if _within(module, ("server.gateways",)):
        return "gateway"
    if module in FOUNDATION:
        return "foundation"
    if _within(module, DOMAIN_PACKAGES):
        return "domain"
    raise AssertionError(f"{module} has no layer: add it to tests/unit/test_layers.py")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {
    _module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
}


def _imports(module: str) -> Iterator[tuple[str, int]]:
    """Every module ``module`` imports (with the line), its parent packages included."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names = [base]
            # ``from a import b`` imports the module a.b when there is one
            names += [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                yield ".".join(parts[:i]), node.lineno


def _violations() -> list[str]:
    found: list[str] = []
    for module in MODULES:
        mine = layer_of(module)
        for name, line in _imports(module):
            where = f"{MODULES[module].relative_to(ROOT)}:{line}"
            if name in MODULES:
                theirs = layer_of(name)
                if module == "server.demo" and theirs == "fake":
                    continue  # the one place that wires the embedded fake WeChat
                if module == "server.http_errors" and theirs == "gateway":
                    continue  # the one place the HTTP side maps the gateways' own errors
                if theirs not in ALLOWED[mine]:
                    found.append(f"{where}: {mine} {module} imports {theirs} {name}")
            elif _within(name, FORBIDDEN_LIBRARIES.get(mine, ())):
                found.append(f"{where}: {mine} {module} imports {name}")
    return found


def test_every_module_has_a_layer() -> None:
    assert len(MODULES) > 150
    for module in MODULES:
        layer_of(module)


def test_imports_point_down() -> None:
    assert _violations() == []


def test_the_rules_catch_what_they_should() -> None:
    """The classification itself (so the test above cannot pass by seeing nothing)."""
    assert layer_of("miniapp_api.handlers.family") == "http"
    assert layer_of("server.domain.family.submit") == "domain"
    assert layer_of("server.gateways.wechat") == "gateway"
    assert layer_of("bot.service") == "domain" and layer_of("bot.webhook") == "http"
    assert layer_of("fakes.wechat.state") == "fake"
    assert "http" not in ALLOWED["domain"] and "domain" not in ALLOWED["gateway"]
    imported = {name for name, _ in _imports("server.domain.family.submit")}
    assert {"server", "server.domain", "server.domain.family.base"} <= imported
    with pytest.raises(AssertionError, match="has no layer"):
        layer_of("somewhere.else")


def test_only_the_demo_wiring_imports_fakes_and_fakes_import_nothing_of_ours() -> None:
    importers = sorted(
        module
        for module in MODULES
        if layer_of(module) != "fake" and any(name == "fakes" for name, _ in _imports(module))
    )
    assert importers == ["server.demo"]
    for module in MODULES:
        if layer_of(module) == "fake":
            ours = {name for name, _ in _imports(module) if name.split(".")[0] in PACKAGES[:-1]}
            assert not ours, f"{module} imports {sorted(ours)}"
