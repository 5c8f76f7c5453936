"""Hospital / pharmacy systems' signed webhook (API.md "Institutions")."""

from __future__ import annotations

from aiohttp import web

from institution_api.routes import routes


def create_subapp() -> web.Application:
    app = web.Application()
    app.add_routes(routes())
    return app
