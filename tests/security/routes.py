"""The app's routes as the router knows them: the security matrix's tests walk these so a
route added tomorrow is covered (or named as an exemption) before it ships."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from server.openapi import SPEC_ATTR, EndpointSpec, _all_routes

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # the template: /api/v1/family/applications/{id}
    handler: Any

    @property
    def spec(self) -> EndpointSpec | None:
        return getattr(self.handler, SPEC_ATTR, None)

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{([^}:]+)", self.path))

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)


def all_routes(app: web.Application) -> Iterator[Route]:
    """Every method + path template of the app and its sub-apps (HEAD and static files left out)."""
    for route in _all_routes(app):
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if not path or route.method in ("HEAD", "*"):
            continue
        yield Route(route.method, path, route.handler)


def id_routes(app: web.Application) -> set[tuple[str, str]]:
    """Routes of the JSON APIs (mini-program, institution, review) that take something's
    id in their path."""
    return {r.key for r in all_routes(app) if r.path.startswith("/api/") and r.params}


def body_id_fields(app: web.Application) -> set[tuple[str, str, str]]:
    """(method, path, field) for every JSON body field that names something by id."""
    out = set()
    for r in all_routes(app):
        spec = r.spec
        if spec is None or spec.body is None:
            continue
        for name in spec.body.model_fields:
            if name == "id" or name.endswith("_id"):
                out.add((r.method, r.path, name))
    return out


def write_routes(app: web.Application) -> list[Route]:
    return [r for r in all_routes(app) if r.method in WRITE_METHODS]
