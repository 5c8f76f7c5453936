"""Institution webhook handlers: parse, call the settlement service, answer."""

from __future__ import annotations

from aiohttp import web

from institution_api.schemas import (
    ReconciliationOut,
    ReconciliationQuery,
    ReversalIn,
    SettlementIn,
    SettlementOut,
    VoucherVerifyIn,
    VoucherVerifyOut,
)
from server import keys
from server.domain.institutions import InstitutionInfo
from server.domain.settlements import preview as previews
from server.domain.settlements import reconciliation
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
    errors=(
        "VOUCHER_INVALID",
        "VOUCHER_PASSWORD_REQUIRED",
        "VOUCHER_PASSWORD_NOT_SET",
        "VOUCHER_PASSWORD_WRONG",
        "VOUCHER_PASSWORD_LOCKED",
    ),
)
async def verify_voucher(request: web.Request, body: VoucherVerifyIn) -> web.Response:
    """A 医保码 is used once; where the member's region asks for the payment password
    (or one is given), it is checked first and a refusal leaves the 医保码 unused."""
    out = await request.config_dict[keys.voucher_passwords_key].verify_voucher(
        body.qr_token, body.password
    )
    return json_response(out)


@endpoint(
    summary="结算上传(2207)",
    body=SettlementIn,
    response=SettlementOut,
    status=201,
    auth="institution",
    tags=TAGS,
    errors=("AMOUNTS_INCONSISTENT", "SETTLEMENT_CONFLICT", "VOUCHER_INVALID", "MEMBER_NOT_FOUND",
            "VOUCHER_PASSWORD_REQUIRED", "VOUCHER_PASSWORD_NOT_SET", "VOUCHER_PASSWORD_WRONG",
            "VOUCHER_PASSWORD_LOCKED"),
)
async def create_settlement(request: web.Request, body: SettlementIn) -> web.Response:
    """By a 医保码 (``qr_token``) the member's payment password is checked first where
    their region asks for it, as at ``/vouchers/verify``; a refusal leaves the 医保码
    unused. The password is not part of the body a retry is compared on."""
    inst = _institution(request)
    req = parse_request(body.model_dump(exclude_none=True, exclude={"password"}), institution_code=inst.code)
    result = await request.config_dict[keys.voucher_passwords_key].settle(
        req,
        body.password,
        institution=inst,
        redis=request.config_dict[keys.redis_key],
        pii=request.config_dict[keys.pii_key],
        policy=request.config_dict[keys.policy_key],
    )
    return json_response(result.body, status=201 if result.created else 200)


@endpoint(
    summary="预结算(2206):按当前余额试算个人账户、共济和现金的分担,不记账、不通知",
    body=SettlementIn,
    response=SettlementOut,
    auth="institution",
    tags=TAGS,
    errors=("AMOUNTS_INCONSISTENT", "SETTLEMENT_CONFLICT", "VOUCHER_INVALID", "MEMBER_NOT_FOUND"),
)
async def preview_settlement(request: web.Request, body: SettlementIn) -> web.Response:
    inst = _institution(request)
    req = parse_request(body.model_dump(exclude_none=True, exclude={"password"}), institution_code=inst.code)
    out = await previews.preview(
        req,
        institution=inst,
        redis=request.config_dict[keys.redis_key],
        pii=request.config_dict[keys.pii_key],
        policy=request.config_dict[keys.policy_key],
    )
    return json_response(out)


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


@endpoint(
    summary="对账(3201 式):本机构某日的结算、撤销笔数与金额及逐笔明细(签名的请求体为空)",
    query=ReconciliationQuery,
    response=ReconciliationOut,
    auth="institution",
    tags=TAGS,
)
async def reconcile(request: web.Request, query: ReconciliationQuery) -> web.Response:
    inst = _institution(request)
    day = reconciliation.parse_day(query.date)
    out: dict[str, object] = {"date": day.isoformat(), "institution": inst.code}
    if query.cursor is None:
        out.update(await reconciliation.totals(inst.code, day))
    items, next_cursor = await reconciliation.page(inst.code, day, query.cursor, query.limit)
    out.update(items=items, next_cursor=next_cursor)
    return json_response(out)
