"""Operations endpoints: liveness, readiness (really pings DB and Redis), metrics, OpenAPI."""

from __future__ import annotations

import asyncio

from aiohttp import web
from tortoise.context import get_current_context

from server import keys
from server.openapi import build_openapi
from server.responses import json_response


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    try:
        ctx = get_current_context()
        if ctx is None:
            raise RuntimeError("ORM not initialised")
        conn = ctx.db()
        await asyncio.wait_for(conn.execute_query("SELECT 1"), 2)
        checks["database"] = "ok"
    except Exception as exc:  # a readiness probe reports every failure, whatever it is
        checks["database"] = f"down: {type(exc).__name__}"
    try:
        await asyncio.wait_for(request.app[keys.redis_key].ping(), 2)
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"down: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[keys.metrics_key].render()
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = content_type
    return resp


async def openapi(request: web.Request) -> web.Response:
    doc = build_openapi(request.app, title="亲情医保 API", version="1")
    return json_response(doc)


def ops_routes() -> list[web.RouteDef]:
    return [
        web.get("/healthz", healthz, name="healthz"),
        web.get("/readyz", readyz, name="readyz"),
        web.get("/metrics", metrics, name="metrics"),
        web.get("/api/openapi.json", openapi, name="openapi"),
    ]
