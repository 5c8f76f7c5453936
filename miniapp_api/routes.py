"""Mini-program routes: one named line per route."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.handlers import auth, me, subscriptions


def routes() -> list[web.RouteDef]:
    return [
        web.post("/auth/login", auth.login, name="auth_login"),
        web.post("/auth/refresh", auth.refresh, name="auth_refresh"),
        web.post("/auth/logout", auth.logout, name="auth_logout"),
        web.get("/me", me.get_me, name="me"),
        web.post("/notices/subscriptions", subscriptions.report, name="notice_subscriptions"),
    ]
