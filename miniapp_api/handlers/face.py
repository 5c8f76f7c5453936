"""POST /api/v1/face/sessions: a WeChat 人脸核身 session (API.md v1.1)."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.schemas import FaceSessionIn, FaceSessionOut
from server import keys
from server.openapi import endpoint
from server.responses import json_response


@endpoint(
    summary="开始人脸核身:取得 wx.startFacialRecognitionVerify 的 userIdKey",
    body=FaceSessionIn,
    response=FaceSessionOut,
    status=201,
    tags=("face",),
    errors=("VALIDATION_FAILED", "INVALID_ID_NUMBER", "NOT_FOUND", "RATE_LIMITED", "SYSTEM_BUSY"),
)
async def open_session(request: web.Request, body: FaceSessionIn) -> web.Response:
    out = await request.config_dict[keys.face_key].open_session(
        request[keys.user_id_key],
        purpose=body.purpose,
        name=body.name,
        id_type=body.id_type,
        id_number=body.id_number,
        application_id=body.application_id,
    )
    return json_response(out, status=201)
