"""The privacy notice and consents per purpose (API.md v1.1 "Privacy"); rules in
server.privacy.consent."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.schemas import ConsentsIn, ConsentsOut, ConsentWithdrawnOut, PrivacyNoticeOut
from server import keys
from server.openapi import endpoint
from server.responses import json_response

TAGS = ("privacy",)


@endpoint(
    summary="个人信息保护告知书(含需单独同意的用途;登录前即可阅读)",
    response=PrivacyNoticeOut,
    auth=False,
    tags=TAGS,
)
async def get_notice(request: web.Request) -> web.Response:
    return json_response(request.config_dict[keys.consents_key].notice_view())


@endpoint(
    summary="同意告知书及所选用途(每项单独记录)",
    body=ConsentsIn,
    response=ConsentsOut,
    status=201,
    tags=TAGS,
    errors=("PRIVACY_NOTICE_MISMATCH", "PRIVACY_NOTICE_OUTDATED", "VALIDATION_FAILED"),
)
async def accept(request: web.Request, body: ConsentsIn) -> web.Response:
    out = await request.config_dict[keys.consents_key].accept(
        request[keys.user_id_key],
        version=body.version,
        sha256=body.sha256,
        purposes=body.purposes,
        ip=request.remote,
        user_agent=request.headers.get("User-Agent"),
    )
    return json_response(out, status=201)


@endpoint(summary="我的隐私授权", response=ConsentsOut, tags=TAGS)
async def list_consents(request: web.Request) -> web.Response:
    out = await request.config_dict[keys.consents_key].status(request[keys.user_id_key])
    return json_response(out)


@endpoint(
    summary="撤回一项授权",
    response=ConsentWithdrawnOut,
    tags=TAGS,
    errors=("PURPOSE_NOT_FOUND",),
)
async def withdraw(request: web.Request) -> web.Response:
    out = await request.config_dict[keys.consents_key].withdraw(
        request[keys.user_id_key], request.match_info["purpose"]
    )
    return json_response(out)
