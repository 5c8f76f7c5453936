"""POST /api/v1/me/realname: the binder's real-name verification."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.schemas import MeOut, RealnameIn
from server import keys
from server.openapi import endpoint
from server.responses import json_response


@endpoint(
    summary="实名认证(姓名+证件号与参保登记一致,人脸核身,本人医保电子凭证已激活)",
    body=RealnameIn,
    response=MeOut,
    tags=("me",),
    errors=(
        "INVALID_ID_NUMBER",
        "INFO_MISMATCH",
        "FACE_CHECK_FAILED",
        "BINDER_NOT_VERIFIED",
        "IDENTITY_IN_USE",
        "REALNAME_ALREADY_VERIFIED",
        "RATE_LIMITED",
        "SYSTEM_BUSY",
    ),
)
async def realname(request: web.Request, body: RealnameIn) -> web.Response:
    out = await request.config_dict[keys.realname_key].verify(
        request[keys.user_id_key],
        name=body.name,
        id_type=body.id_type,
        id_number=body.id_number,
        face_token=body.face_token,
        ip=request.remote,
    )
    return json_response(out)
