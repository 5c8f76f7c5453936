"""亲情账户 endpoints (API.md "Mini-program"): parse, call FamilyService, answer."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from miniapp_api.schemas import (
    ApplicationIn,
    ApplicationListOut,
    ApplicationOut,
    BinderListOut,
    CommitmentOut,
    CommitmentSignIn,
    MaterialOut,
    MemberListOut,
    PageQuery,
    PrecheckIn,
    PrecheckOut,
    SettlementListOut,
    SettlementsQuery,
    SignatureOut,
    SubmitIn,
    SummaryOut,
    VoucherOut,
    YearQuery,
)
from server import keys
from server.domain.errors import DomainError
from server.domain.family import FamilyService
from server.openapi import endpoint
from server.responses import json_response, stream_document

TAGS = ("family",)
SUBMIT_ERRORS = (
    "BINDER_NOT_VERIFIED",
    "INFO_MISMATCH",
    "MEMBER_NOT_ACTIVATED",
    "MEMBER_NOT_INSURED",
    "RELATIONSHIP_NOT_ALLOWED",
    "ALREADY_BOUND",
    "MEMBER_LIMIT_REACHED",
    "MONTHLY_BINDER_LIMIT",
    "MINOR_DOCUMENTS_MISSING",
    "MATERIALS_MISSING",
    "FACE_CHECK_FAILED",
    "COMMITMENT_REQUIRED",
    "COMMITMENT_OUTDATED",
    "SYSTEM_BUSY",
    "APPLICATION_STATE_CONFLICT",
    "RATE_LIMITED",
    "SELF_NOT_ALLOWED",
    "IDENTITY_IN_USE",
)


def _service(request: web.Request) -> FamilyService:
    return request.config_dict[keys.family_key]




@endpoint(summary="个人承诺书(当前版本)", response=CommitmentOut, tags=TAGS)
async def commitment_current(request: web.Request) -> web.Response:
    return json_response(_service(request).current_commitment())


@endpoint(
    summary="绑定预检(不保存任何数据)",
    body=PrecheckIn,
    response=PrecheckOut,
    tags=TAGS,
    errors=("INVALID_FIELD", "SELF_NOT_ALLOWED", "RATE_LIMITED"),
)
async def precheck(request: web.Request, body: PrecheckIn) -> web.Response:
    out = await _service(request).precheck(
        request[keys.user_id_key],
        name=body.name,
        id_type=body.id_type,
        id_number=body.id_number,
        relationship=body.relationship,
        ip=request.remote,
    )
    return json_response(out)


@endpoint(
    summary="创建绑定申请",
    body=ApplicationIn,
    response=ApplicationOut,
    status=201,
    tags=TAGS,
    errors=("INVALID_ID_NUMBER", "SELF_NOT_ALLOWED", "RATE_LIMITED"),
)
async def create_application(request: web.Request, body: ApplicationIn) -> web.Response:
    out = await _service(request).create_application(
        request[keys.user_id_key],
        name=body.name,
        id_type=body.id_type,
        id_number=body.id_number,
        relationship=body.relationship,
        phone=body.phone,
        reason=body.reason,
    )
    return json_response(out, status=201)


@endpoint(summary="我的绑定申请(按时间倒序分页)", query=PageQuery, response=ApplicationListOut, tags=TAGS)
async def list_applications(request: web.Request, query: PageQuery) -> web.Response:
    out = await _service(request).list_applications(
        request[keys.user_id_key], cursor=query.cursor, limit=query.limit
    )
    return json_response(out)


@endpoint(
    summary="撤销草稿或待补正的申请",
    status=204,
    tags=TAGS,
    errors=("APPLICATION_STATE_CONFLICT",),
)
async def cancel_application(request: web.Request) -> web.Response:
    await _service(request).cancel_application(request[keys.user_id_key], request.match_info["id"])
    return web.Response(status=204)


@endpoint(
    summary="提交前删除一份材料",
    status=204,
    tags=TAGS,
    errors=("APPLICATION_STATE_CONFLICT",),
)
async def remove_material(request: web.Request) -> web.Response:
    await _service(request).remove_material(
        request[keys.user_id_key], request.match_info["id"], request.match_info["material_id"]
    )
    return web.Response(status=204)


@endpoint(summary="绑定申请详情", response=ApplicationOut, tags=TAGS)
async def get_application(request: web.Request) -> web.Response:
    out = await _service(request).get_application(
        request[keys.user_id_key], request.match_info["id"]
    )
    return json_response(out)


@endpoint(
    summary="上传材料(multipart: kind, file)",
    response=MaterialOut,
    status=201,
    tags=TAGS,
    content_type="multipart/form-data",
    errors=(
        "PAYLOAD_TOO_LARGE",
        "MATERIAL_TOO_LARGE",
        "UNSUPPORTED_MEDIA_TYPE",
        "APPLICATION_STATE_CONFLICT",
        "MATERIAL_LIMIT_REACHED",
        "UPLOAD_QUOTA_EXCEEDED",
        "RATE_LIMITED",
    ),
)
async def upload_material(request: web.Request) -> web.Response:
    service, user_id, app_id = (
        _service(request),
        request[keys.user_id_key],
        request.match_info["id"],
    )
    if not request.content_type.startswith("multipart/"):
        raise DomainError(
            "UNSUPPORTED_MEDIA_TYPE", "请以 multipart/form-data 上传(字段 kind 和 file)"
        )
    kind: str | None = request.query.get("kind")
    stored = None
    try:
        reader = await request.multipart()
    except ValueError:  # no boundary
        raise _malformed_multipart() from None
    try:
        while (part := await _next_part(reader)) is not None:
            name = getattr(part, "name", None)
            if name == "kind":
                kind = (await part.text()).strip()[:64]
            elif name == "file" and stored is None:
                stored = await service.store_upload(user_id, app_id, part, kind=kind)
            else:
                raise DomainError(
                    "VALIDATION_FAILED",
                    "上传的表单只能包含 kind 和一个 file",
                    fields={str(name or "body"): "UNKNOWN_FIELD"},
                )
    except BaseException as exc:
        if stored is not None:
            await service.discard_upload(stored)
        if isinstance(exc, (ValueError, HttpProcessingError)):  # truncated mid-part
            raise _malformed_multipart() from None
        raise
    if stored is None:
        raise DomainError(
            "VALIDATION_FAILED", "请选择要上传的文件", fields={"file": "REQUIRED"}
        )
    out = await service.attach_material(user_id, app_id, kind=kind, stored=stored)
    return json_response(out, status=201)


def _malformed_multipart() -> DomainError:
    return DomainError("MALFORMED_MULTIPART", "上传的表单格式有误,请重新选择文件上传")


async def _next_part(reader: Any) -> Any:
    """The next part; a truncated body, an oversized or endless part header is 400."""
    try:
        return await reader.next()
    except (ValueError, HttpProcessingError):
        raise _malformed_multipart() from None


@endpoint(summary="查看本人上传的材料(已去除元数据)", tags=TAGS)
async def get_material(request: web.Request) -> web.StreamResponse:
    content_type, chunks = await _service(request).open_material(
        request[keys.user_id_key], request.match_info["id"], request.match_info["material_id"]
    )
    return await stream_document(request, content_type, chunks)


@endpoint(
    summary="签署个人承诺书",
    body=CommitmentSignIn,
    response=SignatureOut,
    status=201,
    tags=TAGS,
    errors=(
        "COMMITMENT_OUTDATED", "COMMITMENT_MISMATCH", "APPLICATION_STATE_CONFLICT",
        "SIGNATURE_LIMIT_REACHED", "UPLOAD_QUOTA_EXCEEDED", "RATE_LIMITED",
    ),
)
async def sign_commitment(request: web.Request, body: CommitmentSignIn) -> web.Response:
    out = await _service(request).sign_commitment(
        request[keys.user_id_key],
        request.match_info["id"],
        version=body.version,
        sha256=body.sha256,
        signature_image=body.signature_image,
        ip=request.remote,
        user_agent=request.headers.get("User-Agent"),
    )
    return json_response(out, status=201)


@endpoint(
    summary="提交绑定申请", body=SubmitIn, response=ApplicationOut, tags=TAGS, errors=SUBMIT_ERRORS
)
async def submit(request: web.Request, body: SubmitIn) -> web.Response:
    out = await _service(request).submit(
        request[keys.user_id_key],
        request.match_info["id"],
        member_face_token=body.member_face_token,
        verification=body.verification,
        ip=request.remote,
    )
    return json_response(out)


@endpoint(summary="我的家庭成员", response=MemberListOut, tags=TAGS)
async def list_members(request: web.Request) -> web.Response:
    return json_response({"items": await _service(request).list_members(request[keys.user_id_key])})


@endpoint(summary="解除绑定", status=204, tags=TAGS, errors=("BINDING_NOT_ACTIVE",))
async def unbind(request: web.Request) -> web.Response:
    await _service(request).unbind(request[keys.user_id_key], request.match_info["binding_id"])
    return web.Response(status=204)


@endpoint(summary="谁绑定了我(被绑定人视角)", response=BinderListOut, tags=TAGS, errors=("REALNAME_REQUIRED",))
async def list_binders(request: web.Request) -> web.Response:
    return json_response({"items": await _service(request).list_binders(request[keys.user_id_key])})


@endpoint(summary="被绑定人解除绑定", status=204, tags=TAGS, errors=("BINDING_NOT_ACTIVE", "REALNAME_REQUIRED"))
async def unbind_as_member(request: web.Request) -> web.Response:
    await _service(request).unbind(request[keys.user_id_key], request.match_info["binding_id"], as_member=True)
    return web.Response(status=204)


@endpoint(
    summary="家人的动态医保码(60秒内有效,仅可使用一次)",
    response=VoucherOut,
    tags=TAGS,
    errors=("RATE_LIMITED",),
)
async def voucher(request: web.Request) -> web.Response:
    out = await _service(request).voucher(
        request[keys.user_id_key], request.match_info["binding_id"]
    )
    return json_response(out, status=200)


@endpoint(
    summary="家人的结算记录(绑定生效后,按时间倒序分页)",
    query=SettlementsQuery,
    response=SettlementListOut,
    tags=TAGS,
)
async def settlements(request: web.Request, query: SettlementsQuery) -> web.Response:
    out = await _service(request).settlements(
        request[keys.user_id_key],
        request.match_info["binding_id"],
        query.year,
        cursor=query.cursor,
        limit=query.limit,
    )
    return json_response(out)


@endpoint(summary="家人的年度汇总、余额和参保状态", query=YearQuery, response=SummaryOut, tags=TAGS)
async def summary(request: web.Request, query: YearQuery) -> web.Response:
    out = await _service(request).summary(
        request[keys.user_id_key], request.match_info["binding_id"], query.year
    )
    return json_response(out)
