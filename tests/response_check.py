"""Every JSON response a test sees is checked against what /api/openapi.json declares for
its operation (server/openapi.py): the ``response`` model of ``@endpoint`` for the declared
status, the ``Error`` envelope for 4xx/5xx. ``serving()`` (tests/conftest.py) installs it on
the app under test, outermost, so it sees exactly what a client receives.

The models are the ones the document is generated from, so a response that fails here
does not match the published contract: the test fails with the operation, the status and
pydantic's account of the difference (extra top-level members count as a difference).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from server.openapi import SPEC_ATTR, EndpointSpec

__all__ = ["ResponseMismatch", "check_response", "install_response_check"]


class ResponseMismatch(AssertionError):
    """A response that does not match its declared model."""


class _ErrorBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # fix, detail members (API.md "Errors")

    code: str
    message: str
    fields: dict[str, str] | None = None


class _ErrorEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: _ErrorBody


def check_response(spec: EndpointSpec, status: int, body: bytes, where: str) -> None:
    """Raise :class:`ResponseMismatch` unless ``body`` is what ``spec`` declares for ``status``."""
    if status >= 400:
        model: type[BaseModel] | None = _ErrorEnvelope
    elif status == spec.status or (spec.status, status) == (201, 200):
        model = spec.response  # 200: a creation replayed (idempotent: the same body, API.md)
    else:
        raise ResponseMismatch(f"{where}: answered {status}, declares {spec.status}")
    if model is None:
        return
    try:
        data = json.loads(body)
        model.model_validate(data)
    except (ValueError, ValidationError) as exc:
        raise ResponseMismatch(f"{where} {status} does not match {model.__name__}: {exc}") from None
    if isinstance(data, dict):
        extra = set(data) - set(model.model_fields)
        if extra:
            raise ResponseMismatch(f"{where} {status}: undeclared members {sorted(extra)} in {model.__name__}")


def install_response_check(app: web.Application, checked: list[str] | None = None) -> None:
    """Check every JSON response of ``app``'s declared endpoints (sub-apps included);
    ``checked`` collects the operations seen, for tests of the check itself."""

    @web.middleware
    async def response_check(request: web.Request, handler: Any) -> web.StreamResponse:
        route = request.match_info.route
        spec: EndpointSpec | None = getattr(route.handler, SPEC_ATTR, None)
        response = await handler(request)
        if spec is None or not isinstance(response, web.Response) or response.prepared:
            return response
        where = f"{request.method} {route.resource.canonical if route.resource else request.path}"
        if response.content_type == "application/json" and isinstance(response.body, bytes):
            check_response(spec, response.status, response.body, where)
            if checked is not None:
                checked.append(where)
        elif response.status != spec.status and response.status < 400:
            raise ResponseMismatch(f"{where}: answered {response.status}, declares {spec.status}")
        return response

    app.middlewares.insert(0, response_check)
