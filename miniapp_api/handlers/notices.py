"""GET /api/v1/notices: the signed-in user's 结算通知 and their delivery state (read only)."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.schemas import NoticeList, NoticesQuery
from server import keys
from server.domain import notices_outbox
from server.openapi import endpoint
from server.responses import json_response


@endpoint(summary="我的通知", query=NoticesQuery, response=NoticeList, tags=("notices",))
async def list_notices(request: web.Request, query: NoticesQuery) -> web.Response:
    out = await notices_outbox.list_for_user(request[keys.user_id_key], limit=query.limit)
    return json_response(out)
