"""The bot's sub-app and its context on the main app (the HTTP side: ``bot.webhook``,
``bot.routes``); the rest of the package is the bot's core, which knows no web framework."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server import keys


def create_subapp() -> web.Application:
    """The /wechat sub-app; its BotService comes from ``bot_ctx`` on the parent app."""
    from bot.routes import routes

    app = web.Application()
    app.add_routes(routes())
    return app


async def bot_ctx(app: web.Application) -> AsyncIterator[None]:
    """A cleanup_ctx of the main app, after the resources it uses (settings, Redis, WeChat
    gateway, PII cipher): load the knowledge base once; cancel background work on stop."""
    from bot.handlers import build_router
    from bot.nlu import KnowledgeBase
    from bot.service import BotService

    app[keys.bot_key] = BotService.from_settings(
        app[keys.settings_key],
        kb=KnowledgeBase.load(),
        router=build_router(),
        redis=app[keys.redis_key],
        pii=app[keys.pii_key],
        wechat=app[keys.wechat_key],
    )
    yield
    await app[keys.bot_key].close()
