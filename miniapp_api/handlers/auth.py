"""Login, refresh, logout: parse, call AuthService, answer."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.schemas import LoginIn, RefreshIn, TokenOut
from server import keys
from server.openapi import endpoint
from server.responses import json_response


@endpoint(summary="微信登录", body=LoginIn, response=TokenOut, auth=False, tags=("auth",),
          errors=("WECHAT_CODE_INVALID", "WECHAT_CODE_USED", "WECHAT_UNAVAILABLE", "RATE_LIMITED"))
async def login(request: web.Request, body: LoginIn) -> web.Response:
    user, pair = await request.config_dict[keys.auth_key].login(body.code, ip=request.remote)
    out = {**pair.as_dict(), "user": {"id": user.id, "realname_verified": user.realname_verified}}
    return json_response(out)


@endpoint(summary="刷新登录凭证", body=RefreshIn, response=TokenOut, auth=False, tags=("auth",),
          errors=("REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED", "SESSION_REVOKED"))
async def refresh(request: web.Request, body: RefreshIn) -> web.Response:
    pair = await request.config_dict[keys.auth_key].refresh(body.refresh_token)
    return json_response(pair.as_dict())


@endpoint(summary="退出登录", status=204, tags=("auth",))
async def logout(request: web.Request) -> web.Response:
    token = request.headers["Authorization"].partition(" ")[2].strip()
    await request.config_dict[keys.auth_key].logout(token)
    return web.Response(status=204)
