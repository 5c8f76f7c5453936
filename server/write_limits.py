"""A write budget on every write route (POST / PUT / PATCH / DELETE), per caller and route.

Every ``@endpoint`` (server.openapi) spends one unit of this budget on a write request,
once the caller is known: the user (JWT), the reviewer (token), the institution (its
signature, checked by institution_api's middleware before the handler) or, for the
anonymous routes (login, refresh), the client address. So a write route added tomorrow is
limited without anyone remembering to. Routes outside ``@endpoint`` (the console's forms)
are wrapped with :func:`by_address`; the security matrix (tests/security) walks the router
and fails on a write route that carries neither.

The budgets are per minute, in ``[limits]`` (config/default.toml): generous — a person
never reaches them — and separate from the tighter domain limits (identity guessing,
uploads, face sessions...), which still apply. Beyond a budget: 429 ``RATE_LIMITED`` with
``Retry-After`` (server.ratelimit).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from server import keys
from server.ratelimit import hit

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LIMIT_ATTR = "__write_limit__"

#: ``[limits]`` names and their defaults (writes per caller per route per minute).
DEFAULTS: dict[str, int] = {
    "user_writes_per_minute": 60,
    "anonymous_writes_per_minute": 120,
    "reviewer_writes_per_minute": 120,
    "institution_writes_per_minute": 60_000,
    "console_writes_per_minute": 300,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class WriteLimit:
    """What a route's write budget is keyed on (documentation for the matrix test)."""

    who: str  # "caller" (user / reviewer / institution / address, @endpoint) | "address"
    setting: str  # the [limits] name, or "" when it depends on the caller


ENDPOINT_LIMIT = WriteLimit("caller", "")
ADDRESS_LIMIT = WriteLimit("address", "console_writes_per_minute")


def _budget(request: web.Request, name: str) -> int:
    limits = request.config_dict[keys.settings_key].limits
    return int(getattr(limits, name))


def _route(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else request.path


async def spend(request: web.Request) -> None:
    """One write by the authenticated caller of an ``@endpoint`` (no-op for reads)."""
    if request.method not in WRITE_METHODS:
        return
    if (user := request.get(keys.user_id_key)) is not None:
        who, name = f"u:{user}", "user_writes_per_minute"
    elif (reviewer := request.get(keys.reviewer_key)) is not None:
        who, name = f"r:{reviewer}", "reviewer_writes_per_minute"
    elif (inst := request.get(keys.institution_key)) is not None:
        who, name = f"i:{getattr(inst, 'code', inst)}", "institution_writes_per_minute"
    else:
        who, name = f"a:{request.remote or '-'}", "anonymous_writes_per_minute"
    redis = request.config_dict[keys.redis_key]
    await hit(redis, f"w:{_route(request)}:{who}", limit=_budget(request, name), per_seconds=60)


def by_address(handler: Handler) -> Handler:
    """A handler outside ``@endpoint`` (HTML forms): writes budgeted per client address."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if request.method in WRITE_METHODS:
            redis = request.config_dict[keys.redis_key]
            limit = _budget(request, ADDRESS_LIMIT.setting)
            await hit(redis, f"w:{_route(request)}:a:{request.remote or '-'}", limit=limit, per_seconds=60)
        return await handler(request)

    setattr(wrapper, LIMIT_ATTR, ADDRESS_LIMIT)
    return wrapper
