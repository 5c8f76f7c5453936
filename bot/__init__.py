"""The official-account (公众号) bot: webhook at /wechat/official."""

from __future__ import annotations

from aiohttp import web


def create_subapp() -> web.Application:
    from bot.routes import routes

    app = web.Application()
    app.add_routes(routes())
    return app
