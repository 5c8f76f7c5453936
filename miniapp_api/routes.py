"""Mini-program routes: one named line per route."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.handlers import auth, me, mutual_aid, notices, subscriptions


def routes() -> list[web.RouteDef]:
    return [
        web.post("/auth/login", auth.login, name="auth_login"),
        web.post("/auth/refresh", auth.refresh, name="auth_refresh"),
        web.post("/auth/logout", auth.logout, name="auth_logout"),
        web.get("/me", me.get_me, name="me"),
        web.get("/mutual-aid/notice", mutual_aid.get_notice, name="mutual_aid_notice"),
        web.post("/mutual-aid/authorizations", mutual_aid.create_authorization, name="mutual_aid_authorize"),
        web.get("/mutual-aid/authorizations", mutual_aid.list_authorizations, name="mutual_aid_authorizations"),
        web.delete(
            "/mutual-aid/authorizations/{authorization_id}", mutual_aid.revoke_authorization, name="mutual_aid_revoke"
        ),
        web.get("/notices", notices.list_notices, name="notices"),
        web.post("/notices/subscriptions", subscriptions.report, name="notice_subscriptions"),
    ]
