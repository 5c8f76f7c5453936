"""PUT /api/v1/family/members/{binding_id}/voucher-password: the member's 医保支付密码."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.schemas import VoucherPasswordIn
from server import keys
from server.openapi import endpoint


@endpoint(
    summary="为家人设置医保支付密码(6位数字;修改需家人本人人脸核验)",
    body=VoucherPasswordIn,
    status=204,
    tags=("family",),
    errors=(
        "VALIDATION_FAILED",
        "VOUCHER_PASSWORD_WEAK",
        "FACE_CHECK_FAILED",
        "NOT_FOUND",
        "RATE_LIMITED",
        "SYSTEM_BUSY",
    ),
)
async def set_password(request: web.Request, body: VoucherPasswordIn) -> web.Response:
    await request.config_dict[keys.voucher_passwords_key].set(
        request[keys.user_id_key],
        request.match_info["binding_id"],
        password=body.password,
        member_face_token=body.member_face_token,
    )
    return web.Response(status=204)
