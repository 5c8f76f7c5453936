"""Reviewer handlers: parse, call server.domain.review, answer."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import keys
from server.domain import review
from server.domain.errors import DomainError
from server.domain.family.materials import read_document
from server.openapi import endpoint
from server.responses import document_response, json_response

PAGE = Path(__file__).with_name("console.html")


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["pending_review", "failed", "active", "submitted"] = "pending_review"
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)  # beyond an int64 was a 500 (issue #17)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    decision: Literal["approve", "reject"]
    reason: str = Field("", max_length=200, description="驳回理由(驳回时必填,会展示给绑定人)")


@endpoint(summary="待审核申请列表", query=ListQuery, auth="reviewer", tags=("review",))
async def list_applications(request: web.Request, query: ListQuery) -> web.Response:
    out = await review.list_applications(
        pii=request.config_dict[keys.pii_key], state=query.state, limit=query.limit, offset=query.offset
    )
    return json_response(out)


@endpoint(summary="申请详情(审核员可见完整信息)", auth="reviewer", tags=("review",))
async def get_application(request: web.Request) -> web.Response:
    out = await review.application_detail(request.match_info["application_id"], pii=request.config_dict[keys.pii_key])
    return json_response(out)


@endpoint(summary="查看材料(已去除元数据)", auth="reviewer", tags=("review",))
async def get_material(request: web.Request) -> web.Response:
    material = await review.material_for_review(request.match_info["application_id"], request.match_info["material_id"])
    data, content_type = await read_document(request.config_dict[keys.storage_key], material.storage_key)
    return document_response(data, content_type)


@endpoint(summary="审核决定:通过或驳回", body=DecisionIn, auth="reviewer", tags=("review",),
          errors=("APPLICATION_STATE_CONFLICT", "REASON_REQUIRED"))
async def decide(request: web.Request, body: DecisionIn) -> web.Response:
    if body.decision == "reject" and not body.reason:
        raise DomainError("REASON_REQUIRED", "驳回时请填写理由", 422, fields={"reason": "REQUIRED"})
    out = await request.config_dict[keys.family_key].decide_review(
        request.match_info["application_id"],
        reviewer=request[keys.reviewer_key],
        approve=body.decision == "approve",
        detail=body.reason,
    )
    return json_response(out)


@endpoint(summary="推送队列概况", auth="reviewer", tags=("review",))
async def notice_queue(request: web.Request) -> web.Response:
    return json_response(await review.notice_queue())


async def console_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PAGE, headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"})
