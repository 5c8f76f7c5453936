"""家庭共济: the 告知书, authorizations (create, list, revoke). Rules live in server.domain.mutual_aid."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.schemas import (
    AuthorizationCreate,
    AuthorizationList,
    AuthorizationPublic,
    MutualAidNoticeOut,
)
from server import keys
from server.domain import mutual_aid
from server.openapi import endpoint
from server.responses import json_response

TAGS = ("mutual_aid",)


@endpoint(summary="共济绑定告知书", response=MutualAidNoticeOut, tags=TAGS)
async def get_notice(request: web.Request) -> web.Response:
    return json_response(mutual_aid.current_notice().as_dict())


@endpoint(
    summary="授权家人共济",
    body=AuthorizationCreate,
    response=AuthorizationPublic,
    status=201,
    tags=TAGS,
    errors=(
        "AUTHORIZER_NOT_VERIFIED",
        "AUTHORIZER_NOT_EMPLOYEE",
        "NO_PERSONAL_ACCOUNT",
        "INVALID_ID_NUMBER",
        "SELF_NOT_ALLOWED",
        "RELATIONSHIP_NOT_ALLOWED",
        "INFO_MISMATCH",
        "MEMBER_NOT_INSURED",
        "OUTSIDE_POOLING_AREA",
        "CROSS_PROVINCE_NOT_ALLOWED",
        "CROSS_PROVINCE_QUOTA_REQUIRED",
        "QUOTA_NOT_APPLICABLE",
        "ALREADY_AUTHORIZED",
        "FAMILY_SIZE_LIMIT",
        "AUTHORIZER_LIMIT",
        "NOTICE_REQUIRED",
        "NOTICE_OUTDATED",
        "INSUFFICIENT_BALANCE",
        "RATE_LIMITED",
    ),
)
async def create_authorization(request: web.Request, body: AuthorizationCreate) -> web.Response:
    out = await mutual_aid.authorize(
        user_id=request[keys.user_id_key],
        name=body.name,
        id_type=body.id_type,
        id_number=body.id_number,
        relationship=body.relationship,
        notice_version=body.notice_version,
        notice_sha256=body.notice_sha256,
        quota_fen=body.quota_fen,
        pii=request.config_dict[keys.pii_key],
        policy=request.config_dict[keys.policy_key],
        redis=request.config_dict[keys.redis_key],
        guesses=request.config_dict[keys.family_key].guesses,
        ip=request.remote,
    )
    return json_response(out, status=201)


@endpoint(summary="我的共济授权", response=AuthorizationList, tags=TAGS)
async def list_authorizations(request: web.Request) -> web.Response:
    out = await mutual_aid.list_for_user(
        user_id=request[keys.user_id_key],
        pii=request.config_dict[keys.pii_key],
        policy=request.config_dict[keys.policy_key],
    )
    return json_response(out)


@endpoint(
    summary="解除共济授权",
    status=204,
    tags=TAGS,
    errors=("AUTHORIZATION_NOT_FOUND", "UNBIND_LOCKED"),
)
async def revoke_authorization(request: web.Request) -> web.Response:
    await mutual_aid.revoke(
        user_id=request[keys.user_id_key],
        authorization_id=request.match_info["authorization_id"],
        policy=request.config_dict[keys.policy_key],
    )
    return web.Response(status=204)
