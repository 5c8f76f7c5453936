"""Institution webhook handlers: parse, call the settlement service, answer."""

from __future__ import annotations

from aiohttp import web

from institution_api.schemas import (
    ReversalIn,
    SettlementIn,
    SettlementOut,
    VoucherVerifyIn,
    VoucherVerifyOut,
)
from server import keys
from server.domain.institutions import InstitutionInfo
from server.domain.settlements import service as settlements
from server.domain.settlements.request import parse_request, parse_reversal
from server.openapi import endpoint
from server.responses import json_response

TAGS = ("institution",)


def _institution(request: web.Request) -> InstitutionInfo:
    inst = request[keys.institution_key]
    assert isinstance(inst, InstitutionInfo)
    return inst


@endpoint(
    summary="核验医保码",
    body=VoucherVerifyIn,
    response=VoucherVerifyOut,
    auth="institution",
    tags=TAGS,
    errors=("VOUCHER_INVALID",),
)
async def verify_voucher(request: web.Request, body: VoucherVerifyIn) -> web.Response:
    out = await settlements.verify_voucher(
        body.qr_token,
        redis=request.config_dict[keys.redis_key],
        pii=request.config_dict[keys.pii_key],
    )
    return json_response(out)


@endpoint(
    summary="结算上传(2207)",
    body=SettlementIn,
    response=SettlementOut,
    status=201,
    auth="institution",
    tags=TAGS,
    errors=("AMOUNTS_INCONSISTENT", "SETTLEMENT_CONFLICT", "VOUCHER_INVALID", "MEMBER_NOT_FOUND"),
)
async def create_settlement(request: web.Request, body: SettlementIn) -> web.Response:
    inst = _institution(request)
    req = parse_request(body.model_dump(exclude_none=True), institution_code=inst.code)
    result = await settlements.settle(
        req,
        institution=inst,
        redis=request.config_dict[keys.redis_key],
        pii=request.config_dict[keys.pii_key],
        policy=request.config_dict[keys.policy_key],
    )
    return json_response(result.body, status=201 if result.created else 200)


@endpoint(
    summary="结算撤销(2208)",
    body=ReversalIn,
    response=SettlementOut,
    auth="institution",
    tags=TAGS,
    errors=("SETTLEMENT_NOT_FOUND",),
)
async def reverse_settlement(request: web.Request, body: ReversalIn) -> web.Response:
    rev = parse_reversal(request.match_info["setl_id"], body.model_dump())
    out = await settlements.reverse(
        setl_id=rev.setl_id, reason=rev.reason, institution=_institution(request)
    )
    return json_response(out)
