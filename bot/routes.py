"""Bot routes: one named line per route (full path /wechat/official)."""

from __future__ import annotations

from aiohttp import web

from bot.webhook import official_get, official_post


def routes() -> list[web.RouteDef]:
    return [
        web.get("/official", official_get, name="official_verify", allow_head=False),
        web.post("/official", official_post, name="official_message"),
    ]
