"""The current user."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.schemas import MeOut
from server import keys
from server.domain import users
from server.openapi import endpoint
from server.responses import json_response


@endpoint(summary="当前用户", response=MeOut, tags=("me",))
async def get_me(request: web.Request) -> web.Response:
    out = await users.profile(request[keys.user_id_key], pii=request.config_dict[keys.pii_key])
    return json_response(out)
