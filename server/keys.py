"""Every typed application key, in one place (aiohttp AppKey; no string keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:

    pass

settings_key = web.AppKey("settings", "Settings")
redis_key = web.AppKey("redis", "Redis[Any]")
http_key = web.AppKey("http", aiohttp.ClientSession)
orm_key = web.AppKey("orm", object)  # the TortoiseContext
wechat_key = web.AppKey("wechat", "WeChatGateway")
face_key = web.AppKey("face", "FaceService")  # WeChat 人脸核身 (server/domain/face_check.py)
pii_key = web.AppKey("pii", "PiiCipher")
auth_key = web.AppKey("auth", "AuthService")
metrics_key = web.AppKey("metrics", "Metrics")
fake_wechat_key = web.AppKey("fake_wechat", object)  # FakeWeChatState when running embedded
push_worker_key = web.AppKey("push_worker", "Worker")  # the delivery loop (embedded / worker process)
policy_key = web.AppKey("policy", "PolicyEngine")  # config/policy.toml, loaded once
services_key = web.AppKey("services", dict)  # feature services registered by name (see app.py)
# institution webhook: rows (short TTL) and decrypted secrets by (code, secret_enc), per process
institution_directory_key = web.AppKey("institution_directory", object)
bot_key = web.AppKey("bot", "BotService")  # the official-account bot (on the /wechat sub-app)
# 亲情账户 (issue #3)
registry_key = web.AppKey("registry", "Registry")
storage_key = web.AppKey("storage", "Storage")
documents_key = web.AppKey("documents", "DocumentBook")  # the 个人承诺书 versions
family_key = web.AppKey("family", "FamilyService")
realname_key = web.AppKey("realname", "RealnameService")
voucher_passwords_key = web.AppKey("voucher_passwords", "VoucherPasswords")  # 医保支付密码
# the bureau's console (issue #14): staff sessions and the review desk
staff_key = web.AppKey("staff", "StaffService")
review_desk_key = web.AppKey("review_desk", "ReviewDesk")
counter_desk_key = web.AppKey("counter_desk", "CounterDesk")  # 窗口代办 (server/domain/counter_desk.py)
# personal information (issue #12): consents per purpose, the [privacy] settings
consents_key = web.AppKey("consents", "ConsentService")
privacy_config_key = web.AppKey("privacy_config", "PrivacyConfig")
links_key = web.AppKey("links", "LinkSigner")  # short-lived signed download links (export)
deletion_key = web.AppKey("deletion", "DeletionService")  # DELETE /api/v1/me
privacy_job_key = web.AppKey("privacy_job", "PrivacyJob")  # retention purge, unfinished deletions
# this server's base URL as seen from this machine (set by ``python -m server serve``):
# the embedded fake WeChat posts template delivery receipts to <it>/wechat/official
self_url_key = web.AppKey("self_url", str)

# per-request storage
request_id_key = web.RequestKey("request_id", str)
user_id_key = web.RequestKey("user_id", int)
reviewer_key = web.RequestKey("reviewer", str)
staff_session_key = web.RequestKey("staff_session", object)  # the console's StaffSession
institution_key = web.RequestKey("institution", object)  # the signed caller's InstitutionInfo

__all__ = [
    "Any",
    "auth_key",
    "bot_key",
    "consents_key",
    "deletion_key",
    "documents_key",
    "face_key",
    "family_key",
    "fake_wechat_key",
    "http_key",
    "institution_directory_key",
    "institution_key",
    "links_key",
    "metrics_key",
    "orm_key",
    "pii_key",
    "push_worker_key",
    "policy_key",
    "privacy_config_key",
    "privacy_job_key",
    "realname_key",
    "redis_key",
    "registry_key",
    "request_id_key",
    "self_url_key",
    "reviewer_key",
    "review_desk_key",
    "services_key",
    "settings_key",
    "staff_key",
    "staff_session_key",
    "storage_key",
    "user_id_key",
    "voucher_passwords_key",
    "wechat_key",
]
