"""Every typed application key, in one place (aiohttp AppKey; no string keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from server.domain.auth import AuthService
    from server.domain.pii import PiiCipher
    from server.domain.binding import BindingService
    from server.domain.documents import DocumentBook
    from server.domain.policy import PolicyEngine
    from server.gateways.face import FaceGateway
    from server.gateways.registry import RegistryGateway
    from server.gateways.storage import LocalStorage
    from server.gateways.wechat import WeChatGateway
    from server.metrics import Metrics
    from server.settings import Settings

settings_key = web.AppKey("settings", "Settings")
redis_key = web.AppKey("redis", "Redis[Any]")
http_key = web.AppKey("http", aiohttp.ClientSession)
orm_key = web.AppKey("orm", object)  # the TortoiseContext
wechat_key = web.AppKey("wechat", "WeChatGateway")
face_key = web.AppKey("face", "FaceGateway")
pii_key = web.AppKey("pii", "PiiCipher")
auth_key = web.AppKey("auth", "AuthService")
metrics_key = web.AppKey("metrics", "Metrics")
fake_wechat_key = web.AppKey("fake_wechat", object)  # FakeWeChatState when running embedded
services_key = web.AppKey("services", dict)  # feature services registered by name (see app.py)
# 亲情账户 (issue #3)
policy_key = web.AppKey("policy", "PolicyEngine")
registry_key = web.AppKey("registry", "RegistryGateway")
storage_key = web.AppKey("storage", "LocalStorage")
documents_key = web.AppKey("documents", "DocumentBook")  # the 个人承诺书 versions
binding_key = web.AppKey("binding", "BindingService")

# per-request storage
request_id_key = web.RequestKey("request_id", str)
user_id_key = web.RequestKey("user_id", int)

__all__ = [
    "Any",
    "auth_key",
    "binding_key",
    "documents_key",
    "policy_key",
    "registry_key",
    "storage_key",
    "face_key",
    "fake_wechat_key",
    "http_key",
    "metrics_key",
    "orm_key",
    "pii_key",
    "redis_key",
    "request_id_key",
    "user_id_key",
    "services_key",
    "settings_key",
    "wechat_key",
]
