"""The reviewer web console for 医保经办 staff: review submitted materials, approve or
reject with a reason, watch the push queue (SPEC.md "Who uses it")."""

from __future__ import annotations

from aiohttp import web

from review_console.routes import api_routes, page_routes


def create_api_subapp() -> web.Application:
    """JSON API under /api/v1/review (reviewer token auth)."""
    app = web.Application()
    app.add_routes(api_routes())
    return app


def create_page_subapp() -> web.Application:
    """The single-page console under /review (static HTML; it calls the JSON API)."""
    app = web.Application()
    app.add_routes(page_routes())
    return app
