"""The mini-program HTTP API (API.md "Mini-program"), mounted at /api/v1."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.routes import routes


def create_subapp() -> web.Application:
    app = web.Application()
    app.add_routes(routes())
    return app
