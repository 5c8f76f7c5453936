"""DEMO ONLY: the old JSON API under /api/v1/review with static bearer tokens
(``[review] reviewers``). Scripts and the README's curl walkthrough use it; it answers
404 in production, where staff log in to the console with their own accounts.

It goes through the same review desk as the console: national scope, people masked,
claims respected, every decision and material view audited under ``token:<name>``.
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import keys
from server.domain import analytics
from server.domain.errors import DomainError
from server.domain.family.materials import open_document
from server.domain.policy import NATIONAL
from server.domain.review import REJECT_REASONS, QueueFilter
from server.domain.staff import Principal
from server.openapi import endpoint
from server.responses import json_response, stream_document


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["pending_review"] = "pending_review"
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)  # beyond an int64 was a 500 (issue #17)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    decision: Literal["approve", "reject"]
    reason_code: str = Field("", description="驳回理由代码: " + ", ".join(REJECT_REASONS))
    reason: str = Field("", max_length=200, description="驳回说明(驳回时必填,会展示给绑定人)")


def _token_reviewer(request: web.Request) -> Principal:
    """The token's reviewer as a principal of national scope (demo only)."""
    if request.config_dict[keys.settings_key].is_production:
        raise DomainError("NOT_FOUND", "请求的资源不存在")
    return Principal(None, f"token:{request[keys.reviewer_key]}", "reviewer", (NATIONAL,), request.remote)


@endpoint(summary="待审核申请列表(演示令牌)", query=ListQuery, auth="reviewer", tags=("review",))
async def list_applications(request: web.Request, query: ListQuery) -> web.Response:
    desk = request.config_dict[keys.review_desk_key]
    out = await desk.queue(_token_reviewer(request), QueueFilter(), limit=query.limit, offset=query.offset)
    return json_response(out)


@endpoint(summary="申请详情(演示令牌,身份信息已脱敏)", auth="reviewer", tags=("review",))
async def get_application(request: web.Request) -> web.Response:
    desk = request.config_dict[keys.review_desk_key]
    who = _token_reviewer(request)
    app_id = request.match_info["application_id"]
    out = await desk.detail(who, app_id)
    await desk.audit_view(who, app_id)
    return json_response(out)


@endpoint(summary="查看材料(已去除元数据,演示令牌)", auth="reviewer", tags=("review",))
async def get_material(request: web.Request) -> web.StreamResponse:
    desk = request.config_dict[keys.review_desk_key]
    material = await desk.material(
        _token_reviewer(request), request.match_info["application_id"], request.match_info["material_id"]
    )
    content_type, chunks = await open_document(request.config_dict[keys.storage_key], material.storage_key)
    return await stream_document(request, content_type, chunks)


@endpoint(summary="审核决定:通过或驳回(演示令牌)", body=DecisionIn, auth="reviewer", tags=("review",),
          errors=("APPLICATION_STATE_CONFLICT", "APPLICATION_CLAIMED", "REASON_REQUIRED"))
async def decide(request: web.Request, body: DecisionIn) -> web.Response:
    if body.decision == "reject" and not body.reason and not body.reason_code:
        raise DomainError("REASON_REQUIRED", "驳回时请填写理由", fields={"reason": "REQUIRED"})
    desk = request.config_dict[keys.review_desk_key]
    out = await desk.decide(
        _token_reviewer(request),
        request.match_info["application_id"],
        decision=body.decision,
        reason_code=body.reason_code or ("UNCLEAR" if body.decision == "reject" else ""),
        note=body.reason,
    )
    return json_response(out)


@endpoint(summary="推送队列概况(演示令牌)", auth="reviewer", tags=("review",))
async def notice_queue(request: web.Request) -> web.Response:
    _token_reviewer(request)
    return json_response(await analytics.notice_queue())
