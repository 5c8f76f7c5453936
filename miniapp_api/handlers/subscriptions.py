"""The mini-program reports wx.requestSubscribeMessage results: one-time subscribe grants."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server import keys
from server.openapi import endpoint
from server.push.config import PushConfig
from server.push.recipients import record_subscription_results
from server.ratelimit import hit
from server.responses import json_response


class SubscriptionResultsIn(BaseModel):
    """``res`` of wx.requestSubscribeMessage: template id → accept | reject | ban | filter
    (other keys such as ``errMsg`` are ignored)."""

    model_config = ConfigDict(extra="forbid")
    results: dict[str, str] = Field(max_length=20)


class SubscriptionGrantsOut(BaseModel):
    grants: dict[str, int] = Field(description="remaining one-time grants per reported template")
    ignored: list[str] = Field(description="keys that are not our subscribe templates")


@endpoint(
    summary="上报订阅消息授权结果",
    body=SubscriptionResultsIn,
    response=SubscriptionGrantsOut,
    tags=("notices",),
    errors=("VALIDATION_FAILED", "RATE_LIMITED"),
)
async def report(request: web.Request, body: SubscriptionResultsIn) -> web.Response:
    user_id = request[keys.user_id_key]
    config = PushConfig.from_settings(request.config_dict[keys.settings_key])
    await hit(
        request.config_dict[keys.redis_key],
        f"subscriptions:{user_id}",
        limit=config.subscription_report_limit,
        per_seconds=60,
    )
    grants, ignored = await record_subscription_results(
        user_id=user_id, results=body.results, config=config
    )
    return json_response({"grants": grants, "ignored": ignored})
